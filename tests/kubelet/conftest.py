"""Fixtures for the kubelet tests: short socket directories and a guard against leaked tasks."""

from __future__ import annotations

import asyncio
import inspect
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.asyncguard import leaked_tasks
from hostdev.testing.fakeplugin import FakeDevicePlugin, make_device

RESOURCE = "example.com/gpu"


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets (tmp_path can exceed the 107-byte socket limit)."""
    path = Path(tempfile.mkdtemp(prefix="hdk", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def _task_guard() -> AsyncIterator[None]:
    before = asyncio.all_tasks()
    yield
    leaked = await leaked_tasks(before)
    assert not leaked, f"test leaked asyncio tasks: {leaked}"


@pytest.fixture(autouse=True)
def no_leaked_tasks(request: pytest.FixtureRequest) -> None:
    """Fail an async test that leaves asyncio tasks running."""
    if inspect.iscoroutinefunction(request.function):
        request.getfixturevalue("_task_guard")


@pytest.fixture
async def sim(sockdir: Path) -> AsyncIterator[KubeletSimulator]:
    """A started simulator with a PodResources socket; stopped after the test."""
    simulator = KubeletSimulator(
        sockdir / "plugins", pod_resources_socket=sockdir / "pr" / "kubelet.sock", dial_timeout=1
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@pytest.fixture
async def plugin(sim: KubeletSimulator) -> AsyncIterator[FakeDevicePlugin]:
    """A fake plugin with four healthy devices (two per NUMA node), serving but not registered."""
    fake = FakeDevicePlugin([make_device(f"dev{i}", numa=i // 2) for i in range(4)])
    await fake.serve(sim.plugin_dir / "fake.sock")
    yield fake
    await fake.stop()
