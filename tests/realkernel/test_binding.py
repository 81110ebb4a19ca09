"""`hostdev bind` / `hostdev restore` against the real kernel: groups, viability, crash safety."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from .guest import (
    E1000,
    HOSTDEV,
    RTL8139,
    SHARED_GROUP,
    driver_of,
    group_viable,
    hostdev,
    record_figure,
    require,
    snapshot_drivers,
    wait_for,
)

pytestmark = pytest.mark.guest


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    """A fresh state file for one test (bind/restore record original drivers there)."""
    require("bind", "restore")
    return tmp_path / "state.json"


def test_bind_takes_the_whole_group_and_restore_returns_it(state_file: Path) -> None:
    bound = hostdev("bind", E1000, "--state-file", str(state_file))
    assert bound.returncode == 0, bound.stderr
    assert (driver_of(E1000), driver_of(RTL8139)) == ("vfio-pci", "vfio-pci")
    assert group_viable(SHARED_GROUP)

    restored = hostdev("restore", "--all", "--state-file", str(state_file))
    assert restored.returncode == 0, restored.stderr
    assert (driver_of(E1000), driver_of(RTL8139)) == ("e1000", "8139cp")


def test_restore_after_a_bind_killed_midway_leaves_no_device_without_driver(
    state_file: Path,
) -> None:
    before = snapshot_drivers()
    bind = subprocess.Popen(
        [*HOSTDEV, "bind", E1000, "--state-file", str(state_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # The state file names a device before that device is touched: kill right then.
    recorded = wait_for(
        lambda: (
            bind.poll() is not None
            or (state_file.exists() and E1000 in state_file.read_text(errors="replace"))
        ),
        timeout=600,
        interval=0.005,
    )
    bind.send_signal(signal.SIGKILL)
    bind.wait()
    record_figure("kill -9 landed before bind finished", bind.returncode == -signal.SIGKILL)
    assert recorded is not None, "the bind neither recorded the device nor finished"
    assert E1000 in state_file.read_text(), "the bind ended without recording the device"

    restored = hostdev("restore", "--all", "--state-file", str(state_file))
    assert restored.returncode == 0, restored.stderr
    lost = [address for address, driver in before.items() if driver and not driver_of(address)]
    assert lost == []
    assert (driver_of(E1000), driver_of(RTL8139)) == ("e1000", "8139cp")
