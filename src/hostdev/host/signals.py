"""Cheap readers of health signals: AER fatal-error counters and /dev/vfio group nodes.

AER: the kernel (4.19+, CONFIG_PCIEAER) shows per device one line per uncorrectable fatal error
kind, ``<name> <count>`` (names may hold spaces), and a last line ``TOTAL_ERR_FATAL <n>``.
Devices without AER capability have no such file; they simply get no counter.
"""

from __future__ import annotations

from collections.abc import Iterable

from hostdev.host.fs import HostFS, kernel_number, list_dir, read_text
from hostdev.host.model import PciAddress

AER_FATAL_FILE = "aer_dev_fatal"
_TOTAL = "TOTAL_ERR_FATAL"


def parse_aer_fatal(text: str | None) -> int | None:
    """The TOTAL_ERR_FATAL count of an aer_dev_fatal file, or None when absent or garbage."""
    if not text:
        return None
    for line in reversed(text.splitlines()):
        name, _, count = line.strip().rpartition(" ")
        if name.strip() == _TOTAL:
            return kernel_number(count)
    return None


def read_aer_fatal(fs: HostFS, addresses: Iterable[PciAddress]) -> dict[PciAddress, int]:
    """Fatal AER totals of the given functions; those without a readable counter are left out."""
    counts: dict[PciAddress, int] = {}
    for address in addresses:
        count = parse_aer_fatal(
            read_text(fs.sys("bus", "pci", "devices", str(address), AER_FATAL_FILE))
        )
        if count is not None:
            counts[address] = count
    return counts


def vfio_group_nodes(fs: HostFS) -> frozenset[int]:
    """The IOMMU group numbers that have a /dev/vfio/<group> node (PCI and mdev groups)."""
    numbers = (kernel_number(name) for name in list_dir(fs.dev("vfio")))
    return frozenset(n for n in numbers if n is not None)
