"""SR-IOV and mdev planning on a large synthetic host: the per-rescan costs the daemon pays.

16 PFs with 255 VFs each (4,080 VFs). Measured: the PF view, `reconcile_sriov` for 16
declared PFs in the steady state (what a rescan costs), nova device_spec selection over every
function, the VF poll of one PF, and the mdev planner on 8 cards with 8 types each.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hostdev.host.model import Host, MdevType, PciAddress
from hostdev.host.scan import scan_host
from hostdev.mdev_plan import plan_mdevs
from hostdev.selectors_sriov import parse_nova_whitelist
from hostdev.sriov import pf_infos, read_vfs
from hostdev.sriov_apply import SriovSpec, reconcile_sriov
from hostdev.testing.examples import synthetic, vgpu_card

ROUNDS = 7


def _best(fn: Callable[[], Any], rounds: int = ROUNDS) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def _mdev_host(cards: int = 8) -> Host:
    types = tuple(
        MdevType(f"nvidia-{230 + i}", f"GRID T4-{i}Q", 16 >> (i % 5), "vfio-pci", "")
        for i in range(8)
    )
    addresses = [PciAddress(0, 0x3B + index, 0, 0) for index in range(cards)]
    devices = {address: vgpu_card(address, types) for address in addresses}
    return Host(devices=devices, groups={})


def run() -> list[str]:
    """Markdown lines with the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        fake = synthetic(Path(tmp) / "host", pfs=16, vfs_per_pf=255, gpus=0)
        fs = fake.fs
        host = scan_host(fs)
        pfs = [d.address for d in host.sorted_devices() if d.is_pf]
        specs = [SriovSpec(str(pf), 255, "vfio-pci") for pf in pfs]
        nova = parse_nova_whitelist(
            '[{"address": "*:20:*.*", "physical_network": "physnet1"},'
            ' {"vendor_id": "8086", "product_id": "1889", "address": "0000:22:00.0"}]'
        )
        devices = host.sorted_devices()
        figures = {
            "PF view (16 PFs, 4,080 VFs)": _best(lambda: pf_infos(host, fs)),
            "reconcile_sriov, 16 PFs, steady state": _best(lambda: reconcile_sriov(host, specs)),
            "nova device_spec over every function": _best(
                lambda: [d for d in devices if any(s.matches(d, host) for s in nova)]
            ),
            "VF poll of one PF (255 virtfn links + drivers)": _best(lambda: read_vfs(fs, pfs[0])),
        }
    mdev_host = _mdev_host()
    figures["mdev plan, 8 cards x 8 types"] = _best(
        lambda: plan_mdevs(mdev_host, ["GRID T4-2Q", "nvidia-233", "GRID_T4-4Q"])
    )
    lines = ["## SR-IOV and mdev planning", "", "| operation | best of 7 |", "| --- | --- |"]
    lines += [f"| {name} | {seconds * 1000:.2f} ms |" for name, seconds in figures.items()]
    return lines
