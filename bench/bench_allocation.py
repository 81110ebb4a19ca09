"""Allocation costs at 4,096 served devices: availability, Allocate's check, preferred choice.

The devices are built in memory (16 PFs × 255 VFs + 16 GPUs, two NUMA nodes, VFs under
their PF's root port), so only the allocation layer is timed. Two shapes: PFs on a host
driver (VFs share nothing) and PFs served too (every VF is a rival of its PF).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from hostdev.allocation import Holder, Inventory, ServedDevice, compute_availability
from hostdev.host.model import PciAddress
from hostdev.inventory import make_inventory
from hostdev.ledger import AllocationLedger
from hostdev.placement import PreferenceRequest, preferred_allocation

PFS, VFS_PER_PF, GPUS = 16, 255, 16
VF_RESOURCE, GPU_RESOURCE, PF_RESOURCE = "example.com/vf", "example.com/gpu", "example.com/pf"


def devices(serve_pfs: bool) -> list[ServedDevice]:
    """4,096 served devices (4,112 with the PFs)."""
    found: list[ServedDevice] = []
    for pf_index in range(PFS):
        pf = PciAddress(0, 0x20 + pf_index * 2, 0, 0)
        port = f"0000:{0x10 + pf_index:02x}:00.0"
        numa = pf_index % 2
        if serve_pfs:
            found.append(
                ServedDevice(
                    str(pf), PF_RESOURCE, pf, 1000 + pf_index, numa, (port, str(pf)), is_pf=True
                )
            )
        for vf_index in range(VFS_PER_PF):
            vf = PciAddress(
                0, pf.bus + (vf_index + 1) // 256, ((vf_index + 1) % 256) >> 3, (vf_index + 1) & 7
            )
            found.append(
                ServedDevice(
                    str(vf),
                    VF_RESOURCE,
                    vf,
                    10000 + pf_index * 256 + vf_index,
                    numa,
                    (port, str(vf)),
                    physfn=pf,
                )
            )
    for gpu in range(GPUS):
        address = PciAddress(0, 0xC0 + gpu, 0, 0)
        found.append(
            ServedDevice(
                str(address),
                GPU_RESOURCE,
                address,
                100 + gpu,
                gpu % 2,
                (f"0000:b0:{gpu:02x}.0", str(address)),
            )
        )
    return found


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    """Milliseconds per call, one sample per round."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def p(samples: list[float], q: float) -> float:
    """The q-quantile (0..1) of samples."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def row(name: str, samples: list[float]) -> str:
    """One table row: p50, p99, max in ms."""
    return (
        f"| {name} | {len(samples)} | {p(samples, 0.5):.3f} | {p(samples, 0.99):.3f} | "
        f"{max(samples):.3f} |"
    )


def shape_rows(label: str, inventory: Inventory) -> list[str]:
    """Every measure for one inventory."""
    vfs = list(inventory.resource_ids(VF_RESOURCE))
    held = {i: Holder("ns", f"pod{n}", "c") for n, i in enumerate(vfs[:1024])}
    rows = [
        row(
            f"{label}: availability, nothing held",
            timed(lambda: compute_availability(inventory, {}), 20),
        ),
        row(
            f"{label}: availability, 1,024 held",
            timed(lambda: compute_availability(inventory, held), 20),
        ),
    ]
    ledger = AllocationLedger(inventory)
    ledger.reconcile({}, 0.0)
    ledger.availability()
    picks = iter(vfs[1024:2048])
    rows.append(
        row(
            f"{label}: Allocate check + record (1 device, up to 1,000 held)",
            timed(lambda: ledger.allocate(VF_RESOURCE, [[next(picks)]], 1.0), 1000),
        )
    )
    availability = ledger.availability()
    free = [i for i in vfs if availability.statuses[i].healthy and i not in ledger.holdings]
    for size in (1, 8):
        request = PreferenceRequest(inventory, availability, free, [], size)
        rows.append(
            row(
                f"{label}: GetPreferredAllocation size {size} of {len(free)}",
                timed(lambda r=request: preferred_allocation(r), 50),
            )
        )
    return rows


def run() -> list[str]:
    """Time both shapes and return the markdown section."""
    lines = [
        "## Allocation",
        "",
        f"{PFS} PFs × {VFS_PER_PF} VFs + {GPUS} GPUs served (4,096 devices; 4,112 with "
        "the PFs). Milliseconds per call.",
        "",
        "| measure | calls | p50 ms | p99 ms | max ms |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, serve_pfs in (("VFs only", False), ("PFs served too", True)):
        built = timed(lambda s=serve_pfs: make_inventory(devices(s)), 3)
        inventory = make_inventory(devices(serve_pfs))
        lines.append(row(f"{label}: build the inventory", built))
        lines += shape_rows(label, inventory)
    return lines


if __name__ == "__main__":
    print("\n".join(run()))
