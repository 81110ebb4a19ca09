"""Binding benchmark: bind N VFs to vfio-pci and restore them on a fake host.

The fake host lives in /dev/shm when there is one (sysfs is in memory too); the state file is
in the ordinary temporary directory, so its fsyncs are real. The fake kernel's file work is
timed apart (a timing writer wraps it) and subtracted: "hostdev" columns are hostdev's own
cost (scan, guards, state file, plans, verification reads). A real kernel's driver probe and
remove callbacks are in neither; the real-kernel comparison is measured in the VM.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from hostdev.binding import BindOptions, bind_devices, restore_devices
from hostdev.binding.guards import no_ipv4_probe
from hostdev.host.model import PciAddress
from hostdev.host.writer import RecordingWriter
from hostdev.testing.examples import base_host
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

ROUNDS = 3


def _host(root: Path, vfs: int) -> tuple[FakeHost, list[PciAddress]]:
    host = base_host(root)
    host.add_driver("ice")
    host.add_driver("iavf")
    host.add_pf(
        "0000:40:00.0",
        "8086",
        "1592",
        "020000",
        total_vfs=vfs,
        vf_device="1889",
        num_vfs=vfs,
        vf_driver="iavf",
        driver="ice",
        iommu_group=500,
    )
    return host, [PciAddress.parse(a) for a in host.vfs_of("0000:40:00.0")]


class _TimedWriter:
    """Passes writes to the fake kernel and adds up the time they take there."""

    def __init__(self, inner: FakeKernelWriter) -> None:
        self.inner = inner
        self.seconds = 0.0

    def write(self, path: str, value: str) -> None:
        start = time.perf_counter()
        try:
            self.inner.write(path, value)
        finally:
            self.seconds += time.perf_counter() - start


def _own_time(writer: _TimedWriter, action: Callable[[], object]) -> tuple[float, float]:
    """(total seconds, seconds outside the fake kernel) of one action."""
    writer.seconds = 0.0
    start = time.perf_counter()
    action()
    total = time.perf_counter() - start
    return total, total - writer.seconds


def _measure(vfs: int) -> list[float]:
    """Median seconds: bind total, bind own, restore total, restore own, dry run."""
    shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
    with tempfile.TemporaryDirectory(dir=shm) as fake, tempfile.TemporaryDirectory() as tmp:
        host, addresses = _host(Path(fake) / "host", vfs)
        writer = _TimedWriter(FakeKernelWriter(host))
        options = BindOptions(state_file=Path(tmp) / "state.json", ipv4_probe=no_ipv4_probe)
        dry = replace(options, dry_run=True)
        samples: list[list[float]] = [[] for _ in range(5)]
        for _ in range(ROUNDS):
            bind = _own_time(writer, lambda: bind_devices(host.fs, writer, addresses, options))
            restore = _own_time(writer, lambda: restore_devices(host.fs, writer, None, options))
            dry_run = _own_time(
                writer, lambda: bind_devices(host.fs, RecordingWriter(), addresses, dry)
            )
            for index, value in enumerate((*bind, *restore, dry_run[0])):
                samples[index].append(value)
        return [statistics.median(s) for s in samples]


def run() -> list[str]:
    """Markdown lines for docs/benchmarks.md."""
    lines = [
        "## Binding (fake host, fake kernel)",
        "",
        f"Median of {ROUNDS} runs; one run binds (or restores) every VF of one PF.",
        "",
        "| VFs | bind run (hostdev) | hostdev per device | restore run (hostdev) "
        "| hostdev per device | dry run |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for vfs in (7, 255):
        bind, bind_own, restore, restore_own, dry = _measure(vfs)
        lines.append(
            f"| {vfs} | {_ms(bind)} ({_ms(bind_own)}) | {_ms(bind_own / vfs)} | "
            f"{_ms(restore)} ({_ms(restore_own)}) | {_ms(restore_own / vfs)} | {_ms(dry)} |"
        )
    return lines


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds < 0.01 else f"{seconds * 1e3:.1f} ms"


if __name__ == "__main__":
    print("\n".join(run()))
