"""The kubelet simulator's own cost, measured with the in-process fake device plugin.

Figures are the floor under any plugin benchmark that runs against the simulator: Register
(dial + GetDevicePluginOptions) until the first device list is seen, pod admission round trips
(GetPreferredAllocation + Allocate over a unix socket), and a 4,096-device ListAndWatch update.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.fakeplugin import FakeDevicePlugin, make_device

RESOURCE = "example.com/dev"
PODS = 400
REGISTRATIONS = 30
BIG = 4096


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def _registration_times(root: Path) -> list[float]:
    times = []
    async with KubeletSimulator(root / "plugins", write_checkpoint=False) as sim:
        for i in range(REGISTRATIONS):
            plugin = FakeDevicePlugin([make_device(f"d{j}") for j in range(8)])
            await plugin.serve(sim.plugin_dir / f"p{i}.sock")
            start = time.perf_counter()
            await plugin.register(sim.kubelet_socket, f"example.com/r{i}")
            await sim.wait_devices(f"example.com/r{i}", 8)
            times.append(time.perf_counter() - start)
            await plugin.stop()
    return times


async def _admission_times(root: Path) -> list[float]:
    plugin = FakeDevicePlugin(
        [make_device(f"d{j}", numa=j % 2) for j in range(64)],
        preferred=lambda request: list(request.available_deviceIDs[: request.allocation_size]),
    )
    times = []
    async with KubeletSimulator(root / "plugins2", write_checkpoint=False) as sim:
        await plugin.serve(sim.plugin_dir / "p.sock")
        await plugin.register(sim.kubelet_socket, RESOURCE)
        await sim.wait_devices(RESOURCE, 64)
        for i in range(PODS):
            start = time.perf_counter()
            await sim.create_pod(f"pod{i}", {"c": {RESOURCE: 1}})
            times.append(time.perf_counter() - start)
            await sim.delete_pod(f"pod{i}")
        await plugin.stop()
    return times


async def _big_update(root: Path) -> tuple[float, float]:
    plugin = FakeDevicePlugin(
        [make_device(f"0000:{i >> 8:02x}:{i & 0xFF:02x}.0") for i in range(BIG)]
    )
    async with KubeletSimulator(root / "plugins3") as sim:
        await plugin.serve(sim.plugin_dir / "big.sock")
        start = time.perf_counter()
        await plugin.register(sim.kubelet_socket, RESOURCE)
        await sim.wait_devices(RESOURCE, BIG)
        first = time.perf_counter() - start
        plugin.set_devices(
            [make_device(d.ID, "Unhealthy") for d in plugin.devices[:1]] + plugin.devices[1:]
        )
        start = time.perf_counter()
        await sim.wait_devices(RESOURCE, BIG - 1)
        update = time.perf_counter() - start
        await plugin.stop()
    return first, update


async def _measure() -> list[str]:
    with tempfile.TemporaryDirectory(prefix="hdb", dir="/tmp") as tmp:
        root = Path(tmp)
        registrations = await _registration_times(root)
        admissions = await _admission_times(root)
        first, update = await _big_update(root)
    return [
        "## Kubelet simulator (fake plugin, unix sockets)",
        "",
        "| measure | p50 | p99 |",
        "| --- | --- | --- |",
        f"| Register → first device list seen ({REGISTRATIONS} plugins) | "
        f"{_ms(statistics.median(registrations))} | {_ms(_percentile(registrations, 0.99))} |",
        f"| pod admission: GetPreferredAllocation + Allocate ({PODS} pods) | "
        f"{_ms(statistics.median(admissions))} | {_ms(_percentile(admissions, 0.99))} |",
        "",
        f"{BIG:,} devices: Register → list seen {_ms(first)}; one health change → seen "
        f"{_ms(update)} (checkpoint written on every update, as the kubelet does).",
    ]


def run() -> list[str]:
    """Run the measurements and return markdown lines."""
    return asyncio.run(_measure())
