"""What every rendered hostdev deployment must satisfy, whichever way it was produced
(kustomize variant or Helm chart): the DaemonSet's mounts, privileges, probe and resources,
and the objects it refers to."""

from __future__ import annotations

from pathlib import PurePosixPath
from typing import Any

import yaml
from deploytools import Manifest, find, only

# mountPath in the container -> hostPath on the node (the kubelet directory may differ).
HOST_MOUNTS = {
    "/host/sys": "/sys",
    "/host/dev": "/dev",
    "/var/lib/kubelet/device-plugins": "device-plugins",
    "/var/lib/kubelet/pod-resources": "pod-resources",
    "/var/lib/hostdev": "/var/lib/hostdev",
}


def container(daemonset: Manifest) -> Manifest:
    """The hostdev container."""
    containers = daemonset["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["hostdev"]
    result: Manifest = containers[0]
    return result


def mounts(daemonset: Manifest) -> dict[str, tuple[Manifest, Manifest]]:
    """mountPath -> (volumeMount, volume)."""
    pod = daemonset["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert len(volumes) == len(pod["volumes"]), "duplicate volume names"
    result = {}
    for mount in container(daemonset)["volumeMounts"]:
        assert mount["name"] in volumes, f"mount of undefined volume {mount['name']}"
        result[mount["mountPath"]] = (mount, volumes[mount["name"]])
    return result


def flag(daemonset: Manifest, name: str) -> str | None:
    """The value of `--name=value` in the container's args, or None."""
    for arg in container(daemonset)["args"]:
        if arg.startswith(f"--{name}="):
            return str(arg.split("=", 1)[1])
    return None


def check_daemonset(daemonset: Manifest, *, privileged: bool) -> None:
    """The requirements of issue 7 and docs/deployment.md for the hostdev DaemonSet."""
    pod = daemonset["spec"]["template"]["spec"]
    main = container(daemonset)
    assert pod["hostNetwork"] is True
    assert pod["priorityClassName"] == "system-node-critical"
    assert main["args"][0] == "serve"
    assert main["resources"]["requests"]["memory"] == "64Mi"
    assert main["resources"]["limits"]["memory"] == "200Mi"
    assert {"name": "NODE_NAME", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}} in (
        main["env"]
    )
    _check_probe(daemonset)
    _check_host_mounts(daemonset, privileged=privileged)
    _check_security(main["securityContext"], privileged=privileged)


def _check_probe(daemonset: Manifest) -> None:
    probe = container(daemonset)["livenessProbe"]["httpGet"]
    address = flag(daemonset, "metrics-address")
    assert address is not None
    assert probe["path"] == "/healthz"
    assert probe["host"] == "127.0.0.1"
    assert str(probe["port"]) == address.rsplit(":", 1)[1]


def _check_host_mounts(daemonset: Manifest, *, privileged: bool) -> None:
    found = mounts(daemonset)
    for mount_path, host_suffix in HOST_MOUNTS.items():
        assert mount_path in found, f"missing mount {mount_path}"
        host_path = found[mount_path][1]["hostPath"]["path"]
        assert host_path.endswith(host_suffix), (mount_path, host_path)
    # The pod-resources directory, never the socket file (it is re-created by the kubelet).
    pod_resources = found["/var/lib/kubelet/pod-resources"][1]["hostPath"]
    assert not pod_resources["path"].endswith(".sock")
    assert pod_resources.get("type") in {"Directory", "DirectoryOrCreate"}
    assert flag(daemonset, "sysfs-root") == "/host/sys"
    assert flag(daemonset, "dev-root") == "/host/dev"
    assert found["/host/dev"][0]["readOnly"] is True
    assert found["/host/sys"][0].get("readOnly", False) is (not privileged)
    assert not found["/var/lib/kubelet/device-plugins"][0].get("readOnly", False)
    privileged_mounts = {"/lib/modules": "/lib/modules", "/host/proc": "/proc"}
    for mount_path, host_path in privileged_mounts.items():
        if privileged:
            assert found[mount_path][0]["readOnly"] is True
            assert found[mount_path][1]["hostPath"]["path"] == host_path
        else:
            assert mount_path not in found
    assert (flag(daemonset, "proc-root") == "/host/proc") is privileged


def _check_security(context: Manifest, *, privileged: bool) -> None:
    assert context.get("privileged", False) is privileged
    if not privileged:
        assert context["capabilities"]["drop"] == ["ALL"]
        assert "add" not in context["capabilities"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["readOnlyRootFilesystem"] is True


def check_references(objects: list[Manifest]) -> None:
    """The DaemonSet's ServiceAccount, RBAC and ConfigMap exist and fit together."""
    daemonset = only(objects, "DaemonSet")
    namespace = daemonset["metadata"]["namespace"]
    account = daemonset["spec"]["template"]["spec"]["serviceAccountName"]
    assert any(a["metadata"]["name"] == account for a in find(objects, "ServiceAccount"))
    binding = only(objects, "ClusterRoleBinding")
    assert {"kind": "ServiceAccount", "name": account, "namespace": namespace} in binding[
        "subjects"
    ]
    role = only(objects, "ClusterRole")
    assert binding["roleRef"]["name"] == role["metadata"]["name"]
    assert {"apiGroups": [""], "resources": ["nodes"], "verbs": ["get"]} in role["rules"]
    for obj in objects:
        if obj["kind"] not in {"Namespace", "ClusterRole", "ClusterRoleBinding"}:
            assert obj["metadata"]["namespace"] == namespace, obj["metadata"]
    _check_config_reference(objects, daemonset)


def _check_config_reference(objects: list[Manifest], daemonset: Manifest) -> None:
    config = flag(daemonset, "config")
    if config is None:
        assert not find(objects, "ConfigMap")
        return
    path = PurePosixPath(config)
    mount, volume = mounts(daemonset)[str(path.parent)]
    assert mount["readOnly"] is True
    config_map = only(objects, "ConfigMap")
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    assert path.name in config_map["data"]


def embedded_config(objects: list[Manifest]) -> Any:
    """The hostdev config file inside the ConfigMap, parsed."""
    return yaml.safe_load(only(objects, "ConfigMap")["data"]["config.yaml"])
