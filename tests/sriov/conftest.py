"""Fake hosts for the SR-IOV tests: the 82576 NIC of seed 003 and an NVMe PF like the guest's."""

from pathlib import Path

import pytest

from hostdev.testing.examples import base_host, sriov_node
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

NVME_PF = "0000:06:00.0"


def add_nvme_pf(host: FakeHost, *, driver: str | None = "nvme") -> FakeHost:
    """A QEMU NVMe PF 1b36:0010 with 4 VFs possible, as the real-kernel guest shows it."""
    host.add_driver("nvme")
    host.add_pf(
        NVME_PF,
        "1b36",
        "0010",
        "010802",
        total_vfs=4,
        vf_device="0010",
        driver=driver,
        iommu_group=15,
        subsystem=("1af4", "1100"),
    )
    return host


@pytest.fixture
def nic(tmp_path: Path) -> FakeHost:
    """The sriov-node example: enp4s0f0 (0 of 7 VFs) and enp4s0f1 (7 VFs on vfio-pci)."""
    return sriov_node(tmp_path / "host")


@pytest.fixture
def nvme(tmp_path: Path) -> FakeHost:
    """A host with the NVMe PF bound to nvme and no VFs yet."""
    return add_nvme_pf(base_host(tmp_path / "host"))


@pytest.fixture
def kernel(nic: FakeHost) -> FakeKernelWriter:
    """The fake kernel over the NIC host."""
    return FakeKernelWriter(nic)
