"""The live node: how fast a device change reaches the kubelet, and what an idle node costs.

1. Event → ListAndWatch update delivered, on fake hosts (72 and 4,104 served devices) against
   the kubelet simulator. A fake host has no kernel, so each unbind or AER rise is announced
   by a synthetic uevent sent through the listener's socketpair (the same code path as the
   netlink socket); removals are seen by inotify on the fake /dev/vfio alone. The clock stops
   when the simulator has received the device list with the change.
2. CPU of an idle `hostdev serve` process (kernel uevents on, backstop 60 s, metrics on) over
   a quiet window, read from /proc/<pid>/stat; voluntary context switches count wake-ups.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from hostdev import metrics
from hostdev.config import DEFAULT_CONFIG
from hostdev.daemon.live import LiveNode, LiveOptions
from hostdev.kubelet.constants import HEALTHY, UNHEALTHY
from hostdev.kubelet.registration import Backoff
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.examples import synthetic
from hostdev.testing.fakeevents import UeventInjector, uevent_for
from hostdev.testing.fakehost import FakeHost

EVENTS = 50
EVENTS_BIG = int(os.environ.get("HOSTDEV_BENCH_BIG_EVENTS", "10"))
REMOVALS = 8
IDLE_S = float(os.environ.get("HOSTDEV_BENCH_IDLE_S", "20"))
T4 = "devices.kubevirt.io/10de_1eb8"
VF = "devices.kubevirt.io/8086_1889"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _wait_health(sim: KubeletSimulator, resource: str, device: str, health: str) -> None:
    def seen() -> bool:
        entry = sim.devices(resource).get(device)
        return entry is not None and entry.health == health

    await sim.wait_for(seen, timeout=30)


@dataclass
class Figures:
    """Latencies (seconds) of one host size."""

    served: int = 0
    unbind: list[float] = field(default_factory=list)
    removal: list[float] = field(default_factory=list)
    aer: list[float] = field(default_factory=list)
    scan_s: float = 0.0


async def _latencies(root: Path, pfs: int, vfs: int, events: int) -> Figures:
    host = synthetic(root / "host", pfs=pfs, vfs_per_pf=vfs, gpus=8)
    injector = UeventInjector()
    live = LiveOptions(rescan_interval=600, kernel_uevents=False, uevent_socket=injector.daemon_end)
    figures = Figures()
    async with KubeletSimulator(root / "plugins", write_checkpoint=False) as sim:
        node = LiveNode(host.fs, DEFAULT_CONFIG, sim.plugin_dir, sim.kubelet_socket,
                        backoff=Backoff(0.01, 2, 0.1), live=live)  # fmt: skip
        vfs_list = sorted(host.vfs_of("0000:20:00.0") + host.vfs_of("0000:22:00.0"))
        for address in vfs_list:  # AER-capable functions have the file from boot
            host.set_aer_fatal(address, {})
        await node.start()
        try:
            await node.wait_registered()
            await sim.wait_devices(VF, pfs * vfs, timeout=120)
            await sim.wait_devices(T4, 8, timeout=120)
            figures.served = sum(len(sim.devices(r)) for r in (T4, VF))
            figures.unbind = await _unbind_rebind(host, sim, injector, vfs_list[:events])
            figures.aer = await _aer(host, sim, injector, vfs_list[-events:])
            figures.removal = await _removals(host, sim, min(events, REMOVALS))
            figures.scan_s = metrics.SCAN_SECONDS.value
        finally:
            await node.stop()
            injector.close()
    return figures


async def _unbind_rebind(host: FakeHost, sim: KubeletSimulator, injector: UeventInjector,
                         addresses: list[str]) -> list[float]:  # fmt: skip
    times = []
    for address in addresses:
        message = uevent_for(host, "unbind", address)
        start = time.perf_counter()
        host.unbind(address)
        injector.send(message)
        await _wait_health(sim, VF, address, UNHEALTHY)
        times.append(time.perf_counter() - start)
        host.bind(address, "vfio-pci")
        injector.send(uevent_for(host, "bind", address, "vfio-pci"))
        await _wait_health(sim, VF, address, HEALTHY)
    return times


async def _aer(host: FakeHost, sim: KubeletSimulator, injector: UeventInjector,
               addresses: list[str]) -> list[float]:  # fmt: skip
    """AER fatal count rises, the kernel sends a `change`: the full-rescan path."""
    times = []
    for address in addresses:
        start = time.perf_counter()
        host.set_aer_fatal(address, {"Poisoned TLP": 1})
        injector.send(uevent_for(host, "change", address))
        await _wait_health(sim, VF, address, UNHEALTHY)
        times.append(time.perf_counter() - start)
    return times


async def _removals(host: FakeHost, sim: KubeletSimulator, count: int) -> list[float]:
    """Remove GPUs (each has its own group, so /dev/vfio/<group> goes with it)."""
    times = []
    for address in sorted(sim.devices(T4))[:count]:
        host.remove_device(address)  # no uevent: inotify on /dev/vfio only
        # The loop was blocked while the fake removed files, so the inotify events are
        # queued and unhandled: the clock starts now, leaving out the fake's own work.
        start = time.perf_counter()
        await _wait_health(sim, T4, address, UNHEALTHY)
        times.append(time.perf_counter() - start)
    return times


def _proc_stat(pid: int) -> tuple[float, int]:
    """(CPU seconds used, voluntary context switches) of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
    switches = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("voluntary_ctxt_switches"):
            switches = int(line.split()[1])
    for task in Path(f"/proc/{pid}/task").iterdir():  # gRPC runs threads of its own
        if int(task.name) == pid:
            continue
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                switches += int(line.split()[1])
    return cpu, switches


async def _idle_cpu(root: Path) -> tuple[float, float, int]:
    synthetic(root / "host", pfs=2, vfs_per_pf=16, gpus=4)
    async with KubeletSimulator(root / "plugins", write_checkpoint=False) as sim:
        argv = [sys.executable, "-m", "hostdev.cli.main", "serve", "--host-root",
                str(root / "host"), "--plugin-dir", str(sim.plugin_dir),
                "--metrics-address", "127.0.0.1:0", "--log-level", "warning"]  # fmt: skip
        proc = subprocess.Popen(argv)
        try:
            await sim.wait_registered(VF, timeout=60)
            await sim.wait_registered(T4, timeout=60)
            await asyncio.sleep(2)  # let start-up settle
            cpu0, sw0 = _proc_stat(proc.pid)
            await asyncio.sleep(IDLE_S)
            cpu1, sw1 = _proc_stat(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    return cpu1 - cpu0, IDLE_S, sw1 - sw0


def _row(label: str, served: int, times: list[float]) -> str:
    return (f"| {label} | {served} | {len(times)} | {_ms(statistics.median(times))} | "
            f"{_ms(_percentile(times, 0.99))} | {_ms(max(times))} |")  # fmt: skip


def run() -> list[str]:
    """Measure and return markdown lines."""
    lines = [
        "### Live node",
        "",
        "| change → ListAndWatch update seen by the simulator | served devices | events "
        "| p50 | p99 | max |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    scans = []
    for pfs, vfs, events in ((2, 32, EVENTS), (16, 255, EVENTS_BIG)):
        with tempfile.TemporaryDirectory(prefix="hdb") as tmp:
            f = asyncio.run(_latencies(Path(tmp), pfs, vfs, events))
        lines.append(_row("unbind + synthetic uevent (fast path)", f.served, f.unbind))
        lines.append(_row("remove, inotify on /dev/vfio only (fast path)", f.served, f.removal))
        lines.append(_row("AER rise + change uevent (full rescan)", f.served, f.aer))
        scans.append(f"{_ms(f.scan_s)} with {f.served} devices")
    with tempfile.TemporaryDirectory(prefix="hdb") as tmp:
        cpu, window, switches = asyncio.run(_idle_cpu(Path(tmp)))
    lines += [
        "",
        f"Last full rescan: {'; '.join(scans)}.",
        "",
        f"Idle `hostdev serve` (36 devices, uevents on, backstop 60 s, metrics on): "
        f"{cpu * 1000:.0f} ms CPU over {window:.0f} s = {cpu / window * 100:.3f}% of a core "
        f"(≈ {cpu * 60 / window * 1000:.0f} ms per idle minute), "
        f"{switches} voluntary context switches ({switches / window:.1f}/s, all threads).",
    ]
    return lines
