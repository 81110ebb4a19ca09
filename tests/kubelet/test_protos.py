"""The generated API modules: published field numbers, and the staleness check."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from hostdev.kubelet import protogen
from hostdev.kubelet.api import deviceplugin_pb2 as dp
from hostdev.kubelet.api import podresources_pb2 as pr

FIELDS = [
    (dp.RegisterRequest, "version", 1),
    (dp.RegisterRequest, "resource_name", 3),
    (dp.RegisterRequest, "options", 4),
    (dp.DevicePluginOptions, "get_preferred_allocation_available", 2),
    (dp.Device, "ID", 1),
    (dp.Device, "topology", 3),
    (dp.NUMANode, "ID", 1),
    (dp.ContainerPreferredAllocationRequest, "must_include_deviceIDs", 2),
    (dp.ContainerPreferredAllocationRequest, "allocation_size", 3),
    (dp.ContainerPreferredAllocationResponse, "deviceIDs", 1),
    (dp.ContainerAllocateResponse, "annotations", 4),
    (dp.ContainerAllocateResponse, "cdi_devices", 5),
    (dp.DeviceSpec, "permissions", 3),
    (dp.Mount, "read_only", 3),
    (pr.PodResources, "containers", 3),
    (pr.PodResources, "memory", 5),
    (pr.ContainerResources, "dynamic_resources", 5),
    (pr.ContainerDevices, "topology", 3),
    (pr.ContainerMemory, "size", 2),
    (pr.DynamicResource, "claim_name", 2),
    (pr.ClaimResource, "share_id", 5),
    (pr.AllocatableResourcesResponse, "memory", 3),
    (pr.GetPodResourcesRequest, "pod_namespace", 2),
]


@pytest.mark.parametrize(
    ("message", "name", "number"), FIELDS, ids=[f"{m.__name__}.{n}" for m, n, _ in FIELDS]
)
def test_published_field_numbers(message: type, name: str, number: int) -> None:
    assert message.DESCRIPTOR.fields_by_name[name].number == number  # type: ignore[attr-defined]


def test_packages_and_services() -> None:
    assert dp.DESCRIPTOR.package == "v1beta1"
    assert pr.DESCRIPTOR.package == "v1"
    assert set(dp.DESCRIPTOR.services_by_name) == {"Registration", "DevicePlugin"}
    lister = pr.DESCRIPTOR.services_by_name["PodResourcesLister"]
    assert [m.name for m in lister.methods] == ["List", "GetAllocatableResources", "Get"]


def test_committed_code_is_fresh() -> None:
    assert protogen.check() == 0


def test_stale_code_is_detected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    copy = tmp_path / "api"
    shutil.copytree(protogen.API_DIR, copy)
    stale = copy / "deviceplugin_pb2.pyi"
    stale.write_text(stale.read_text() + "# hand edit\n")
    monkeypatch.setattr(protogen, "API_DIR", copy)
    assert protogen.check() == 1
    assert "stale generated code: deviceplugin_pb2.pyi" in capsys.readouterr().err
