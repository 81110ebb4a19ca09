"""Registration on the simulated kubelet: accepted, rejected, replaced, and plugin death."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from hostdev.kubelet.constants import UNHEALTHY
from hostdev.kubelet.simulator import AllocationError, KubeletSimulator
from hostdev.testing.fakeplugin import FakeDevicePlugin, make_device

RESOURCE = "example.com/gpu"


async def test_register_calls_options_before_answering(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    assert plugin.called("GetDevicePluginOptions"), "Register must dial the plugin synchronously"
    assert sim.is_registered(RESOURCE)
    assert sim.registration_count(RESOURCE) == 1
    await sim.wait_devices(RESOURCE, 4)
    assert sim.capacity() == {RESOURCE: 4}


@pytest.mark.parametrize("version", ["v1", "v1alpha", "v1beta2", ""], ids=repr)
async def test_unsupported_version_is_rejected(
    sim: KubeletSimulator, plugin: FakeDevicePlugin, version: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await plugin.register(sim.kubelet_socket, RESOURCE, version=version)
    assert caught.value.code() == grpc.StatusCode.UNKNOWN
    assert caught.value.details() == (
        f'requested API version "{version}" is not supported by kubelet. '
        'Supported version is ["v1beta1"]'
    )
    assert not sim.is_registered(RESOURCE)
    assert sim.registrations[-1].error == caught.value.details()


BAD_NAMES = [
    "foo",
    "kubernetes.io/foo",
    "node.kubernetes.io/foo",
    "requests.example.com/foo",
    "example.com/",
    "example.com/a/b",
    "EXAMPLE.com/x",
    "example.com/-x",
    "example.com/" + "a" * 64,
]


@pytest.mark.parametrize("name", BAD_NAMES, ids=lambda n: n[:30])
async def test_invalid_resource_name_is_rejected(
    sim: KubeletSimulator, plugin: FakeDevicePlugin, name: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await plugin.register(sim.kubelet_socket, name)
    assert caught.value.details() == f'the ResourceName "{name}" is invalid'
    assert not plugin.calls, "the kubelet checks the name before dialing the plugin"


@pytest.mark.parametrize("name", ["example.com/ok", "example.com/Foo_Bar.1-x"], ids=str)
async def test_valid_resource_names_are_accepted(
    sim: KubeletSimulator, plugin: FakeDevicePlugin, name: str
) -> None:
    await plugin.register(sim.kubelet_socket, name)
    assert sim.is_registered(name)


async def test_plugin_socket_not_answering(sockdir: Path) -> None:
    async with KubeletSimulator(sockdir / "plugins", dial_timeout=0.2) as sim:
        plugin = FakeDevicePlugin([])
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await plugin.register(sim.kubelet_socket, RESOURCE, endpoint="absent.sock")
        assert caught.value.details() == "failed to dial device plugin: context deadline exceeded"
        assert sim.capacity() == {}


async def test_options_failure_fails_register(sim: KubeletSimulator) -> None:
    plugin = FakeDevicePlugin([make_device("a")], options_error="broken")
    await plugin.serve(sim.plugin_dir / "broken.sock")
    try:
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await plugin.register(sim.kubelet_socket, RESOURCE)
    finally:
        await plugin.stop()
    assert caught.value.details() == (
        "failed to get device plugin options: rpc error: code = Internal desc = broken"
    )
    assert not sim.is_registered(RESOURCE)


async def test_last_registration_wins(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    newer = FakeDevicePlugin([make_device("new0")])
    await newer.serve(sim.plugin_dir / "newer.sock")
    try:
        await newer.register(sim.kubelet_socket, RESOURCE)
        await sim.wait_for(lambda: set(sim.devices(RESOURCE)) == {"new0"})
        await plugin.stop()  # the replaced plugin going away is not a disconnect
        plugin.set_devices([make_device("old-update")])
        assert sim.is_registered(RESOURCE)
        assert sim.allocatable() == {RESOURCE: 1}
    finally:
        await newer.stop()


async def test_plugin_death_marks_devices_unhealthy(
    sockdir: Path, plugin: FakeDevicePlugin, sim: KubeletSimulator
) -> None:
    now = [1000.0]
    sim._clock = lambda: now[0]  # a clock the test moves instead of sleeping
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    await plugin.stop()
    await sim.wait_for(lambda: not sim.is_registered(RESOURCE))
    assert sim.capacity() == {RESOURCE: 4}
    assert sim.allocatable() == {RESOURCE: 0}
    assert {d.health for d in sim.devices(RESOURCE).values()} == {UNHEALTHY}
    with pytest.raises(AllocationError, match="no healthy devices present; cannot allocate"):
        await sim.create_pod("late", {"c": {RESOURCE: 1}})
    now[0] += 301
    assert sim.capacity() == {}, "the resource is dropped after the 5-minute grace period"
