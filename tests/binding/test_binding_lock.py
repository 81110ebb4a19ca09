"""Runs take the state file's lock first and read the host only then.

Each test holds the lock itself, starts a run in a thread, waits (on an event, no sleeps) until
that run reports it is waiting for the lock, changes the host as another hostdev run would,
releases the lock, and checks that the run decided from the host as it was after the change.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pytest
from binding_helpers import NVME

from hostdev.binding import BindOptions, BindResult, bind_devices, restore_devices, unbind_devices
from hostdev.binding.state import StateFile
from hostdev.host.model import PciAddress
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

Change = Callable[[FakeHost, StateFile], None]
Command = Callable[..., BindResult]


def records(state_file: Path) -> dict[str, dict[str, object]]:
    return json.loads(state_file.read_text())["devices"] if state_file.exists() else {}


def restored_by_another_run(host: FakeHost, state: StateFile) -> None:
    """What `hostdev restore NVME` does: back to nvme, record dropped."""
    host.unbind(NVME)
    host.bind(NVME, "nvme")
    state.drop([NVME])


def plugged_back_in(host: FakeHost, state: StateFile) -> None:
    """The device comes back (a rescan), on vfio-pci; its record is still there."""
    host.add_device(NVME, "144d", "a808", "010802", driver="vfio-pci", iommu_group=50)


def bound_by_hostdev(host: FakeHost, kernel: FakeKernelWriter, options: BindOptions) -> None:
    bind_devices(host.fs, kernel, [PciAddress.parse(NVME)], options)


def bound_then_removed(host: FakeHost, kernel: FakeKernelWriter, options: BindOptions) -> None:
    bound_by_hostdev(host, kernel, options)
    host.remove_device(NVME)


def run_while_locked(
    command: Command, host: FakeHost, kernel: FakeKernelWriter, options: BindOptions, change: Change
) -> BindResult:
    """Hold the lock, start the command, change the host once it waits, then let it go on."""
    waiting = threading.Event()
    options = replace(options, lock_wait=lambda lock: waiting.set())

    def run() -> BindResult:
        try:
            return command(host.fs, kernel, [PciAddress.parse(NVME)], options)
        finally:
            waiting.set()  # never leave the test waiting when the command fails early

    with ThreadPoolExecutor(max_workers=1) as pool:
        with StateFile(options.state_file).locked() as state:
            future: Future[BindResult] = pool.submit(run)
            # bounded only so that a run that never says it waits fails instead of hanging
            assert waiting.wait(timeout=60), "the run never said it was waiting for the lock"
            assert not future.done(), f"the run did not wait for the lock: {future.result()}"
            change(host, state)
        return future.result()


@pytest.mark.parametrize(
    ("command", "setup", "change", "driver", "recorded"),
    [
        (bind_devices, bound_by_hostdev, restored_by_another_run, "vfio-pci", "nvme"),
        (unbind_devices, bound_by_hostdev, restored_by_another_run, None, "nvme"),
        (restore_devices, bound_then_removed, plugged_back_in, "nvme", None),
    ],
    ids=["bind-after-a-restore", "unbind-after-a-restore", "restore-after-a-replug"],
)
def test_a_run_decides_from_the_host_as_it_is_once_it_holds_the_lock(
    host, kernel, options, state_file, command, setup, change, driver, recorded
):
    setup(host, kernel, options)
    result = run_while_locked(command, host, kernel, options, change)
    assert result.ok, result.to_json()
    assert host.driver_of(NVME) == driver
    assert records(state_file).get(NVME, {}).get("driver") == recorded
