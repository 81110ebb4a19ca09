"""The Helm chart renders, for each config area, into a deployment that meets the requirements.

Rendering uses `helm template` when helm is on PATH, otherwise the subset renderer of
gotemplate.py; with helm present, the two are also compared scenario by scenario.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from checks import check_daemonset, check_references, container, embedded_config, flag, mounts
from deploytools import (
    CHART,
    Manifest,
    chart_manifests_helm,
    chart_manifests_subset,
    find,
    helm_binary,
    merge_values,
    only,
    render_chart_subset,
)
from gotemplate import TemplateError

needs_helm = pytest.mark.skipif(helm_binary() is None, reason="helm not on PATH")

KUBEVIRT_BLOCK = {
    "pciHostDevices": [
        {
            "pciDeviceSelector": "10DE:1EB8",
            "resourceName": "nvidia.com/TU104GL_Tesla_T4",
            "externalResourceProvider": True,
        }
    ],
    "mediatedDevices": [
        {
            "mdevNameSelector": "GRID T4-2Q",
            "resourceName": "nvidia.com/GRID_T4-2Q",
            "externalResourceProvider": True,
        }
    ],
}
V100 = {"name": "nvidia.com/GV100GL_Tesla_V100", "selectors": [{"device": "10de:1db6"}]}
SRIOV = [{"pf": "enp4s0f1", "numVfs": 7, "bind": "vfio-pci"}]
NODE_MDEV = [{"mediatedDevicesTypes": ["nvidia-233"], "nodeSelector": {"gpu": "t4"}}]

# id, values, privileged expected
SCENARIOS: list[tuple[str, Manifest, bool]] = [
    ("defaults", {}, False),
    ("kubevirt-block", {"config": {"permittedHostDevices": KUBEVIRT_BLOCK}}, False),
    ("native-bind-none", {"config": {"resources": [{**V100, "bind": "none"}]}}, False),
    ("native-bind-onStart", {"config": {"resources": [{**V100, "bind": "onStart"}]}}, True),
    ("native-reset", {"config": {"resources": [{**V100, "reset": True}]}}, True),
    ("sriov", {"config": {"sriov": SRIOV}}, True),
    ("mdev-types", {"config": {"mediatedDevicesTypes": ["nvidia-231"]}}, True),
    ("node-mdev-types", {"config": {"nodeMediatedDeviceTypes": NODE_MDEV}}, True),
    ("privileged-always", {"privileged": "always"}, True),
    ("privileged-never", {"privileged": "never", "config": {"sriov": SRIOV}}, False),
    ("metrics-off", {"metrics": {"enabled": False}}, False),
    ("service-monitor", {"metrics": {"serviceMonitor": {"enabled": True}}}, False),
    ("kubelet-dir", {"kubeletDir": "/var/snap/microk8s/common/var/lib/kubelet"}, False),
    ("rescan-interval", {"rescanInterval": 120, "logFormat": "text"}, False),
]
IDS = [s[0] for s in SCENARIOS]


def render(values: Manifest, tmp_path: Path) -> list[Manifest]:
    """The chart's objects, by helm if available, else by the subset renderer."""
    if helm_binary() is not None:
        return chart_manifests_helm(values, tmp_path)
    return chart_manifests_subset(values)


@pytest.mark.parametrize(("values", "privileged"), [s[1:] for s in SCENARIOS], ids=IDS)
def test_chart_renders_a_valid_deployment(
    values: Manifest, privileged: bool, tmp_path: Path
) -> None:
    objects = render(values, tmp_path)
    check_daemonset(only(objects, "DaemonSet"), privileged=privileged)
    check_references(objects)


@pytest.mark.parametrize(("values", "privileged"), [s[1:] for s in SCENARIOS], ids=IDS)
def test_config_map_holds_exactly_the_configured_sections(
    values: Manifest, privileged: bool, tmp_path: Path
) -> None:
    objects = render(values, tmp_path)
    given = {k: v for k, v in values.get("config", {}).items() if v}
    if not given:
        assert flag(only(objects, "DaemonSet"), "config") is None
        return
    assert embedded_config(objects) == given


def test_metrics_off_keeps_the_probe_on_loopback(tmp_path: Path) -> None:
    objects = render({"metrics": {"enabled": False}}, tmp_path)
    daemonset = only(objects, "DaemonSet")
    assert flag(daemonset, "metrics-address") == "127.0.0.1:9477"
    assert "ports" not in container(daemonset)
    assert not find(objects, "Service")


def test_service_monitor_selects_the_metrics_service(tmp_path: Path) -> None:
    objects = render({"metrics": {"serviceMonitor": {"enabled": True}}}, tmp_path)
    service = only(objects, "Service")
    monitor = only(objects, "ServiceMonitor")
    assert service["spec"]["clusterIP"] == "None"
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    pod_labels = only(objects, "DaemonSet")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert container(only(objects, "DaemonSet"))["ports"][0]["name"] == "metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == "metrics"


def test_kubelet_dir_moves_host_paths_not_container_paths(tmp_path: Path) -> None:
    root = "/var/snap/microk8s/common/var/lib/kubelet"
    daemonset = only(render({"kubeletDir": root}, tmp_path), "DaemonSet")
    found = mounts(daemonset)
    assert found["/var/lib/kubelet/device-plugins"][1]["hostPath"]["path"] == (
        f"{root}/device-plugins"
    )
    assert found["/var/lib/kubelet/pod-resources"][1]["hostPath"]["path"] == f"{root}/pod-resources"


def test_rescan_interval_and_log_format_become_flags(tmp_path: Path) -> None:
    values = {"rescanInterval": 120, "logFormat": "text"}
    daemonset = only(render(values, tmp_path), "DaemonSet")
    assert flag(daemonset, "rescan-interval") == "120"
    assert flag(daemonset, "log-format") == "text"
    defaults = only(render({}, tmp_path), "DaemonSet")
    assert flag(defaults, "rescan-interval") is None
    assert flag(defaults, "log-format") == "json"


BAD_PRIVILEGED = [("typo", "Always"), ("boolean", True), ("empty", "")]


@pytest.mark.parametrize(
    "value", [b[1] for b in BAD_PRIVILEGED], ids=[b[0] for b in BAD_PRIVILEGED]
)
def test_bad_privileged_value_fails_with_a_clear_message(value: Any) -> None:
    with pytest.raises(TemplateError, match="privileged must be one of: auto, always, never"):
        render_chart_subset({"privileged": value})


@needs_helm
@pytest.mark.parametrize(
    "value", [b[1] for b in BAD_PRIVILEGED], ids=[b[0] for b in BAD_PRIVILEGED]
)
def test_helm_rejects_bad_privileged_value_too(value: Any, tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="privileged must be one of"):
        chart_manifests_helm({"privileged": value}, tmp_path)


@pytest.mark.parametrize(("values", "privileged"), [(s[1], s[2]) for s in SCENARIOS], ids=IDS)
def test_notes_tell_the_mode(values: Manifest, privileged: bool) -> None:
    notes = render_chart_subset(values)["NOTES.txt"]
    assert ("Mode: full (privileged)" in notes) is privileged
    assert ("Mode: discovery-only" in notes) is not privileged


@pytest.mark.parametrize("values", [s[1] for s in SCENARIOS], ids=IDS)
def test_notes_status_command_reads_what_serve_reads(values: Manifest) -> None:
    """Inside the container /dev has no /dev/vfio/<group> and the config is not the default."""
    notes = render_chart_subset(values)["NOTES.txt"].replace("\\\n", " ")
    command = next(line for line in notes.splitlines() if "hostdev status" in line)
    status_flags = set(command.split("hostdev status", 1)[1].split())
    serve_args = container(only(chart_manifests_subset(values), "DaemonSet"))["args"]
    wanted = ("--config=", "--sysfs-root=", "--dev-root=")
    assert status_flags == {a for a in serve_args if a.startswith(wanted)}


@needs_helm
@pytest.mark.parametrize(("values", "privileged"), [s[1:] for s in SCENARIOS], ids=IDS)
def test_subset_renderer_matches_helm(values: Manifest, privileged: bool, tmp_path: Path) -> None:
    def key(obj: Manifest) -> tuple[str, str]:
        return obj["kind"], obj["metadata"]["name"]

    ours = sorted(chart_manifests_subset(values), key=key)
    theirs = sorted(chart_manifests_helm(values, tmp_path), key=key)
    assert ours == theirs


def test_values_file_documents_every_config_area() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert set(values["config"]) == {
        "resources",
        "permittedHostDevices",
        "sriov",
        "mediatedDevicesTypes",
        "nodeMediatedDeviceTypes",
    }
    assert values["privileged"] == "auto"
    assert values["resources"]["requests"]["memory"] == "64Mi"
    assert values["resources"]["limits"]["memory"] == "200Mi"
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "hostdev"


def test_merge_values_follows_helm_coalescing() -> None:
    base = {"a": {"b": 1, "c": 2}, "l": [1], "d": 1}
    merged = merge_values(base, {"a": {"b": 9}, "l": [2], "d": None})
    assert merged == {"a": {"b": 9, "c": 2}, "l": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "l": [1], "d": 1}
