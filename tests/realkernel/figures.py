"""Guest-side figures (not a test module): run by `make bench-realkernel`, recorded, never asserted.

Measures, inside the TCG guest: the in-process scan, the whole `hostdev list` command, and the
time to move one device to vfio-pci with `hostdev bind` next to Debian's `dpdk-devbind.py` on
the same devices. Results go to figures.json, which the harness copies to the host.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .guest import (
    E1000E,
    HOSTDEV,
    driver_of,
    hostdev,
    record_figure,
    restore_drivers,
    snapshot_drivers,
    subcommands,
)

pytestmark = [
    pytest.mark.guest,
    pytest.mark.skipif(
        os.environ.get("HOSTDEV_REALKERNEL_FIGURES") != "1",
        reason="figures run only from make bench-realkernel",
    ),
]
ROUNDS = 3


def median_seconds(action: Callable[[], object], rounds: int, reset: Callable[[], None]) -> float:
    """Median wall time of action() over ROUNDS runs, reset() after each (not timed)."""
    times = []
    for _ in range(rounds):
        start = time.monotonic()
        action()
        times.append(time.monotonic() - start)
        reset()
    return round(statistics.median(times), 3)


def test_scan_and_list_times() -> None:
    from hostdev.host.fs import HostFS
    from hostdev.host.scan import scan_host

    scan_host(HostFS())
    record_figure(
        "scan_host, in-process, median of 20 (s)",
        median_seconds(lambda: scan_host(HostFS()), 20, lambda: None),
    )
    if "list" in subcommands():
        record_figure(
            "hostdev list -o json, whole command, median (s)",
            median_seconds(lambda: hostdev("list", "-o", "json"), ROUNDS, lambda: None),
        )
    record_figure(
        "hostdev --version, CLI start-up, median (s)",
        median_seconds(lambda: hostdev("--version"), ROUNDS, lambda: None),
    )
    record_figure(
        "python -c pass (s)",
        median_seconds(
            lambda: subprocess.run(["python", "-c", "pass"], check=True), ROUNDS, lambda: None
        ),
    )


def test_bind_time_next_to_dpdk_devbind(tmp_path: Path) -> None:
    devbind = os.environ.get("HOSTDEV_REALKERNEL_DEVBIND", "")
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    saved = snapshot_drivers()
    state = tmp_path / "state.json"

    def per_device(command: Callable[[str], list[str]]) -> float:
        """Median over the three e1000e NICs of one bind each, undone between them."""
        times = []
        for address in E1000E:
            start = time.monotonic()
            subprocess.run(command(address), check=True, capture_output=True)
            times.append(time.monotonic() - start)
            assert driver_of(address) == "vfio-pci"
            state.unlink(missing_ok=True)
            restore_drivers(saved)
        return round(statistics.median(times), 3)

    if devbind:
        seconds = per_device(lambda a: ["python", devbind, "-b", "vfio-pci", a])
        record_figure("dpdk-devbind.py -b vfio-pci, one device, median (s)", seconds)
    if "bind" in subcommands():
        seconds = per_device(lambda a: [*HOSTDEV, "bind", a, "--state-file", str(state)])
        record_figure("hostdev bind, one device, median (s)", seconds)
