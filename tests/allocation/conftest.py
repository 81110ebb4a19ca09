"""Fixtures for the allocation tests: scanned example hosts and the resources served on them."""

from __future__ import annotations

from pathlib import Path

import pytest

from hostdev.allocation import Inventory
from hostdev.host.model import Host
from hostdev.host.scan import scan_host
from hostdev.inventory import build_inventory
from hostdev.testing.examples import build_example

GPU_GROUP_15 = "0000:17:00.0"
AUDIO_GROUP_15 = "0000:17:00.1"
T4_NUMA0, T4_NUMA1 = "0000:65:00.0", "0000:b3:00.0"
NIC_A, NIC_B = "0000:06:01.0", "0000:06:02.0"  # group 32, behind a PCIe-to-PCI bridge
PF = "0000:04:00.1"
VFS = tuple(
    f"0000:04:{slot}.{fn}"
    for slot, fn in (("10", 1), ("10", 3), ("10", 5), ("10", 7), ("11", 1), ("11", 3), ("11", 5))
)
QAT = "0000:3d:00.0"
MDEV = "4b20d080-1b54-4048-85b3-a6a62d165c01"

SHARED_RESOURCES: dict[str, tuple[str, ...]] = {
    "example.com/gpu": (GPU_GROUP_15, T4_NUMA0, T4_NUMA1),
    "example.com/gpu-audio": (AUDIO_GROUP_15,),
    "example.com/nic-a": (NIC_A,),
    "example.com/nic-b": (NIC_B,),
    "example.com/pf": (PF,),
    "example.com/vf": VFS,
    "example.com/qat": (QAT,),
    "nvidia.com/GRID_T4-2Q": (MDEV,),
}


def scan_example(name: str, root: Path) -> Host:
    """Build a named example host under root and scan it."""
    return scan_host(build_example(name, root).fs)


@pytest.fixture(scope="session")
def shared_host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    """The shared-groups example host (NICs of group 32 and PF enp4s0f1 on vfio-pci)."""
    return scan_example("shared-groups", tmp_path_factory.mktemp("shared"))


@pytest.fixture(scope="session")
def kitchen_host(tmp_path_factory: pytest.TempPathFactory) -> Host:
    """The kitchen-sink example host (group 32's NICs still on e1000/8139cp)."""
    return scan_example("kitchen-sink", tmp_path_factory.mktemp("kitchen"))


@pytest.fixture(scope="session")
def shared(shared_host: Host) -> Inventory:
    """The inventory of SHARED_RESOURCES on the shared-groups host."""
    return build_inventory(shared_host, SHARED_RESOURCES)
