"""Group-safe allocation end to end: hostdev's Node against the kubelet simulator.

The shared-groups host served with the default config gives, among others, the GPU of
group 15 (10de_2184) and its audio function (10de_1aeb) as two resources, and the PF
enp4s0f1 (8086_10c9) with its seven VFs (8086_10ca).
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostdev.allocation import Holder
from hostdev.config import DEFAULT_CONFIG
from hostdev.daemon.node import Node
from hostdev.kubelet.accounting import GroupAccounting, GroupPreferred
from hostdev.kubelet.podresources import Reconciler
from hostdev.kubelet.registration import Backoff
from hostdev.kubelet.simulator import AllocationError, KubeletSimulator
from hostdev.testing.examples import build_example
from hostdev.testing.fakehost import FakeHost

GPU = "devices.kubevirt.io/10de_2184"
AUDIO = "devices.kubevirt.io/10de_1aeb"
T4 = "devices.kubevirt.io/10de_1eb8"
PF = "devices.kubevirt.io/8086_10c9"
VF = "devices.kubevirt.io/8086_10ca"
FAST = Backoff(first=0.001, factor=2.0, cap=0.01)
WAIT_S = 10.0


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for unix sockets (tmp_path can exceed the 107-byte limit)."""
    path = Path(tempfile.mkdtemp(prefix="hda", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def host(sockdir: Path) -> FakeHost:
    return build_example("shared-groups", sockdir / "host")


@pytest.fixture
async def sim(sockdir: Path) -> AsyncIterator[KubeletSimulator]:
    simulator = KubeletSimulator(
        sockdir / "dp", pod_resources_socket=sockdir / "pr" / "kubelet.sock", dial_timeout=1
    )
    await simulator.start()
    yield simulator
    await simulator.stop()


@dataclass
class Plugin:
    """A running hostdev node with its accounting and reconciler."""

    node: Node
    accounting: GroupAccounting
    reconciler: Reconciler


StartPlugin = Callable[..., Awaitable[Plugin]]


@pytest.fixture
async def start_plugin(sim: KubeletSimulator, host: FakeHost) -> AsyncIterator[StartPlugin]:
    """Start hostdev nodes on the shared-groups host; each is stopped at the end."""
    started: list[Node] = []

    async def start(interval_s: float = 3600.0) -> Plugin:
        accounting = GroupAccounting()
        assert sim.pod_resources_socket is not None
        reconciler = Reconciler(accounting.ledger, sim.pod_resources_socket, interval_s=interval_s)
        accounting.on_claim = reconciler.after_allocate
        node = Node(
            host.fs,
            DEFAULT_CONFIG,
            sim.plugin_dir,
            sim.kubelet_socket,
            policy=accounting,
            preferred=GroupPreferred(accounting),
            reconciler=reconciler,
            backoff=FAST,
        )
        started.append(node)
        await node.start()
        async with asyncio.timeout(WAIT_S):
            await node.wait_registered()
        return Plugin(node, accounting, reconciler)

    yield start
    for node in started:
        await node.stop()


async def named(plugin: Plugin) -> None:
    """Wait for the reconcile that follows an Allocate to learn the pod's name."""
    while plugin.accounting.ledger.pending:
        async with asyncio.timeout(WAIT_S):
            await plugin.reconciler.wait_reconciled(plugin.reconciler.attempts + 1)


async def settle(sim: KubeletSimulator, plugin: Plugin, **allocatable: int) -> None:
    """Reconcile now and wait until the kubelet sees the given allocatable counts."""
    names = {"gpu": GPU, "audio": AUDIO, "t4": T4, "pf": PF, "vf": VF}
    await plugin.reconciler.reconcile_now()
    await sim.wait_for(
        lambda: all(sim.allocatable().get(names[k]) == v for k, v in allocatable.items()),
        WAIT_S,
    )


async def test_gpu_pod_blocks_its_audio_until_deleted(
    sim: KubeletSimulator, start_plugin: StartPlugin
) -> None:
    plugin = await start_plugin()
    await settle(sim, plugin, gpu=1, audio=1)
    await sim.create_pod("vm-a", {"compute": {GPU: 1}})
    await sim.wait_devices(AUDIO, 0, WAIT_S)
    assert sim.capacity()[AUDIO] == 1
    await named(plugin)
    with pytest.raises(AllocationError, match="no healthy devices"):
        await sim.create_pod("vm-b", {"compute": {AUDIO: 1}})
    await sim.delete_pod("vm-a")
    await settle(sim, plugin, gpu=1, audio=1)
    await sim.create_pod("vm-b", {"compute": {AUDIO: 1}})
    await sim.wait_devices(GPU, 0, WAIT_S)


async def test_reconcile_after_allocate_names_the_pod(
    sim: KubeletSimulator, start_plugin: StartPlugin
) -> None:
    plugin = await start_plugin()
    await settle(sim, plugin, gpu=1, audio=1)  # the kubelet has both lists before the pod
    await sim.create_pod("vm-a", {"compute": {GPU: 1}}, namespace="ns")
    assert plugin.accounting.ledger.holdings == {"0000:17:00.0": Holder(allocation=1)}
    await named(plugin)
    assert plugin.accounting.ledger.holdings == {"0000:17:00.0": Holder("ns", "vm-a", "compute")}
    assert plugin.accounting.ledger.pending == ()


async def test_restarted_plugin_comes_back_with_correct_capacity(
    sim: KubeletSimulator,
    start_plugin: StartPlugin,
) -> None:
    first = await start_plugin()
    await settle(sim, first, vf=7, pf=1)
    await sim.create_pod("dpdk", {"app": {VF: 2}})
    await sim.wait_devices(PF, 0, WAIT_S)
    await first.node.stop()  # at once: the restarted plugin must learn the pod from the kubelet
    second = await start_plugin()
    assert second.accounting.ledger.in_use_known
    await sim.wait_for(lambda: sim.registration_count(PF) == 2, WAIT_S)
    await sim.wait_devices(PF, 0, WAIT_S)
    await sim.wait_devices(VF, 7, WAIT_S)
    assert sim.capacity()[PF] == 1
    assert sim.available()[VF] == 5
    reason = second.accounting.ledger.availability().statuses["0000:04:00.1"].reason
    assert reason.startswith("VF 0000:04:10.1 of 0000:04:00.1 allocated (pod default/dpdk")
    with pytest.raises(AllocationError, match="no healthy devices"):
        await sim.create_pod("passthrough", {"vm": {PF: 1}})


async def test_unreachable_podresources_is_conservative_until_it_returns(
    sim: KubeletSimulator,
    start_plugin: StartPlugin,
) -> None:
    assert sim.pod_resources_socket is not None
    sim.pod_resources_socket.unlink()
    plugin = await start_plugin()
    assert not plugin.accounting.podresources_reachable
    await sim.wait_devices(AUDIO, 0, WAIT_S)  # related to the GPU: unknown, so blocked
    await sim.wait_devices(T4, 2, WAIT_S)  # a T4 shares nothing: safe to hand out
    done = plugin.reconciler.reconciles
    await sim.restart()  # the socket reappears: inotify wakes the reconciler
    await sim.wait_for(lambda: plugin.reconciler.reconciles > done, WAIT_S)
    assert plugin.accounting.podresources_reachable
    await sim.wait_devices(AUDIO, 1, WAIT_S)


async def test_periodic_reconcile_frees_the_group(
    sim: KubeletSimulator, start_plugin: StartPlugin
) -> None:
    plugin = await start_plugin(interval_s=0.05)
    await settle(sim, plugin, gpu=1, audio=1)  # the kubelet has both lists before the pod
    await sim.create_pod("vm-a", {"compute": {AUDIO: 1}})
    await sim.wait_devices(GPU, 0, WAIT_S)
    await named(plugin)
    await sim.delete_pod("vm-a")
    await sim.wait_devices(GPU, 1, WAIT_S)
