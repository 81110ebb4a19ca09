"""The guest is what the other real-kernel tests assume: a VT-d IOMMU and the reference topology."""

from __future__ import annotations

from pathlib import Path

import pytest

from .guest import (
    E1000,
    E1000E,
    IOMMU_GROUPS,
    NVME_PF,
    RTL8139,
    SHARED_BRIDGE,
    SHARED_GROUP,
    driver_of,
    sysfs_groups,
)

pytestmark = pytest.mark.guest


def test_intel_iommu_with_interrupt_remapping() -> None:
    ecap = int(Path("/sys/class/iommu/dmar0/intel-iommu/ecap").read_text(), 16)
    assert ecap & (1 << 3), "extended capability IR (interrupt remapping) is off"
    assert (IOMMU_GROUPS / "0").is_dir()


def test_shared_group_holds_the_bridge_and_both_nics() -> None:
    members = {entry.name for entry in (IOMMU_GROUPS / str(SHARED_GROUP) / "devices").iterdir()}
    assert members == {SHARED_BRIDGE, E1000, RTL8139}


def test_each_pcie_endpoint_has_its_own_group() -> None:
    groups = sysfs_groups()
    endpoint_groups = [groups[address] for address in (*E1000E, NVME_PF)]
    assert len(set(endpoint_groups)) == len(endpoint_groups)
    assert all(list(groups.values()).count(group) == 1 for group in endpoint_groups)


@pytest.mark.parametrize(
    ("address", "driver"),
    [(E1000E[0], "e1000e"), (E1000, "e1000"), (RTL8139, "8139cp"), (NVME_PF, "nvme")],
    ids=["e1000e", "e1000", "rtl8139", "nvme"],
)
def test_coldplug_bound_the_native_drivers(address: str, driver: str) -> None:
    assert driver_of(address) == driver
