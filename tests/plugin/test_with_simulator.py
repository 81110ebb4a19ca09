"""The plugin against the kubelet simulator: capacity, pods, a kubelet restart, health."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from conftest import NodeFactory

from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.fakehost import FakeHost

T4 = "devices.kubevirt.io/10de_1eb8"
VGA = "devices.kubevirt.io/10de_2184"


@pytest.fixture
async def sim(plugin_dir: Path) -> AsyncIterator[KubeletSimulator]:
    async with KubeletSimulator(plugin_dir, write_checkpoint=False) as simulator:
        yield simulator


async def test_capacity_pods_and_restart(
    sim: KubeletSimulator, make_node: NodeFactory, gpu_host: FakeHost
) -> None:
    node = make_node(gpu_host)
    await node.start()
    expected = {"devices.kubevirt.io/10de_1aeb": 1, T4: 2, VGA: 1}
    await sim.wait_for(lambda: sim.allocatable() == expected)
    assert sim.capacity() == expected
    assert f"  {T4}:" in sim.describe_node()
    pod = await sim.create_pod("vm", {"compute": {T4: 1}, "sidecar": {T4: 1, VGA: 1}})
    compute, sidecar = pod.response("compute", T4), pod.response("sidecar", T4)
    ids = {
        compute.envs["PCI_RESOURCE_DEVICES_KUBEVIRT_IO_10DE_1EB8"],
        sidecar.envs["PCI_RESOURCE_DEVICES_KUBEVIRT_IO_10DE_1EB8"],
    }
    assert ids == {"0000:65:00.0", "0000:b3:00.0"}
    assert pod.response("sidecar", VGA).envs["PCI_RESOURCE_DEVICES_KUBEVIRT_IO_10DE_2184"] == (
        "0000:17:00.0"
    )
    assert sim.available()[T4] == 0
    await sim.restart()
    await sim.wait_for(lambda: sim.registration_count(T4) == 2 and sim.allocatable() == expected)
    await sim.delete_pod("vm")
    assert sim.available()[T4] == 2


async def test_unhealthy_device_leaves_allocatable(
    sim: KubeletSimulator, make_node: NodeFactory, gpu_host: FakeHost
) -> None:
    node = make_node(gpu_host)
    await node.start()
    await sim.wait_for(lambda: sim.allocatable().get(T4) == 2)
    node.table.set_health("0000:65:00.0", "removed from the bus")
    await sim.wait_for(lambda: sim.allocatable().get(T4) == 1)
    assert sim.capacity()[T4] == 2
    pod = await sim.create_pod("vm", {"compute": {T4: 1}})
    assert pod.container("compute").devices[T4] == ["0000:b3:00.0"]
