"""`hostdev serve` on the real kernel, driven by the kubelet simulator: advertise, health, rescan.

The three e1000e NICs are moved to vfio-pci (raw sysfs writes), so the plugin serves them with
no config as devices.kubevirt.io/8086_10d3. Removing one from the bus and unbinding another
must each take one device out of Allocatable (Unhealthy, or gone) within HEALTH_BOUND_S; a PCI
rescan brings the removed device back and, once on vfio-pci again, healthy.
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from .guest import (
    E1000E,
    HOSTDEV,
    SYS_PCI,
    bind_raw,
    driver_of,
    record_figure,
    require,
    require_flag,
    unbind_raw,
    write_sysfs,
)

pytestmark = pytest.mark.guest
RESOURCE = "devices.kubevirt.io/8086_10d3"
# Generous for TCG: every Python instruction is emulated. The measured figure is recorded.
HEALTH_BOUND_S = 60.0
START_BOUND_S = 240.0


@asynccontextmanager
async def kubelet_and_plugin(plugin_dir: Path, log: Path) -> AsyncIterator[Any]:
    """The kubelet simulator in this process and `hostdev serve` as a child process.

    Yields the simulator once the plugin registered; fails at once if serve exits first.
    """
    from hostdev.kubelet.simulator import KubeletSimulator

    sim = KubeletSimulator(plugin_dir)
    await sim.start()
    with log.open("w") as out:
        serve = await asyncio.create_subprocess_exec(
            *HOSTDEV, "serve", "--plugin-dir", str(plugin_dir), stdout=out, stderr=out
        )
    try:
        exited = asyncio.ensure_future(serve.wait())
        registered = asyncio.ensure_future(sim.wait_registered(RESOURCE, timeout=START_BOUND_S))
        await asyncio.wait([exited, registered], return_when=asyncio.FIRST_COMPLETED)
        if exited.done():
            registered.cancel()
            raise AssertionError(f"hostdev serve exited with {serve.returncode}")
        exited.cancel()
        await registered
        yield sim
    finally:
        if serve.returncode is None:
            serve.terminate()
        await serve.wait()
        await sim.stop()


async def seconds_until(sim: Any, healthy: int) -> float:
    """How long until the resource shows `healthy` allocatable devices (bounded)."""
    start = time.monotonic()
    await sim.wait_devices(RESOURCE, healthy, timeout=HEALTH_BOUND_S)
    return round(time.monotonic() - start, 3)


async def scenario(plugin_dir: Path, log: Path) -> dict[str, float]:
    """Advertise three NICs, remove one, unbind one, rescan; the measured latencies."""
    figures: dict[str, float] = {}
    removed, unbound = E1000E[0], E1000E[1]
    async with kubelet_and_plugin(plugin_dir, log) as sim:
        await sim.wait_devices(RESOURCE, 3, timeout=START_BOUND_S)

        write_sysfs(SYS_PCI / "devices" / removed / "remove", "1")
        figures["removed device leaves Allocatable (s)"] = await seconds_until(sim, 2)
        unbind_raw(unbound)
        figures["unbound device leaves Allocatable (s)"] = await seconds_until(sim, 1)

        write_sysfs(SYS_PCI / "rescan", "1")
        assert (SYS_PCI / "devices" / removed).exists()
        bind_raw(removed, "vfio-pci")
        bind_raw(unbound, "vfio-pci")
        figures["rescanned + rebound devices healthy again (s)"] = await seconds_until(sim, 3)
        assert set(sim.devices(RESOURCE)) >= set(E1000E)
    return figures


def test_serve_reports_removed_and_unbound_devices_and_recovers_after_rescan(
    tmp_path: Path,
) -> None:
    require("serve")
    require_flag("serve", "--rescan-interval", "the live health watch")
    subprocess.run(["modprobe", "vfio-pci"], check=True)
    for address in E1000E:
        bind_raw(address, "vfio-pci")
    assert all(driver_of(address) == "vfio-pci" for address in E1000E)
    log = tmp_path / "serve.log"
    # Unix socket paths must stay under 108 bytes; pytest's tmp_path is too deep.
    plugin_dir = Path(tempfile.mkdtemp(prefix="hostdev-plugins-", dir="/run"))
    try:
        figures = asyncio.run(scenario(plugin_dir, log))
    except (TimeoutError, AssertionError):
        print(log.read_text(errors="replace")[-4000:])
        raise
    finally:
        shutil.rmtree(plugin_dir, ignore_errors=True)
    for name, value in figures.items():
        record_figure(f"serve health: {name}", value)
