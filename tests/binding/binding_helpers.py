"""Shared pieces of the binding tests: the test host, its device addresses, a host snapshot."""

from __future__ import annotations

from pathlib import Path

from hostdev.testing.examples import add_bridge_group, add_gpus, base_host
from hostdev.testing.fakehost import FakeHost

# The shared group 32: bridge 0000:05:00.0 (no driver), e1000 0000:06:01.0, 8139cp 0000:06:02.0.
E1000 = "0000:06:01.0"
RTL = "0000:06:02.0"
NVME = "0000:0a:00.0"
GPU = "0000:0b:00.0"
GPU_AUDIO = "0000:0b:00.1"
NIC = "0000:01:00.0"  # e1000e, eno1, alone in group 2


def build_host(root: Path) -> FakeHost:
    """base_host + the bridge group + vfio GPUs + an NVMe disk and a GPU on nouveau."""
    host = base_host(root)
    add_bridge_group(host)
    add_gpus(host)
    host.add_driver("nvme")
    host.add_device(NVME, "144d", "a808", "010802", driver="nvme", iommu_group=50)
    host.add_driver("nouveau")
    host.add_driver("snd_hda_intel")
    host.add_device(GPU, "10de", "1eb8", "030200", driver="nouveau", iommu_group=51)
    host.add_device(GPU_AUDIO, "10de", "10f8", "040300", driver="snd_hda_intel", iommu_group=51)
    return host


def bindings(host: FakeHost) -> dict[str, tuple[str | None, str]]:
    """Every function's (driver, driver_override file) — to compare a host before and after."""
    return {
        address: (
            host.driver_of(address),
            (host.device_dir(address) / "driver_override").read_text().strip(),
        )
        for address in sorted(host.funcs)
    }
