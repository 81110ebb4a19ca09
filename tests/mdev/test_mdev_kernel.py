"""mdev create/remove on the fake kernel: instances go down and up, groups come and go."""

import errno
from itertools import count
from pathlib import Path

import pytest

from hostdev.errors import BadInputError, DeviceNotFoundError, HostdevError
from hostdev.host.model import PciAddress
from hostdev.host.scan import scan_host
from hostdev.mdev import (
    CreateMdev,
    RemoveMdev,
    describe,
    execute,
    find_parent,
    mdevs_document,
    plan_create,
    plan_remove,
    resolve_type,
    types_document,
)
from hostdev.mdev_plan import apply_mdevs
from hostdev.testing.examples import T4, base_host, vgpu_node
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

T4_CARD = "0000:3b:00.0"
EXISTING = "4b20d080-1b54-4048-85b3-a6a62d165c01"
NEW = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def vgpu(tmp_path: Path) -> FakeHost:
    return vgpu_node(tmp_path / "host")


def available(host: FakeHost, type_id: str) -> int:
    t4 = scan_host(host.fs).devices[PciAddress.parse(T4_CARD)]
    return next(t.available_instances for t in t4.mdev_types if t.type_id == type_id)


def test_create_and_remove_move_available_instances(vgpu: FakeHost) -> None:
    kernel = FakeKernelWriter(vgpu)
    before = scan_host(vgpu.fs)
    assert available(vgpu, "nvidia-231") == 7
    action = plan_create(before, T4_CARD, "GRID T4-2Q", NEW)
    assert action == CreateMdev(PciAddress.parse(T4_CARD), "nvidia-231", NEW)
    execute(vgpu.fs, kernel, [action])
    host = scan_host(vgpu.fs)
    created = host.mdevs_by_uuid[NEW]
    assert created.type_name == "GRID T4-2Q" and created.iommu_group not in before.groups
    assert (vgpu.root / f"dev/vfio/{created.iommu_group}").exists()
    assert available(vgpu, "nvidia-231") == 6
    execute(vgpu.fs, kernel, [plan_remove(host, NEW)])
    after = scan_host(vgpu.fs)
    assert NEW not in after.mdevs_by_uuid and available(vgpu, "nvidia-231") == 7
    assert not (vgpu.root / f"dev/vfio/{created.iommu_group}").exists()


@pytest.mark.parametrize(
    ("ref", "type_id"),
    [("nvidia-233", "nvidia-233"), ("GRID T4-8Q", "nvidia-233"), ("GRID_T4-8Q", "nvidia-233")],
    ids=["id", "name", "kubevirt-name"],
)
def test_resolve_type(vgpu: FakeHost, ref: str, type_id: str) -> None:
    parent = find_parent(scan_host(vgpu.fs), "3b:00.0")
    assert resolve_type(parent, ref).type_id == type_id


@pytest.mark.parametrize(
    ("parent", "ref", "uuid", "error", "text"),
    [
        ("0000:3b:00.0", "GRID T4-99Q", None, BadInputError, "offers no type 'GRID T4-99Q'"),
        ("0000:01:00.0", "nvidia-231", None, BadInputError, "offers no mediated device types"),
        ("0000:99:00.0", "nvidia-231", None, DeviceNotFoundError, "no PCI device"),
        ("not-an-address", "nvidia-231", None, BadInputError, "invalid PCI address"),
        ("0000:3b:00.0", "nvidia-231", "1234", BadInputError, "is not a UUID"),
        ("0000:3b:00.0", "nvidia-231", EXISTING, BadInputError, "already exists"),
    ],
    ids=["unknown-type", "not-a-parent", "no-device", "bad-address", "bad-uuid", "uuid-taken"],
)
def test_create_refusals(
    vgpu: FakeHost, parent: str, ref: str, uuid: str | None, error: type, text: str
) -> None:
    with pytest.raises(error, match=text):
        plan_create(scan_host(vgpu.fs), parent, ref, uuid)


def test_ambiguous_name(tmp_path: Path) -> None:
    fake = base_host(tmp_path / "h")
    fake.add_device(T4_CARD, *T4, "030200", driver="nvidia", iommu_group=9)
    fake.add_mdev_type(T4_CARD, "nvidia-1", "Same", available=1)
    fake.add_mdev_type(T4_CARD, "nvidia-2", "Same", available=1)
    with pytest.raises(BadInputError, match=r"ambiguous on 0000:3b:00\.0: nvidia-1, nvidia-2"):
        plan_create(scan_host(fake.fs), T4_CARD, "Same")


def test_create_until_full_then_plain_refusal(vgpu: FakeHost) -> None:
    kernel = FakeKernelWriter(vgpu)
    numbers = count()
    for _ in range(2):
        host = scan_host(vgpu.fs)
        uuid = f"00000000-0000-4000-8000-{next(numbers):012d}"
        execute(vgpu.fs, kernel, [plan_create(host, T4_CARD, "nvidia-233", uuid)])
    with pytest.raises(HostdevError, match=r"no instances left \(available_instances is 0\)"):
        plan_create(scan_host(vgpu.fs), T4_CARD, "nvidia-233")


@pytest.mark.parametrize(
    ("action", "code", "error", "text"),
    [
        (
            CreateMdev(PciAddress.parse(T4_CARD), "nvidia-234", NEW),
            errno.ENOSPC,
            HostdevError,
            "has no instances left",
        ),
        (
            CreateMdev(PciAddress.parse(T4_CARD), "nvidia-234", EXISTING),
            None,
            BadInputError,
            "already exists",
        ),
        (
            CreateMdev(PciAddress.parse(T4_CARD), "nvidia-234", "NOT-A-UUID"),
            None,
            BadInputError,
            "refused UUID",
        ),
        (
            RemoveMdev(NEW, PciAddress.parse(T4_CARD), "nvidia-231"),
            None,
            DeviceNotFoundError,
            "no longer exists",
        ),
        (
            RemoveMdev(EXISTING, PciAddress.parse(T4_CARD), "nvidia-231"),
            errno.EBUSY,
            HostdevError,
            "a VM still has it open",
        ),
        (
            RemoveMdev(EXISTING, PciAddress.parse(T4_CARD), "nvidia-231"),
            errno.EIO,
            HostdevError,
            "Input/output error",
        ),
    ],
    ids=["ENOSPC", "EEXIST", "EINVAL", "ENOENT", "EBUSY", "other"],
)
def test_kernel_refusals_read_plainly(
    vgpu: FakeHost, action: CreateMdev | RemoveMdev, code: int | None, error: type, text: str
) -> None:
    kernel = FakeKernelWriter(vgpu)
    if code is not None:
        kernel.fail_on["create" if isinstance(action, CreateMdev) else "remove"] = code
    with pytest.raises(error, match=text):
        execute(vgpu.fs, kernel, [action])


def test_remove_refused_while_allocated(vgpu: FakeHost) -> None:
    host = scan_host(vgpu.fs)
    with pytest.raises(HostdevError, match="is allocated to a pod; refusing to remove it"):
        plan_remove(host, EXISTING, lambda uuid: uuid == EXISTING)
    with pytest.raises(DeviceNotFoundError, match="no mdev with UUID"):
        plan_remove(host, NEW)
    assert plan_remove(host, EXISTING.upper()).uuid == EXISTING


def test_documents(vgpu: FakeHost) -> None:
    host = scan_host(vgpu.fs)
    (parent,) = types_document(host)["parents"]
    assert parent["address"] == T4_CARD and len(parent["types"]) == 8
    assert parent["types"][4] == {
        "type_id": "nvidia-231",
        "name": "GRID T4-2Q",
        "available_instances": 7,
        "device_api": "vfio-pci",
        "description": "num_heads=4, frl_config=60, framebuffer=2G",
    }
    (mdev,) = mdevs_document(host)["mdevs"]
    assert mdev["uuid"] == EXISTING and mdev["parent"] == T4_CARD
    assert describe(RemoveMdev(EXISTING, PciAddress.parse(T4_CARD), "nvidia-231")) == (
        f"remove {EXISTING} (nvidia-231) from {T4_CARD}"
    )


# -- apply ----------------------------------------------------------------------------------
def test_apply_switches_the_card_type_and_is_idempotent(vgpu: FakeHost) -> None:
    kernel = FakeKernelWriter(vgpu)
    report = apply_mdevs(vgpu.fs, kernel, ["GRID T4-8Q"])
    assert report.problems == []
    host = scan_host(vgpu.fs)
    assert sorted(m.type_id for m in host.mdevs) == ["nvidia-233", "nvidia-233"]
    assert available(vgpu, "nvidia-231") == 8 and available(vgpu, "nvidia-233") == 0
    writes = len(kernel.writes)
    again = apply_mdevs(vgpu.fs, kernel, ["GRID T4-8Q"])
    assert again.done == [] and len(kernel.writes) == writes


def test_apply_keeps_an_allocated_mdev(vgpu: FakeHost) -> None:
    report = apply_mdevs(
        vgpu.fs, FakeKernelWriter(vgpu), ["nvidia-233"], lambda uuid: uuid == EXISTING
    )
    assert report.done == [] and len(report.notes) == 2
    assert [m.uuid for m in scan_host(vgpu.fs).mdevs] == [EXISTING]


def test_apply_tops_up_and_stops_a_card_at_its_first_failure(vgpu: FakeHost) -> None:
    kernel = FakeKernelWriter(vgpu)
    kernel.fail_on["create"] = errno.ENOSPC
    report = apply_mdevs(vgpu.fs, kernel, ["nvidia-231"])
    assert report.done == [] and len(report.problems) == 1
    assert "no instances left" in report.problems[0]


def test_apply_reports_a_failed_removal(vgpu: FakeHost) -> None:
    kernel = FakeKernelWriter(vgpu)
    kernel.fail_on["remove"] = errno.EBUSY
    report = apply_mdevs(vgpu.fs, kernel, ["nvidia-233"])
    assert report.problems and "busy" in report.problems[0]
    assert [m.uuid for m in scan_host(vgpu.fs).mdevs] == [EXISTING]
