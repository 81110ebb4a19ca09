"""Device plugin figures: `hostdev serve` as a process against the kubelet simulator.

- process start → every resource registered and its devices listed (target ≤ 700 ms), on the
  GPU node example, without a config and with examples/gpu-node.yaml;
- Allocate round trip over the unix socket, p50/p99 (target ≤ 2 ms p99), on a synthetic host
  serving 4,096 devices;
- RSS of the serving process with those 4,096 devices (target ≤ 45 MiB);
- kubelet restart (socket dir wiped) → every resource registered again (target ≤ 1 s p99).
"""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc

from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.api import deviceplugin_pb2_grpc as pb_grpc
from hostdev.kubelet.plugin import socket_name
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.examples import build_example, synthetic

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "gpu-node.yaml"
START_ROUNDS = 7
ALLOCATE_CALLS = 2000
RESTARTS = 20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


async def _spawn(root: Path, plugin_dir: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hostdev.cli.main",
        "serve",
        "--host-root",
        str(root),
        "--plugin-dir",
        str(plugin_dir),
        *extra,
        stderr=asyncio.subprocess.DEVNULL,
    )


async def _stop(proc: asyncio.subprocess.Process) -> None:
    proc.send_signal(signal.SIGTERM)
    await proc.wait()


async def _ready(sim: KubeletSimulator, expected: dict[str, int]) -> None:
    await sim.wait_for(
        lambda: all(sim.allocatable().get(n) == c for n, c in expected.items()), timeout=60
    )


async def _start_once(
    root: Path, plugin_dir: Path, expected: dict[str, int], extra: tuple[str, ...]
) -> float:
    async with KubeletSimulator(plugin_dir, write_checkpoint=False) as sim:
        started = time.perf_counter()
        proc = await _spawn(root, plugin_dir, *extra)
        try:
            await _ready(sim, expected)
            return time.perf_counter() - started
        finally:
            await _stop(proc)


async def _start_times(tmp: Path) -> list[str]:
    root = tmp / "gpu"
    build_example("gpu-node", root)
    cases = [
        (
            "no config (3 resources)",
            (),
            {
                "devices.kubevirt.io/10de_1eb8": 2,
                "devices.kubevirt.io/10de_2184": 1,
                "devices.kubevirt.io/10de_1aeb": 1,
            },
        ),
        (
            "examples/gpu-node.yaml (2 resources)",
            ("--config", str(CONFIG)),
            {"nvidia.com/TU104GL_Tesla_T4": 2, "example.com/geforce": 2},
        ),
    ]
    lines = ["| start → all registered (GPU node) | p50 | max | target |", "|---|---|---|---|"]
    for label, extra, expected in cases:
        times = [await _start_once(root, tmp / "dp", expected, extra) for _ in range(START_ROUNDS)]
        lines.append(
            f"| {label}, {START_ROUNDS} runs | {_ms(statistics.median(times))} | "
            f"{_ms(max(times))} | ≤ 700 ms |"
        )
    return lines


def _rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def _allocate_latencies(plugin_dir: Path, resource: str, device: str) -> list[float]:
    request = pb.AllocateRequest(
        container_requests=[pb.ContainerAllocateRequest(devices_ids=[device])]
    )
    async with grpc.aio.insecure_channel(f"unix://{plugin_dir / socket_name(resource)}") as ch:
        stub = pb_grpc.DevicePluginStub(ch)
        await stub.Allocate(request)  # connect and warm up
        latencies = []
        for _ in range(ALLOCATE_CALLS):
            started = time.perf_counter()
            await stub.Allocate(request)
            latencies.append(time.perf_counter() - started)
    return latencies


async def _restart_times(sim: KubeletSimulator, names: list[str]) -> list[float]:
    times = []
    for _ in range(RESTARTS):
        before = {n: sim.registration_count(n) for n in names}
        started = time.perf_counter()
        await sim.restart()
        await sim.wait_for(
            lambda b=before: all(sim.registration_count(n) > b[n] for n in names), timeout=60
        )
        times.append(time.perf_counter() - started)
    return times


async def _large_host(tmp: Path) -> list[str]:
    root = tmp / "big"
    synthetic(root, pfs=16, vfs_per_pf=255, gpus=16)
    expected = {"devices.kubevirt.io/8086_1889": 4080, "devices.kubevirt.io/10de_1eb8": 16}
    plugin_dir = tmp / "dp-big"
    async with KubeletSimulator(plugin_dir, write_checkpoint=False) as sim:
        proc = await _spawn(root, plugin_dir)
        try:
            await _ready(sim, expected)
            rss, _ = _rss_kib(proc.pid)
            latencies = await _allocate_latencies(
                plugin_dir, "devices.kubevirt.io/8086_1889", _first_device(sim)
            )
            restarts = await _restart_times(sim, list(expected))
            _, peak = _rss_kib(proc.pid)
        finally:
            await _stop(proc)
    return _large_lines(rss, peak, latencies, restarts)


def _first_device(sim: KubeletSimulator) -> str:
    return sorted(sim.devices("devices.kubevirt.io/8086_1889"))[0]


def _large_lines(rss: int, peak: int, latencies: list[float], restarts: list[float]) -> list[str]:
    return [
        "| 4,096 devices served (synthetic host) | figure | target |",
        "|---|---|---|",
        f"| RSS after registration | {rss / 1024:.1f} MiB | ≤ 45 MiB |",
        f"| peak RSS (after {ALLOCATE_CALLS} Allocates and {RESTARTS} kubelet restarts) | "
        f"{peak / 1024:.1f} MiB | ≤ 45 MiB |",
        f"| Allocate round trip p50 ({ALLOCATE_CALLS} calls, 1 device) | "
        f"{_ms(_pct(latencies, 0.5))} | |",
        f"| Allocate round trip p99 | {_ms(_pct(latencies, 0.99))} | ≤ 2 ms |",
        f"| kubelet restart → re-registered p50 ({RESTARTS} restarts, 2 resources) | "
        f"{_ms(_pct(restarts, 0.5))} | |",
        f"| kubelet restart → re-registered p99 | {_ms(_pct(restarts, 0.99))} | ≤ 1 s |",
    ]


async def _main() -> list[str]:
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    with tempfile.TemporaryDirectory(prefix="hdb-", dir="/tmp") as tmp:
        lines: list[Any] = ["## Device plugin", ""]
        lines += await _start_times(Path(tmp))
        lines.append("")
        lines += await _large_host(Path(tmp))
    return lines


def run() -> list[str]:
    """Run every device plugin measurement and return markdown lines."""
    return asyncio.run(_main())


if __name__ == "__main__":
    print("\n".join(run()))
