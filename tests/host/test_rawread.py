"""Phase one of the scan: where a function's directory is, reading several files at once."""

import gc
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

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
    return build_example("kitchen-sink", tmp_path)


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
