"""The scanner over example hosts, and over every kind of broken sysfs entry."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from hostdev.errors import HostReadError
from hostdev.host import scan
from hostdev.host.fs import HostFS
from hostdev.host.model import PciAddress, SkippedDevice
from hostdev.host.scan import scan_host
from hostdev.testing.examples import base_host, build_example
from hostdev.testing.fakehost import FakeHost

A = PciAddress.parse
PF_82576 = "0000:04:00.1"  # enp4s0f1: VFs virtfn0..6 at 04:10.1, 04:10.3 ... 04:11.5


@pytest.fixture
def sink(tmp_path: Path) -> FakeHost:
    return build_example("kitchen-sink", tmp_path)


def test_gpu_fields(sink: FakeHost) -> None:
    host = scan_host(sink.fs)
    t4 = host.devices[A("0000:65:00.0")]
    assert (t4.vendor, t4.device, t4.class_code, t4.revision) == ("10de", "1eb8", "030200", "a1")
    assert (t4.subsystem_vendor, t4.subsystem_device) == ("10de", "12a2")
    assert (t4.driver, t4.driver_override, t4.iommu_group, t4.numa_node) == (
        "vfio-pci",
        None,
        11,
        0,
    )
    assert t4.pci_path == ("0000:64:00.0",)
    assert not t4.is_bridge


def _kernel_6_6(host: FakeHost) -> None:  # VFIO device cdev: vfio-dev/vfioN is a char device
    host.add_vfio_cdevs()


def _kernel_6_0(host: FakeHost) -> None:  # no vfio-dev directory at all
    for device_dir in host.root.glob("sys/devices/**/vfio-dev"):
        shutil.rmtree(device_dir)


@pytest.mark.parametrize(
    ("kernel", "has_cdev"),
    [(_kernel_6_6, True), (None, False), (_kernel_6_0, False)],
    ids=["6.6-cdev-node", "6.1-vfio-dev-without-node", "6.0-no-vfio-dev"],
)
def test_vfio_cdev_only_where_dev_has_its_node(sink: FakeHost, kernel, has_cdev) -> None:  # type: ignore[no-untyped-def]
    """A cdev name is handed to containers, so it is reported only when /dev has the node."""
    if kernel is not None:
        kernel(sink)
    cdev = scan_host(sink.fs).devices[A("0000:65:00.0")].vfio_cdev
    assert (cdev is not None) == has_cdev
    if cdev is not None:
        assert (sink.root / "dev/vfio/devices" / cdev).exists()


def test_sriov_pf_and_vfs(sink: FakeHost) -> None:
    host = scan_host(sink.fs)
    pf = host.devices[A("0000:04:00.1")]
    assert pf.sriov is not None and (pf.sriov.total_vfs, pf.sriov.num_vfs) == (7, 7)
    assert pf.netdevs == ("enp4s0f1",)
    assert [str(v) for v in pf.sriov.vfs][:2] == ["0000:04:10.1", "0000:04:10.3"]
    vf = host.devices[pf.sriov.vfs[3]]
    assert (vf.physfn, vf.vf_index, vf.device, vf.is_vf) == (pf.address, 3, "10ca", True)
    assert host.netdev_index["enp4s0f1"] == pf.address
    assert host.pf_of(vf) is pf
    assert host.pf_of(pf) is None  # a PF is nobody's VF


@pytest.mark.parametrize(
    "removed", [(0, 1, 2), (3,), (6,)], ids=["teardown-from-virtfn0", "middle-gap", "last"]
)
def test_vf_index_is_the_virtfn_number_not_the_position(
    sink: FakeHost, removed: tuple[int, ...]
) -> None:
    pf = "0000:04:00.1"
    before = sink.vf_links(pf)
    for index in removed:
        sink.remove_vf(pf, index)
    host = scan_host(sink.fs)
    remaining = [i for i in range(7) if i not in removed]
    sriov = host.devices[A(pf)].sriov
    assert sriov is not None and list(sriov.vf_indexes) == remaining
    assert [(i, str(a)) for i, a in sriov.indexed_vfs()] == [(i, before[i]) for i in remaining]
    assert [host.devices[A(before[i])].vf_index for i in remaining] == remaining


@pytest.mark.parametrize("chunk", [1, 2, 5], ids=["chunk-1", "chunk-2", "chunk-5"])
def test_chunked_scan_sees_the_same_host(
    sink: FakeHost, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = scan_host(sink.fs)
    monkeypatch.setattr(scan, "_CHUNK", chunk)
    chunked = scan_host(sink.fs)
    assert chunked == whole
    # VFs in a later chunk than their PF still know their PF and index
    vfs = [d for d in chunked.devices.values() if d.is_vf]
    assert vfs and all(d.vf_index is not None for d in vfs)


def test_devices_in_address_order(sink: FakeHost) -> None:
    addresses = list(scan_host(sink.fs).devices)
    assert addresses == sorted(addresses)


def test_groups_and_viability(sink: FakeHost) -> None:
    host = scan_host(sink.fs)
    assert [str(a) for a in host.groups[15].members] == ["0000:17:00.0", "0000:17:00.1"]
    assert host.group_viability(15).viable
    shared = host.group_viability(32)
    assert not shared.viable
    assert {(str(a), d) for a, d in shared.blockers} == {
        ("0000:06:01.0", "e1000"),
        ("0000:06:02.0", "8139cp"),
    }
    assert host.groups[11].vfio_node and not host.groups[32].vfio_node
    assert host.devices[A("0000:08:00.0")].iommu_group is None


def test_domains_and_mdevs(sink: FakeHost) -> None:
    host = scan_host(sink.fs)
    assert A("0001:02:00.0") in host.devices and A("10000:01:00.0") in host.devices
    parent = host.devices[A("0000:3b:00.0")]
    names = {t.type_id: t.name for t in parent.mdev_types}
    assert names["nvidia-231"] == "GRID T4-2Q"
    t2q = next(t for t in parent.mdev_types if t.type_id == "nvidia-231")
    assert t2q.available_instances == 7  # 8 minus the existing mdev
    (mdev,) = host.mdevs
    assert (mdev.type_id, mdev.type_name, mdev.parent) == (
        "nvidia-231",
        "GRID T4-2Q",
        parent.address,
    )
    assert mdev.iommu_group is not None


def test_pci_path_behind_a_vmd_controller_holds_only_functions(tmp_path: Path) -> None:
    fake = base_host(tmp_path)
    fake.add_vmd("0000:00:0e.0", domain="10000", bus="e0", iommu_group=5)
    fake.add_bridge("10000:e0:06.0", iommu_group=5)
    fake.add_device("10000:e1:00.0", "144d", "a80a", "010802", driver="nvme", iommu_group=5,
                    parent="10000:e0:06.0")  # fmt: skip
    bus_link = os.readlink(fake.root / "sys/bus/pci/devices/10000:e1:00.0")
    assert bus_link.endswith("0000:00:0e.0/pci10000:e0/10000:e0:06.0/10000:e1:00.0")
    devices = scan_host(fake.fs).devices
    assert devices[A("10000:e0:06.0")].pci_path == ("0000:00:0e.0",)
    assert devices[A("10000:e1:00.0")].pci_path == ("0000:00:0e.0", "10000:e0:06.0")


def _device_dir(host: FakeHost, address: str) -> Path:
    return host.device_dir(address)


def _garbage_uevent(d: Path) -> None:
    (d / "uevent").write_text("\x00\xff garbage")


def _garbage_everything(d: Path) -> None:
    for name in ("uevent", "vendor", "device"):
        (d / name).write_text("0xZZZZ\n")


def _dangling_driver(d: Path) -> None:
    (d / "driver").unlink()
    (d / "driver").symlink_to("../../../bus/pci/drivers/gone-driver-dir/..nope")
    (d / "uevent").write_text("PCI_CLASS=30200\nPCI_ID=10DE:1EB8\n")


def _garbage_numa(d: Path) -> None:
    (d / "numa_node").write_text("banana\n")


def _unreadable_class(d: Path) -> None:
    (d / "uevent").write_text("PCI_ID=10DE:1EB8\n")
    (d / "class").unlink()


@pytest.mark.parametrize(
    ("damage", "skipped", "check"),
    [
        (_garbage_uevent, False, lambda dev: dev.vendor_device == "10de:1eb8"),
        (_garbage_everything, True, None),
        (_dangling_driver, False, lambda dev: dev.driver == "..nope"),
        (_garbage_numa, False, lambda dev: dev.numa_node is None and dev.problems),
        (_unreadable_class, True, None),
    ],
    ids=[
        "garbage-uevent-falls-back",
        "garbage-ids-skipped",
        "dangling-driver-link",
        "garbage-numa",
        "no-class-skipped",
    ],
)
def test_damaged_device(sink: FakeHost, damage, skipped, check) -> None:  # type: ignore[no-untyped-def]
    damage(_device_dir(sink, "0000:65:00.0"))
    host = scan_host(sink.fs)
    address = A("0000:65:00.0")
    assert (address not in host.devices) == skipped
    if skipped:
        assert any(s.name == "0000:65:00.0" for s in host.skipped)
        assert address in host.groups[11].members  # still counted in its group
        assert not host.group_viability(11).viable  # an unreadable member blocks
    else:
        assert check(host.devices[address])
    assert A("0000:b3:00.0") in host.devices  # the rest is listed


@pytest.mark.parametrize(
    "name",
    ["0000:00:00.0\n", "0000:00:ff.0", "0000:00:20.0", "0000:00:0A.0", "0000:00:00.8"],
    ids=["trailing-newline", "slot-ff", "slot-20", "upper-case", "function-8"],
)
def test_bus_entry_the_kernel_never_names_so_is_skipped(sink: FakeHost, name: str) -> None:
    (sink.root / "sys/bus/pci/devices" / name).symlink_to(
        "../../../devices/pci0000:00/0000:00:00.0"
    )
    host = scan_host(sink.fs)
    assert SkippedDevice(name, "not a PCI address") in host.skipped
    assert len(host.devices) == len(sink.funcs)


def _relink(link: Path, target: str) -> None:
    link.unlink()
    link.symlink_to(target)


def _superscript_group(h: FakeHost) -> None:
    _relink(h.device_dir("0000:65:00.0") / "iommu_group", "../../../../kernel/iommu_groups/\u00b2")


def _superscript_virtfn(h: FakeHost) -> None:
    (h.device_dir(PF_82576) / "virtfn\u00b2").symlink_to("../0000:04:10.5")


def _virtfn_target_newline(h: FakeHost) -> None:
    _relink(h.device_dir(PF_82576) / "virtfn0", "../0000:04:10.1\n")


def _physfn_target_newline(h: FakeHost) -> None:
    (h.device_dir(PF_82576) / "virtfn6").unlink()  # so that the VF's own physfn link counts
    _relink(h.device_dir("0000:04:11.5") / "physfn", "../0000:04:00.1\n")


@pytest.mark.parametrize(
    ("damage", "address", "problem"),
    [
        (_superscript_group, "0000:65:00.0", "garbage iommu_group link '\u00b2'"),
        (_superscript_virtfn, PF_82576, "garbage SR-IOV link name 'virtfn\u00b2'"),
        (_virtfn_target_newline, PF_82576, "virtfn0 links to '0000:04:10.1\\n', not a PCI address"),
        (
            _physfn_target_newline,
            "0000:04:11.5",
            "physfn links to '0000:04:00.1\\n', not a PCI address",
        ),
    ],
    ids=[
        "superscript-group",
        "superscript-virtfn",
        "virtfn-target-newline",
        "physfn-target-newline",
    ],
)
def test_link_with_a_name_the_kernel_never_writes_is_a_problem(
    sink: FakeHost, damage: Callable[[FakeHost], None], address: str, problem: str
) -> None:
    damage(sink)
    host = scan_host(sink.fs)
    assert problem in host.devices[A(address)].problems
    assert len(host.devices) == len(sink.funcs) and not host.skipped


def test_vf_links_beside_a_garbage_one_keep_their_indexes(sink: FakeHost) -> None:
    _superscript_virtfn(sink)
    sriov = scan_host(sink.fs).devices[A(PF_82576)].sriov
    assert sriov is not None and sriov.vf_indexes == tuple(range(7))


MDEV = "4b20d080-1b54-4048-85b3-a6a62d165c01"


def _mdev_at(h: FakeHost, parent: str) -> None:
    mdev = h.root / "sys/devices/pci0000:00" / parent / "22222222-2222-2222-2222-222222222222"
    mdev.mkdir(parents=True)
    (mdev / "mdev_type").symlink_to("../mdev_supported_types/nvidia-231")
    (h.root / "sys/bus/mdev/devices" / mdev.name).symlink_to(
        f"../../../devices/pci0000:00/{parent}/{mdev.name}"
    )


def test_mdev_with_a_garbage_group_name_has_no_group(sink: FakeHost) -> None:
    _relink(
        sink.root / "sys/bus/mdev/devices" / MDEV / "iommu_group",
        "../../../../kernel/iommu_groups/\u00b2",
    )
    (mdev,) = scan_host(sink.fs).mdevs
    assert mdev.uuid == MDEV and mdev.iommu_group is None


@pytest.mark.parametrize("parent", ["0000:00:ff.0", "0000:00:0A.0"], ids=["slot-ff", "upper-case"])
def test_mdev_under_a_parent_the_kernel_never_names_is_skipped(sink: FakeHost, parent: str) -> None:
    _mdev_at(sink, parent)
    host = scan_host(sink.fs)
    assert [m.uuid for m in host.mdevs] == [MDEV]
    assert (
        SkippedDevice("22222222-2222-2222-2222-222222222222", "its parent is not a PCI function")
        in host.skipped
    )


T4 = "0000:65:00.0"  # revision a1, NUMA node 0


def _write(address: str, name: str, text: str) -> Callable[[FakeHost], None]:
    return lambda h: (h.device_dir(address) / name).write_text(text)


def _remove(address: str, name: str) -> Callable[[FakeHost], None]:
    return lambda h: (h.device_dir(address) / name).unlink()


def _virtfn_to_nowhere(h: FakeHost) -> None:
    (h.device_dir(PF_82576) / "virtfn7").symlink_to("../0000:04:12.1")


GPU_AVAILABLE = "mdev_supported_types/nvidia-231/available_instances"


@pytest.mark.parametrize(
    ("damage", "address", "problem", "check"),
    [
        (_write(T4, "revision", "0xzz\n"), T4, "garbage revision '0xzz'",
         lambda d: d.revision == "00"),
        (_remove(T4, "revision"), T4, "unreadable revision", lambda d: d.revision == "00"),
        (_write(T4, "numa_node", "1_0\n"), T4, "garbage numa_node '1_0'",
         lambda d: d.numa_node is None),
        (_write(T4, "numa_node", "+1\n"), T4, "garbage numa_node '+1'",
         lambda d: d.numa_node is None),
        (_write(PF_82576, "sriov_numvfs", "xx\n"), PF_82576, "garbage sriov_numvfs 'xx'",
         lambda d: d.sriov.num_vfs == 0 and len(d.sriov.vfs) == 7),
        (_write(PF_82576, "sriov_totalvfs", "7_0\n"), PF_82576, "garbage sriov_totalvfs '7_0'",
         lambda d: d.sriov.total_vfs == 0 and d.sriov.num_vfs == 7),
        (_write(PF_82576, "sriov_drivers_autoprobe", "yes\n"), PF_82576,
         "garbage sriov_drivers_autoprobe 'yes'", lambda d: d.sriov.drivers_autoprobe is None),
        (_virtfn_to_nowhere, PF_82576, "virtfn7 links to 0000:04:12.1, which is not on the PCI bus",
         lambda d: len(d.sriov.vfs) == 8),
        (_write("0000:3b:00.0", GPU_AVAILABLE, "lots\n"), "0000:3b:00.0",
         f"garbage {GPU_AVAILABLE} 'lots'", lambda d: d.mdev_types[4].available_instances == 0),
    ],
    ids=[
        "garbage-revision",
        "no-revision",
        "numa-with-underscore",
        "numa-with-plus",
        "garbage-numvfs",
        "totalvfs-with-underscore",
        "garbage-autoprobe",
        "virtfn-to-a-missing-function",
        "garbage-available-instances",
    ],
)  # fmt: skip
def test_garbage_value_is_a_problem_and_the_device_is_kept(
    sink: FakeHost,
    damage: Callable[[FakeHost], None],
    address: str,
    problem: str,
    check,  # type: ignore[no-untyped-def]
) -> None:
    before = scan_host(sink.fs).devices[A(address)]
    damage(sink)
    host = scan_host(sink.fs)
    device = host.devices[A(address)]
    assert device.problems == (problem,)
    assert check(device)
    assert (device.vendor_device, device.driver, device.iommu_group) == (
        before.vendor_device, before.driver, before.iommu_group
    )  # fmt: skip
    assert len(host.devices) == len(sink.funcs) and not host.skipped


def test_numa_node_minus_one_is_no_node_and_no_problem(sink: FakeHost) -> None:
    device = scan_host(sink.fs).devices[A("0000:01:00.0")]
    assert (device.numa_node, device.problems) == (None, ())


def test_same_garbled_uevent_on_two_devices_reads_each_ones_files(sink: FakeHost) -> None:
    """Parsed uevent heads are reused across functions; a fallback's answer never is."""
    addresses = [A("0000:65:00.0"), A("0000:17:00.1")]  # a T4, an audio function
    before = scan_host(sink.fs).devices
    for address in addresses:
        _garbage_uevent(_device_dir(sink, str(address)))
    after = scan_host(sink.fs).devices
    assert [after[a].vendor_device for a in addresses] == [
        before[a].vendor_device for a in addresses
    ]
    assert after[addresses[0]].vendor_device != after[addresses[1]].vendor_device


def test_functions_of_one_model_share_parsed_values(sink: FakeHost) -> None:
    vfs = [d for d in scan_host(sink.fs).devices.values() if d.vendor_device == "8086:10ca"]
    assert len(vfs) > 1
    assert all(vf.class_code is vfs[0].class_code for vf in vfs)
    assert all(vf.revision is vfs[0].revision for vf in vfs)


def test_unreadable_member_blocks_viability(sink: FakeHost) -> None:
    _garbage_everything(_device_dir(sink, "0000:17:00.1"))
    host = scan_host(sink.fs)
    assert not host.group_viability(15).viable


def test_vanished_and_foreign_entries(sink: FakeHost) -> None:
    devices = sink.root / "sys/bus/pci/devices"
    (devices / "0000:99:00.0").symlink_to("../../../devices/pci0000:00/0000:99:00.0")
    (devices / "not-an-address").symlink_to("../../../devices")
    host = scan_host(sink.fs)
    reasons = {s.name: s.reason for s in host.skipped}
    assert reasons == {
        "0000:99:00.0": "vanished during the scan",
        "not-an-address": "not a PCI address",
    }


def test_device_removed_between_listing_and_reading(
    sink: FakeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_listdir = os.listdir

    def listdir_then_remove(path):  # type: ignore[no-untyped-def]
        names = real_listdir(path)
        if str(path).endswith("bus/pci/devices") and "0000:b3:00.0" in sink.funcs:
            sink.remove_device("0000:b3:00.0")
        return names

    monkeypatch.setattr(os, "listdir", listdir_then_remove)
    host = scan_host(sink.fs)
    assert A("0000:b3:00.0") not in host.devices
    assert [s.name for s in host.skipped] == ["0000:b3:00.0"]
    assert A("0000:65:00.0") in host.devices


def test_bad_root(tmp_path: Path) -> None:
    with pytest.raises(HostReadError, match="not a sysfs root"):
        scan_host(HostFS.under(tmp_path / "missing"))


def test_unbind_and_remove_follow_the_kernel(sink: FakeHost) -> None:
    sink.unbind("0000:65:00.0")
    host = scan_host(sink.fs)
    assert host.devices[A("0000:65:00.0")].driver is None
    assert not host.groups[11].vfio_node
    sink.remove_device("0000:04:00.1")
    host = scan_host(sink.fs)
    assert A("0000:04:00.1") not in host.devices and A("0000:04:10.1") not in host.devices
    assert 40 not in host.groups


def test_rescan_keeps_unchanged_devices_and_groups(sink: FakeHost) -> None:
    """Given the previous snapshot, what did not change is the previous object."""
    before = scan_host(sink.fs)
    assert scan_host(sink.fs, before) is before  # nothing changed: the same snapshot
    sink.unbind("0000:65:00.0")
    again = scan_host(sink.fs, before)
    assert again != before and again == scan_host(sink.fs)
    assert all(again.devices[a] is d for a, d in before.devices.items() if a != A("0000:65:00.0"))
    assert again.groups[11] != before.groups[11]  # its /dev/vfio node went with the driver
    assert all(again.groups[n] is g for n, g in before.groups.items() if n != 11)
    assert all(a is d.address for a, d in again.devices.items())


@pytest.mark.parametrize(
    ("change", "address"),
    [("unbind", "0000:65:00.0"), ("remove", "0000:04:10.1")],
    ids=["unbound", "vf-removed"],
)
def test_rescan_builds_what_changed(sink: FakeHost, change: str, address: str) -> None:
    before = scan_host(sink.fs)
    if change == "unbind":
        sink.unbind(address)
    else:
        sink.remove_device(address)
    after = scan_host(sink.fs, before)
    assert after == scan_host(sink.fs)  # the same snapshot as a scan from nothing
    changed = {a for a, d in after.devices.items() if d is not before.devices.get(a)}
    if change == "unbind":
        assert changed == {A(address)} and after.devices[A(address)].driver is None
    else:  # the PF's virtfn0 link is left naming a function that is gone: the PF notes it
        assert A(address) not in after.devices and changed == {A(PF_82576)}
        assert after.devices[A(PF_82576)].problems == (
            f"virtfn0 links to {address}, which is not on the PCI bus",
        )
