"""Phase one of the scan: where a function's directory is, reading several files at once."""

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostdev.host import rawread
from hostdev.host.fs import read_many
from hostdev.host.model import PciAddress
from hostdev.host.rawread import device_path
from hostdev.host.scan import scan_host
from hostdev.testing.examples import build_example
from hostdev.testing.fakehost import FakeHost

A = PciAddress.parse


@pytest.mark.parametrize(
    ("link", "expected"),
    [
        (
            "../../../devices/pci0000:00/0000:00:03.0/0000:01:00.0",
            "/S/devices/pci0000:00/0000:00:03.0/0000:01:00.0",
        ),
        (
            "../../../devices/pci0000:64/0000:64:00.0/0000:65:00.0",
            "/S/devices/pci0000:64/0000:64:00.0/0000:65:00.0",
        ),
        ("/elsewhere/0000:01:00.0", "/S/bus/pci/devices/0000:01:00.0"),
        (None, "/S/bus/pci/devices/0000:01:00.0"),
    ],
    ids=["kernel-shape", "behind-bridge", "odd-link-uses-bus-entry", "not-a-link"],
)
def test_device_path(link: str | None, expected: str) -> None:
    assert device_path("/S", "0000:01:00.0", link) == expected


@pytest.fixture
def attr_dir(tmp_path: Path) -> Iterator[int]:
    (tmp_path / "uevent").write_bytes(b"PCI_CLASS=30000\n")
    (tmp_path / "revision").write_bytes(b"0xa1\n")
    (tmp_path / "a-directory").mkdir()
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


@pytest.mark.parametrize(
    ("names", "expected"),
    [
        (("uevent", "revision"), [b"PCI_CLASS=30000\n", b"0xa1\n"]),
        (("uevent", "missing", "revision"), [b"PCI_CLASS=30000\n", None, b"0xa1\n"]),
        (("a-directory",), [None]),
        ((), []),
    ],
    ids=["all-present", "missing-reads-none", "unreadable-reads-none", "nothing-asked"],
)
def test_read_many(attr_dir: int, names: tuple[str, ...], expected: list[bytes | None]) -> None:
    assert read_many(names, attr_dir) == expected


@pytest.fixture
def sink(tmp_path: Path) -> FakeHost:
    return build_example("kitchen-sink", tmp_path).add_vfio_cdevs()


def test_bus_entry_that_is_a_plain_directory_is_still_read(sink: FakeHost) -> None:
    """A sysfs copy (e.g. cp -r, a support bundle) has directories where the kernel has links."""
    entry = sink.root / "sys/bus/pci/devices/0000:65:00.0"
    real = entry.resolve()
    entry.unlink()
    shutil.copytree(real, entry, symlinks=True)
    device = scan_host(sink.fs).devices[A("0000:65:00.0")]
    assert (device.vendor_device, device.driver, device.iommu_group) == (
        "10de:1eb8",
        "vfio-pci",
        11,
    )
    assert device.pci_path == ()  # no link target, so no PCIe path


@pytest.mark.parametrize("enabled", [True, False], ids=["collector-on", "collector-off"])
def test_scan_leaves_the_cyclic_collector_as_it_found_it(sink: FakeHost, enabled: bool) -> None:
    was = gc.isenabled()
    try:
        gc.enable() if enabled else gc.disable()
        scan_host(sink.fs)
        assert gc.isenabled() == enabled
    finally:
        gc.enable() if was else gc.disable()


PF, VF = "0000:04:00.1", "0000:04:10.3"  # the kitchen sink's 82576 port and its VF 1


def _unbound(host: FakeHost) -> None:
    host.unbind(VF)


def _no_vfio_dev(host: FakeHost) -> None:  # a kernel before 6.1 gives no vfio-dev directory
    shutil.rmtree(host.device_dir(VF) / "vfio-dev")


def _no_cdev_node(host: FakeHost) -> None:  # 6.1-6.5: vfio-dev/vfioN, but no /dev node
    shutil.rmtree(host.root / "dev/vfio/devices")


def _on_igbvf(host: FakeHost) -> None:
    host.unbind(VF)
    host.bind(VF, "igbvf")
    host.add_netdev(VF, "enp4s16f3")


def _pf_without_link(host: FakeHost) -> None:  # the PF does not name it: no known VF
    (host.device_dir(PF) / "virtfn1").unlink()


@pytest.mark.parametrize(
    ("change", "listed", "driver", "cdev", "netdevs", "vf_index"),
    [
        (None, False, "vfio-pci", True, (), 1),
        (_unbound, False, None, False, (), 1),
        (_no_vfio_dev, False, "vfio-pci", False, (), 1),
        (_no_cdev_node, False, "vfio-pci", False, (), 1),
        (_on_igbvf, True, "igbvf", False, ("enp4s16f3",), 1),
        (_pf_without_link, True, "vfio-pci", True, (), None),
    ],
    ids=[
        "vfio-pci",
        "unbound",
        "vfio-pci-no-vfio-dev",
        "vfio-pci-no-cdev-node",
        "netdev-driver",
        "pf-does-not-name-it",
    ],
)
def test_a_vf_its_pf_listed_on_vfio_pci_or_unbound_is_read_without_a_listing(  # type: ignore[no-untyped-def]
    sink: FakeHost, monkeypatch: pytest.MonkeyPatch, change, listed, driver, cdev, netdevs, vf_index
) -> None:
    if change is not None:
        change(sink)
    listings: list[str] = []
    real_listdir = os.listdir

    def recording_listdir(path):  # type: ignore[no-untyped-def]
        listings.append(str(path))
        return real_listdir(path)

    monkeypatch.setattr(os, "listdir", recording_listdir)
    vf = scan_host(sink.fs).devices[A(VF)]
    assert any(path.endswith(f"/{VF}") for path in listings) == listed
    assert (vf.driver, vf.vfio_cdev is not None, vf.netdevs) == (driver, cdev, netdevs)
    assert (vf.physfn, vf.vf_index) == (A(PF), vf_index)


@pytest.mark.parametrize("example", ["kitchen-sink", "sriov-node"], ids=str)
def test_listing_every_function_builds_the_same_host(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = build_example(example, tmp_path)
    quick = scan_host(host.fs)
    monkeypatch.setattr(rawread, "_PLAIN_VF_UEVENTS", ())  # every function listed
    assert scan_host(host.fs) == quick
