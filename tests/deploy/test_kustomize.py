"""The two kustomize variants: discovery-only (no privileges) and full (privileged)."""

from __future__ import annotations

import pytest
from checks import check_daemonset, check_references, embedded_config, flag, mounts
from deploytools import (
    KUSTOMIZE,
    Manifest,
    apply_json_patch,
    find,
    kubectl_binary,
    kustomize_here,
    kustomize_with_kubectl,
    load_yaml_docs,
    only,
)

VARIANTS = [("discovery-only", False), ("full", True)]
needs_kubectl = pytest.mark.skipif(kubectl_binary() is None, reason="kubectl not on PATH")


def _key(obj: Manifest) -> tuple[str, str]:
    return obj["kind"], obj["metadata"]["name"]


@pytest.mark.parametrize(("variant", "privileged"), VARIANTS, ids=[v[0] for v in VARIANTS])
def test_variant_daemonset_meets_the_requirements(variant: str, privileged: bool) -> None:
    objects = kustomize_here(variant)
    check_daemonset(only(objects, "DaemonSet"), privileged=privileged)
    check_references(objects)


@pytest.mark.parametrize("variant", [v[0] for v in VARIANTS])
def test_namespace_admits_privileged_pods(variant: str) -> None:
    namespace = only(kustomize_here(variant), "Namespace")
    assert namespace["metadata"]["name"] == "hostdev-system"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"


def test_discovery_only_serves_the_kubevirt_block_and_full_the_native_form() -> None:
    kubevirt = embedded_config(kustomize_here("discovery-only"))
    native = embedded_config(kustomize_here("full"))
    assert set(kubevirt) == {"permittedHostDevices"}
    entries = kubevirt["permittedHostDevices"]["pciHostDevices"]
    entries += kubevirt["permittedHostDevices"]["mediatedDevices"]
    assert all(e["externalResourceProvider"] is True for e in entries)
    assert {"resources", "sriov", "mediatedDevicesTypes"} <= set(native)
    assert any(r.get("bind") == "onStart" for r in native["resources"])


def test_full_differs_from_discovery_only_only_where_privilege_is_needed() -> None:
    base = only(kustomize_here("discovery-only"), "DaemonSet")
    full = only(kustomize_here("full"), "DaemonSet")
    assert set(mounts(full)) - set(mounts(base)) == {"/lib/modules", "/host/proc"}
    assert flag(full, "config") == flag(base, "config")
    assert full["spec"]["template"]["spec"]["hostNetwork"] is True


@needs_kubectl
@pytest.mark.parametrize("variant", [v[0] for v in VARIANTS])
def test_kubectl_kustomize_builds_the_same_objects(variant: str) -> None:
    ours = sorted(kustomize_here(variant), key=_key)
    theirs = sorted(kustomize_with_kubectl(variant), key=_key)
    assert [_key(o) for o in ours] == [_key(o) for o in theirs]
    assert ours == theirs


PATCH_ERRORS = [
    ("test-fails", [{"op": "test", "path": "/a", "value": 2}], ValueError),
    ("missing-key", [{"op": "replace", "path": "/nope", "value": 1}], KeyError),
    ("index-out-of-range", [{"op": "remove", "path": "/l/5"}], KeyError),
    ("unknown-op", [{"op": "move", "path": "/a"}], ValueError),
]


@pytest.mark.parametrize(
    ("operations", "error"), [p[1:] for p in PATCH_ERRORS], ids=[p[0] for p in PATCH_ERRORS]
)
def test_json_patch_rejects_what_kustomize_rejects(
    operations: list[Manifest], error: type[Exception]
) -> None:
    with pytest.raises(error):
        apply_json_patch({"a": 1, "l": [1]}, operations)


def test_json_patch_add_append_replace_remove() -> None:
    document: Manifest = {"a": 1, "l": [1], "m": {"x~y/z": 0}}
    apply_json_patch(
        document,
        [
            {"op": "add", "path": "/l/-", "value": 2},
            {"op": "add", "path": "/l/0", "value": 0},
            {"op": "replace", "path": "/m/x~0y~1z", "value": 5},
            {"op": "remove", "path": "/a"},
            {"op": "add", "path": "/b", "value": {"c": 1}},
        ],
    )
    assert document == {"l": [0, 1, 2], "m": {"x~y/z": 5}, "b": {"c": 1}}


def test_every_kustomize_file_parses() -> None:
    files = sorted(KUSTOMIZE.rglob("*.yaml"))
    assert len(files) >= 8
    for path in files:
        docs = load_yaml_docs(path.read_text())
        assert docs, path
        objects = [d for d in docs if isinstance(d, dict)]
        assert not find(objects, "Secret"), path
