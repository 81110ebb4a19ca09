"""Device plugin figures: `hostdev serve` as a process against the kubelet simulator.

- process start → every resource registered and its devices listed (target ≤ 700 ms), on the
  GPU node example, without a config and with examples/gpu-node.yaml;
- Allocate round trip over the unix socket, p50/p99 (target ≤ 2 ms p99), on a synthetic host
  serving 4,096 devices, in rounds alternating with the same client against a servicer that
  answers at once (the gRPC floor), so machine noise hits both alike;
- RSS of the serving process with those 4,096 devices (target ≤ 45 MiB): after registration,
  after a first /metrics scrape, and at its peak;
- kubelet restart (socket dir wiped) → every resource registered again (target ≤ 1 s p99).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from bench.allocate_client import allocate_request
from hostdev.config import DEFAULT_CONFIG
from hostdev.daemon.node import Node
from hostdev.host.fs import HostFS
from hostdev.host.scan import scan_host
from hostdev.kubelet.accounting import GroupAccounting
from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.api import deviceplugin_pb2_grpc as pb_grpc
from hostdev.kubelet.plugin import DevicePluginService, socket_name
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.kubelet.state import DeviceTable
from hostdev.testing.examples import build_example, synthetic

CONFIG = Path(__file__).resolve().parents[1] / "examples" / "gpu-node.yaml"
START_ROUNDS = 7
ALLOCATE_CALLS = 2000
ALLOCATE_ROUNDS = 4  # Allocate and floor rounds alternate
RESTARTS = 20


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _pod_resources(plugin_dir: Path) -> Path:
    path = plugin_dir.parent / f"{plugin_dir.name}-pr" / "kubelet.sock"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _simulator(plugin_dir: Path) -> KubeletSimulator:
    """The kubelet side, with PodResources (devices sharing a group stay blocked without it)."""
    return KubeletSimulator(plugin_dir, _pod_resources(plugin_dir), write_checkpoint=False)


async def _spawn(root: Path, plugin_dir: Path, *extra: str) -> asyncio.subprocess.Process:
    extra = ("--pod-resources-socket", str(_pod_resources(plugin_dir)), *extra)
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
    async with _simulator(plugin_dir) as sim:
        started = time.perf_counter()
        proc = await _spawn(root, plugin_dir, *extra)
        try:
            await _ready(sim, expected)
            return time.perf_counter() - started
        finally:
            await _stop(proc)


async def _in_process_start(root: Path, plugin_dir: Path, expected: dict[str, int]) -> float:
    """Node.start() → every resource listed, inside one process (no interpreter start)."""
    async with _simulator(plugin_dir) as sim:
        started = time.perf_counter()
        node = Node(HostFS.under(root), DEFAULT_CONFIG, plugin_dir, sim.kubelet_socket)
        try:
            await node.start()
            await _ready(sim, expected)
            return time.perf_counter() - started
        finally:
            await node.stop()


async def _cli_start() -> float:
    """`hostdev serve --help`: interpreter start and every CLI module's imports."""
    started = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hostdev.cli.main",
        "serve",
        "--help",
        stdout=asyncio.subprocess.DEVNULL,
    )
    await proc.wait()
    return time.perf_counter() - started


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
    inside = [await _in_process_start(root, tmp / "dp", cases[0][2]) for _ in range(START_ROUNDS)]
    lines.append(
        "| of which Node.start() → all listed, in-process, no config | "
        f"{_ms(statistics.median(inside))} | {_ms(max(inside))} | |"
    )
    imports = [await _cli_start() for _ in range(START_ROUNDS)]
    lines.append(
        "| of which interpreter + CLI imports (`hostdev serve --help`) | "
        f"{_ms(statistics.median(imports))} | {_ms(max(imports))} | |"
    )
    return lines


def _rss_kib(pid: int) -> tuple[int, int]:
    fields = dict(
        line.split(":", 1)
        for line in Path(f"/proc/{pid}/status").read_text().splitlines()
        if ":" in line
    )
    return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])


async def _allocate_latencies(socket_path: Path, devices: list[str]) -> list[float]:
    """Allocate round trips from a client process of its own, one distinct device per call, as
    the kubelet does for new pods (allocating one device again and again would make every call
    release the last holder)."""
    client = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.allocate_client",
        str(socket_path),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        cwd=Path(__file__).resolve().parents[1],
    )
    out, _ = await client.communicate(json.dumps(devices).encode())
    latencies: list[float] = json.loads(out)
    return latencies


class _DoNothingPlugin(pb_grpc.DevicePluginServicer):
    """Allocate answers an empty response at once: the floor of a Python gRPC round trip."""

    async def Allocate(self, request: Any, context: Any) -> Any:
        return pb.AllocateResponse()


@contextlib.asynccontextmanager
async def _floor_server(tmp: Path) -> AsyncIterator[Path]:
    """A servicer that does nothing, in this process: what gRPC alone costs here."""
    socket_path = tmp / "floor.sock"
    server = grpc.aio.server()
    pb_grpc.add_DevicePluginServicer_to_server(_DoNothingPlugin(), server)
    server.add_insecure_port(f"unix://{socket_path}")
    await server.start()
    try:
        yield socket_path
    finally:
        await server.stop(None)


async def _alternating(
    plugin_socket: Path, floor_socket: Path, devices: list[str]
) -> tuple[list[float], list[float]]:
    """Allocate round trips and floor round trips, in alternating rounds."""
    served: list[float] = []
    floor: list[float] = []
    per_round = ALLOCATE_CALLS // ALLOCATE_ROUNDS
    for start in range(0, ALLOCATE_CALLS, per_round):
        served += await _allocate_latencies(plugin_socket, devices[start : start + per_round])
        floor += await _allocate_latencies(floor_socket, [f"dev{i}" for i in range(per_round)])
    return served, floor


async def _allocate_handler_latencies(root: Path, devices: list[str]) -> list[float]:
    """The servicer's own Allocate time (no gRPC, no client) on the same 4,096 devices, with
    the daemon's group accounting and a new device each call."""
    accounting = GroupAccounting()
    table = DeviceTable(DEFAULT_CONFIG, scan_host(HostFS.under(root)), accounting)
    accounting.ledger.reconcile({}, time.monotonic())  # PodResources answered: nothing held
    service = DevicePluginService(table, "devices.kubevirt.io/8086_1889")
    latencies = []
    for device in devices[:ALLOCATE_CALLS]:
        request = allocate_request(device)
        started = time.perf_counter()
        await service.Allocate(request, None)
        latencies.append(time.perf_counter() - started)
        await asyncio.sleep(0)  # the publish each Allocate defers runs between calls
    table.close()
    return latencies


async def _restart_times(sim: KubeletSimulator, expected: dict[str, int]) -> list[float]:
    """kubelet restart → every resource registered again and its devices listed again."""
    times = []
    for _ in range(RESTARTS):
        before = {n: sim.registration_count(n) for n in expected}
        started = time.perf_counter()
        await sim.restart()
        await sim.wait_for(
            lambda b=before: all(sim.registration_count(n) > b[n] for n in expected), timeout=60
        )
        await _ready(sim, expected)
        times.append(time.perf_counter() - started)
    return times


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def _scrape(port: int) -> None:
    """One Prometheus scrape of /metrics, as the RSS after a scrape needs."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: bench\r\n\r\n")
    reply = await reader.read()
    writer.close()
    await writer.wait_closed()
    if not reply.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"/metrics answered {reply[:40]!r}")


async def _large_host(tmp: Path) -> list[str]:
    root = tmp / "big"
    synthetic(root, pfs=16, vfs_per_pf=255, gpus=16)
    expected = {"devices.kubevirt.io/8086_1889": 4080, "devices.kubevirt.io/10de_1eb8": 16}
    plugin_dir = tmp / "dp-big"
    port = _free_port()
    async with _simulator(plugin_dir) as sim:
        proc = await _spawn(root, plugin_dir, "--metrics-address", f"127.0.0.1:{port}")
        try:
            await _ready(sim, expected)
            rss, _ = _rss_kib(proc.pid)
            await _scrape(port)
            scraped, _ = _rss_kib(proc.pid)
            devices = _devices(sim)
            plugin_socket = plugin_dir / socket_name("devices.kubevirt.io/8086_1889")
            async with _floor_server(tmp) as floor_socket:
                latencies, floor = await _alternating(plugin_socket, floor_socket, devices)
            restarts = await _restart_times(sim, expected)
            _, peak = _rss_kib(proc.pid)
        finally:
            await _stop(proc)
    handler = await _allocate_handler_latencies(root, devices)
    return [
        *_large_lines((rss, scraped, peak), latencies, restarts),
        f"| Allocate handler alone p50 / p99 (in-process, no gRPC, group accounting) | "
        f"{_ms(_pct(handler, 0.5))} / {_ms(_pct(handler, 0.99))} | |",
        f"| gRPC floor: same client, a servicer that answers at once, rounds alternating with "
        f"the Allocate rounds, p50 / p99 | {_ms(_pct(floor, 0.5))} / {_ms(_pct(floor, 0.99))} | |",
    ]


def _devices(sim: KubeletSimulator) -> list[str]:
    return sorted(sim.devices("devices.kubevirt.io/8086_1889"))


def _large_lines(
    rss_kib: tuple[int, int, int], latencies: list[float], restarts: list[float]
) -> list[str]:
    rss, scraped, peak = rss_kib
    return [
        "| 4,096 devices served (synthetic host) | figure | target |",
        "|---|---|---|",
        f"| RSS after registration | {rss / 1024:.1f} MiB | ≤ 45 MiB |",
        f"| RSS after the first /metrics scrape | {scraped / 1024:.1f} MiB | ≤ 45 MiB |",
        f"| peak RSS (after the scrape, {ALLOCATE_CALLS} Allocates and {RESTARTS} kubelet "
        f"restarts) | {peak / 1024:.1f} MiB | ≤ 45 MiB |",
        f"| Allocate round trip p50 ({ALLOCATE_CALLS} calls in {ALLOCATE_ROUNDS} rounds, a new "
        "device each, client in its own process) | "
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
