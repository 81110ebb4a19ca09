"""Named example hosts, shared by the tests, the benchmarks and `make demo`.

Each builder adds its devices to a FakeHost at addresses no other builder uses, so
`kitchen-sink` can combine them all. IDs and names are the real ones of the hardware the
seeds talk about (Tesla T4 10de:1eb8, Intel 82576 8086:10c9 with VFs 8086:10ca, QAT 8086:6f54).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from hostdev.host.model import VFIO_PCI, MdevType, PciAddress, PciDevice
from hostdev.testing.fakehost import FakeHost

T4 = ("10de", "1eb8")
T4_MDEV_TYPES = (  # (type id, name, max instances) of an NVIDIA T4 with the GRID driver
    ("nvidia-222", "GRID T4-1B", 16),
    ("nvidia-223", "GRID T4-2B", 8),
    ("nvidia-226", "GRID T4-2A", 8),
    ("nvidia-230", "GRID T4-1Q", 16),
    ("nvidia-231", "GRID T4-2Q", 8),
    ("nvidia-232", "GRID T4-4Q", 4),
    ("nvidia-233", "GRID T4-8Q", 2),
    ("nvidia-234", "GRID T4-16Q", 1),
)


def base_host(root: Path, *, cdev: bool = False, iommu: bool = True) -> FakeHost:
    """A host bridge, an IOMMU with interrupt remapping, vfio loaded, an e1000e NIC."""
    host = FakeHost(root, cdev=cdev)
    if iommu:
        host.add_iommu("intel").set_cmdline(
            "BOOT_IMAGE=/vmlinuz-6.1.0 root=/dev/sda1 ro quiet intel_iommu=on iommu=pt"
        )
    host.load_vfio()
    host.add_device(
        "0000:00:00.0",
        "8086",
        "2020",
        "060000",
        iommu_group=0 if iommu else None,
        subsystem=("8086", "0000"),
    )
    host.add_bridge("0000:00:1c.0", iommu_group=1 if iommu else None)
    host.add_driver("e1000e")
    host.add_device(
        "0000:01:00.0",
        "8086",
        "10d3",
        "020000",
        driver="e1000e",
        iommu_group=2 if iommu else None,
        parent="0000:00:1c.0",
        netdevs=("eno1",),
        subsystem=("8086", "0000"),
    )
    return host


def add_gpus(host: FakeHost) -> None:
    """Two Tesla T4 on vfio-pci (own groups, NUMA 0 and 1) and a GeForce whose audio shares."""
    for port, gpu, group, numa in (
        ("0000:64:00.0", "0000:65:00.0", 10, 0),
        ("0000:b2:00.0", "0000:b3:00.0", 12, 1),
    ):
        host.add_bridge(port, iommu_group=group)
        host.add_device(gpu, *T4, "030200", revision="a1", driver=VFIO_PCI,
                        iommu_group=group + 1, numa_node=numa, parent=port,
                        subsystem=("10de", "12a2"))  # fmt: skip
    host.add_bridge("0000:16:00.0", iommu_group=14)
    host.add_device(
        "0000:17:00.0",
        "10de",
        "2184",
        "030000",
        revision="a1",
        driver=VFIO_PCI,
        iommu_group=15,
        numa_node=0,
        parent="0000:16:00.0",
        subsystem=("1458", "3fc2"),
    )
    host.add_device(
        "0000:17:00.1",
        "10de",
        "1aeb",
        "040300",
        revision="a1",
        driver=VFIO_PCI,
        iommu_group=15,
        numa_node=0,
        parent="0000:16:00.0",
        subsystem=("1458", "3fc2"),
    )


def add_sriov_nic(host: FakeHost) -> None:
    """An Intel 82576 dual-port NIC; port enp4s0f1 has 7 VFs (seed 003), offset 128 stride 2."""
    host.add_driver("igb")
    host.add_driver("igbvf")
    host.add_bridge("0000:00:03.0", iommu_group=20)
    for function, ifname, vfs in ((0, "enp4s0f0", 0), (1, "enp4s0f1", 7)):
        host.add_pf(
            f"0000:04:00.{function}",
            "8086",
            "10c9",
            "020000",
            total_vfs=7,
            vf_device="10ca",
            num_vfs=vfs,
            vf_driver=VFIO_PCI,
            offset=128,
            stride=2,
            first_vf_group=40,
            driver="igb",
            iommu_group=21 + function,
            parent="0000:00:03.0",
            netdevs=(ifname,),
            subsystem=("8086", "a02b"),
            revision="01",
        )


def add_qat(host: FakeHost) -> None:
    """An Intel QuickAssist 8086:6f54 on vfio-pci (seed 001 names it intel.com/qat)."""
    host.add_device(
        "0000:3d:00.0",
        "8086",
        "6f54",
        "0b4000",
        driver=VFIO_PCI,
        iommu_group=30,
        numa_node=0,
        subsystem=("8086", "0000"),
    )


def add_bridge_group(host: FakeHost) -> None:
    """A PCIe-to-PCI bridge whose two conventional NICs share its group (like the QEMU guest)."""
    host.add_bridge("0000:00:06.0", iommu_group=31)
    host.add_bridge(
        "0000:05:00.0",
        vendor="1b36",
        device="000e",
        class_code="060400",
        driver=None,
        iommu_group=32,
        parent="0000:00:06.0",
    )
    host.add_driver("e1000")
    host.add_driver("8139cp")
    host.add_device(
        "0000:06:01.0",
        "8086",
        "100e",
        "020000",
        driver="e1000",
        iommu_group=32,
        parent="0000:05:00.0",
        netdevs=("ens1",),
        subsystem=("1af4", "1100"),
    )
    host.add_device(
        "0000:06:02.0",
        "10ec",
        "8139",
        "020000",
        driver="8139cp",
        iommu_group=32,
        parent="0000:05:00.0",
        netdevs=("ens2",),
        subsystem=("1af4", "1100"),
    )


def add_intel_pch(host: FakeHost, *, driver: str | None = VFIO_PCI) -> None:
    """The usual Intel 00:1f.x group: the ISA/LPC bridge on lpc_ich, audio and SMBus on driver."""
    for address, device, class_code, on in (
        ("0000:00:1f.0", "a304", "060100", "lpc_ich"),
        ("0000:00:1f.3", "a348", "040300", driver),
        ("0000:00:1f.4", "a323", "0c0500", driver),
    ):
        host.add_device(address, "8086", device, class_code, driver=on, iommu_group=36)


def add_edge_cases(host: FakeHost) -> None:
    """A device with no IOMMU group and devices in PCI domains 0001 and 10000 (VMD)."""
    host.add_driver("nvme")
    host.add_device(
        "0000:08:00.0", "1b36", "0010", "010802", driver="nvme", subsystem=("1af4", "1100")
    )
    host.add_device(
        "0001:02:00.0",
        "15b3",
        "101b",
        "020000",
        driver=VFIO_PCI,
        iommu_group=33,
        numa_node=1,
        subsystem=("15b3", "0007"),
    )
    host.add_device(
        "10000:01:00.0",
        "144d",
        "a80a",
        "010802",
        driver="nvme",
        iommu_group=34,
        subsystem=("144d", "a801"),
    )


def add_vgpu(host: FakeHost) -> None:
    """A Tesla T4 on the NVIDIA GRID driver offering vGPU types, with one GRID T4-2Q mdev."""
    host.add_driver("nvidia")
    host.add_device(
        "0000:3b:00.0",
        *T4,
        "030200",
        revision="a1",
        driver="nvidia",
        iommu_group=35,
        numa_node=0,
        subsystem=("10de", "12a2"),
    )
    for type_id, name, count in T4_MDEV_TYPES:
        host.add_mdev_type(
            "0000:3b:00.0",
            type_id,
            name,
            available=count,
            description=f"num_heads=4, frl_config=60, framebuffer={16 // count}G",
        )
    host.add_mdev("0000:3b:00.0", "nvidia-231", "4b20d080-1b54-4048-85b3-a6a62d165c01")


def vgpu_card(address: PciAddress, types: tuple[MdevType, ...]) -> PciDevice:
    """An in-memory Tesla T4 on the nvidia driver offering these mdev types (no sysfs tree),
    for the mdev planner's tests and benchmark."""
    return PciDevice(
        address,
        "10de",
        "1eb8",
        "10de",
        "12a2",
        "030200",
        "a1",
        "nvidia",
        None,
        None,
        0,
        mdev_types=types,
    )


def gpu_node(root: Path) -> FakeHost:
    """A GPU worker: two Tesla T4 and a consumer GPU with its audio function, all on vfio."""
    host = base_host(root)
    add_gpus(host)
    return host


def sriov_node(root: Path) -> FakeHost:
    """An SR-IOV NIC with 7 VFs on vfio-pci, and a QAT accelerator."""
    host = base_host(root)
    add_sriov_nic(host)
    add_qat(host)
    return host


def vgpu_node(root: Path) -> FakeHost:
    """A vGPU node: a T4 with mdev types and one existing mdev."""
    host = base_host(root)
    add_vgpu(host)
    return host


def kitchen_sink(root: Path) -> FakeHost:
    """Every example device on one host."""
    host = base_host(root)
    for add in (add_gpus, add_sriov_nic, add_qat, add_bridge_group, add_edge_cases, add_vgpu):
        add(host)
    return host


def shared_groups(root: Path) -> FakeHost:
    """The kitchen sink with group 32's two NICs and the 82576 PF enp4s0f1 moved to vfio-pci.

    Group 15 (GPU + audio), group 32 (two NICs behind a PCIe-to-PCI bridge) and a PF with its
    VFs then all hold several vfio devices that must never go to two pods.
    """
    host = kitchen_sink(root)
    for address in ("0000:06:01.0", "0000:06:02.0", "0000:04:00.1"):
        host.bind(address, VFIO_PCI)
    return host


def no_iommu(root: Path) -> FakeHost:
    """A host booted without the IOMMU: no groups, no /sys/class/iommu entries."""
    host = base_host(root, iommu=False)
    host.add_device("0000:65:00.0", *T4, "030200", revision="a1", driver="nouveau")
    return host


def synthetic(root: Path, *, pfs: int = 16, vfs_per_pf: int = 255, gpus: int = 8) -> FakeHost:
    """A large host for benchmarks: pfs PFs with vfs_per_pf VFs each, plus gpus T4s."""
    host = base_host(root)
    host.add_driver("ice")
    for index in range(pfs):
        bus = 0x20 + index * 2  # each PF's VFs spill onto the next bus
        host.add_pf(
            f"0000:{bus:02x}:00.0",
            "8086",
            "1592",
            "020000",
            total_vfs=vfs_per_pf,
            vf_device="1889",
            num_vfs=vfs_per_pf,
            vf_driver=VFIO_PCI,
            driver="ice",
            iommu_group=1000 + index,
            first_vf_group=10000 + index * vfs_per_pf,  # clear of the PFs' groups
            numa_node=index % 2,
        )
    for index in range(gpus):
        host.add_device(
            f"0000:{0xC0 + index:02x}:00.0",
            *T4,
            "030200",
            driver=VFIO_PCI,
            iommu_group=100 + index,
            numa_node=index % 2,
        )
    return host


EXAMPLES: dict[str, Callable[[Path], FakeHost]] = {
    "gpu-node": gpu_node,
    "sriov-node": sriov_node,
    "vgpu-node": vgpu_node,
    "kitchen-sink": kitchen_sink,
    "shared-groups": shared_groups,
    "no-iommu": no_iommu,
}


def build_example(name: str, root: Path) -> FakeHost:
    """Build the named example host under root."""
    return EXAMPLES[name](root)
