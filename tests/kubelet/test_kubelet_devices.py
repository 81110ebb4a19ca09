"""ListAndWatch updates: capacity and allocatable follow every message, like the kubelet."""

from __future__ import annotations

import pytest

from hostdev.kubelet.constants import UNHEALTHY
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.fakeplugin import FakeDevicePlugin, make_device

RESOURCE = "example.com/gpu"

UPDATES = [
    ("one-unhealthy", ["Healthy", "Healthy", "Healthy", UNHEALTHY], 4, 3),
    ("device-removed", ["Healthy", "Healthy", "Healthy"], 3, 3),
    ("lower-case-is-unhealthy", ["Healthy", "healthy"], 2, 1),
    ("all-gone", [], 0, 0),
]


@pytest.mark.parametrize(
    ("health", "capacity", "allocatable"), [u[1:] for u in UPDATES], ids=[u[0] for u in UPDATES]
)
async def test_update_replaces_device_list(
    sim: KubeletSimulator,
    plugin: FakeDevicePlugin,
    health: list[str],
    capacity: int,
    allocatable: int,
) -> None:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    update = [make_device(f"dev{i}", h) for i, h in enumerate(health)]
    plugin.set_devices(update)
    await sim.wait_for(lambda: list(sim.devices(RESOURCE).values()) == update)
    assert sim.capacity() == {RESOURCE: capacity}
    assert sim.allocatable() == {RESOURCE: allocatable}


async def test_allocated_device_stays_allocated_when_unhealthy(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    pod = await sim.create_pod("p", {"c": {RESOURCE: 1}})
    (held,) = pod.container("c").devices[RESOURCE]
    plugin.set_devices(
        [make_device(d.ID, UNHEALTHY if held == d.ID else d.health) for d in plugin.devices]
    )
    await sim.wait_devices(RESOURCE, 3)
    assert pod.container("c").devices[RESOURCE] == [held]
    assert sim.available() == {RESOURCE: 3}, "new allocations use healthy free devices only"


async def test_version_grows_on_each_change(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    before = sim.version
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    assert sim.version > before
