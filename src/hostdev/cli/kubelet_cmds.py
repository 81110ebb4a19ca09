"""`hostdev kubelet-sim` (a simulated kubelet for device plugins) and `hostdev inspect`.

kubelet-sim serves the kubelet's Registration API on <plugin-dir>/kubelet.sock, prints the
node's capacity and allocatable whenever they change, and plays an optional script of pod
and restart steps (see hostdev.kubelet.script). inspect dials one device plugin socket and
prints its options and devices.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from typing import Any, TextIO

from hostdev.cli.common import parse_duration, path_argument
from hostdev.cli.output import add_output_flag, dump, table
from hostdev.errors import BadInputError
from hostdev.kubelet import devicemanager
from hostdev.kubelet.constants import DEVICE_PLUGIN_DIR
from hostdev.kubelet.inspect import DEFAULT_TIMEOUT_S, inspect_plugin
from hostdev.kubelet.script import Step, load_script, run_script
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.waiting import wait_event


def register(subparsers: Any) -> None:
    """Add the kubelet-sim and inspect subcommands."""
    sim = subparsers.add_parser(
        "kubelet-sim",
        help="run a simulated kubelet that device plugins can register with",
        description="Serve the kubelet's device plugin Registration API and show node capacity.",
    )
    sim.add_argument(
        "--plugin-dir", required=True, type=path_argument, help="device plugin socket directory"
    )
    sim.add_argument(
        "--pod-resources-socket", type=path_argument, help="also serve PodResources v1 here"
    )
    sim.add_argument(
        "--duration",
        type=parse_duration,
        help="stop after this long: seconds, or 500ms, 30s, 5m, 1h (default: until Ctrl-C)",
    )
    sim.add_argument(
        "--script", type=path_argument, help="YAML steps to play (then exit unless --duration)"
    )
    sim.set_defaults(handler=run_kubelet_sim)

    insp = subparsers.add_parser(
        "inspect",
        help="show what a device plugin socket advertises",
        description="Dial a device plugin socket; print its options and first device list.",
    )
    insp.add_argument(
        "--socket", required=True, type=path_argument, help=f"e.g. {DEVICE_PLUGIN_DIR}/x.sock"
    )
    insp.add_argument(
        "--timeout", type=parse_duration, default=DEFAULT_TIMEOUT_S, help="how long to wait (5s)"
    )
    add_output_flag(insp)
    insp.set_defaults(handler=run_inspect)


def run_kubelet_sim(args: argparse.Namespace) -> int:
    """Handler of `hostdev kubelet-sim`."""
    steps = load_script(args.script) if args.script else None
    sim = KubeletSimulator(args.plugin_dir, pod_resources_socket=args.pod_resources_socket)
    return asyncio.run(_simulate(sim, steps, args.duration, sys.stdout))


async def _simulate(
    sim: KubeletSimulator, steps: list[Step] | None, duration: float | None, out: TextIO
) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        async with sim:
            out.write(f"kubelet simulator: registration socket {sim.kubelet_socket}\n")
            if sim.pod_resources_socket:
                out.write(f"kubelet simulator: pod resources socket {sim.pod_resources_socket}\n")
            out.flush()
            return await drive(sim, steps, duration, out, stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)


async def drive(
    sim: KubeletSimulator,
    steps: list[Step] | None,
    duration: float | None,
    out: TextIO,
    stop: asyncio.Event | None = None,
) -> int:
    """Run a started simulator: print status changes, play steps, then wait out duration."""
    stop = stop or asyncio.Event()
    printer = StatusPrinter(sim, out)
    watcher = asyncio.create_task(printer.run(), name="kubelet-sim-status")
    try:
        ok = await run_script(sim, steps, out) if steps is not None else True
        if duration is not None or steps is None:
            await wait_event(stop, duration)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        printer.show()
    return 0 if ok else 1


class StatusPrinter:
    """Prints Capacity/Allocatable whenever they differ from what was last printed."""

    def __init__(self, sim: KubeletSimulator, out: TextIO) -> None:
        self._sim = sim
        self._out = out
        self._shown = ""

    def show(self) -> None:
        """Print the status if it changed (and once there is any resource)."""
        cap, alloc = self._sim.capacity(), self._sim.allocatable()
        text = "\n".join(devicemanager.status_lines(cap, alloc)) + "\n"
        if text != self._shown and cap:
            self._out.write(text)
            self._out.flush()
            self._shown = text

    async def run(self) -> None:
        """Show the status after every change, until cancelled."""
        while True:
            self.show()
            await self._sim.wait_change(self._sim.version)


def run_inspect(args: argparse.Namespace) -> int:
    """Handler of `hostdev inspect`."""
    if args.timeout <= 0:
        raise BadInputError("--timeout must be > 0")
    report = asyncio.run(inspect_plugin(args.socket, args.timeout))
    if args.output in ("json", "yaml"):
        dump(report, args.output)
        return 0
    options = report["options"]
    print(f"Socket:   {report['socket']}")
    print(
        f"Options:  preStartRequired={str(options['preStartRequired']).lower()} "
        f"getPreferredAllocationAvailable={str(options['getPreferredAllocationAvailable']).lower()}"
    )
    print(f"Devices:  {len(report['devices'])}")
    rows = [
        [d["id"], d["health"], ",".join(str(n) for n in d["numaNodes"]) or "-"]
        for d in report["devices"]
    ]
    table(["ID", "HEALTH", "NUMA"], rows)
    return 0
