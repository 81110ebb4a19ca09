"""Pod admission on the simulated kubelet: the same RPC sequence and errors as the kubelet."""

from __future__ import annotations

from typing import Any

import pytest

from hostdev.errors import BadInputError
from hostdev.kubelet.simulator import AllocationError, KubeletSimulator
from hostdev.testing.fakeplugin import FakeDevicePlugin, make_device

RESOURCE = "example.com/gpu"


async def registered(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, len(plugin.devices))


async def test_allocate_without_preferred(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    await registered(sim, plugin)
    pod = await sim.create_pod("p", {"c": {RESOURCE: 2}})
    (request,) = plugin.called("Allocate")
    assert len(request.container_requests) == 1
    ids = list(request.container_requests[0].devices_ids)
    assert len(set(ids)) == 2
    assert pod.container("c").devices[RESOURCE] == ids
    assert pod.response("c", RESOURCE).envs["FAKE_DEVICES"] == ",".join(ids)
    assert not plugin.called("GetPreferredAllocation")
    assert not plugin.called("PreStartContainer")
    assert sim.available() == {RESOURCE: 2}
    assert sim.allocatable() == {RESOURCE: 4}, "allocatable is healthy devices, like the kubelet"


def prefer(choice: list[str]) -> Any:
    return lambda request: list(choice)


PREFERRED = [
    ("honoured", ["dev3", "dev2"], {"dev3", "dev2"}),
    ("unknown-ids-dropped", ["nope", "dev1"], {"dev1"}),
    ("too-many-trimmed", ["dev0", "dev1", "dev2"], {"dev0", "dev1"}),
    ("empty-answer", [], set()),
]


@pytest.mark.parametrize(
    ("answer", "kept"), [p[1:] for p in PREFERRED], ids=[p[0] for p in PREFERRED]
)
async def test_preferred_allocation(
    sim: KubeletSimulator, plugin: FakeDevicePlugin, answer: list[str], kept: set[str]
) -> None:
    plugin.preferred = prefer(answer)
    await registered(sim, plugin)
    pod = await sim.create_pod("p", {"c": {RESOURCE: 2}})
    (request,) = plugin.called("GetPreferredAllocation")
    (container_request,) = request.container_requests
    assert sorted(container_request.available_deviceIDs) == ["dev0", "dev1", "dev2", "dev3"]
    assert list(container_request.must_include_deviceIDs) == []
    assert container_request.allocation_size == 2
    chosen = set(pod.container("c").devices[RESOURCE])
    assert len(chosen) == 2
    assert kept <= chosen, "IDs from the answer that are available are kept; the rest is filled"


async def test_preferred_is_asked_even_when_exactly_enough(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    plugin.preferred = prefer([])
    await registered(sim, plugin)
    await sim.create_pod("p", {"c": {RESOURCE: 4}})
    assert len(plugin.called("GetPreferredAllocation")) == 1


async def test_available_excludes_allocated_and_unhealthy(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    plugin.preferred = prefer([])
    plugin.devices[3] = make_device("dev3", "Unhealthy")
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 3)
    first = await sim.create_pod("a", {"c": {RESOURCE: 1}})
    await sim.create_pod("b", {"c": {RESOURCE: 1}})
    second_request = plugin.called("GetPreferredAllocation")[1].container_requests[0]
    offered = set(second_request.available_deviceIDs)
    assert offered.isdisjoint(first.container("c").devices[RESOURCE])
    assert "dev3" not in offered
    assert len(offered) == 2


async def test_multi_container_pod(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    await registered(sim, plugin)
    pod = await sim.create_pod(
        "vm", {"compute": {RESOURCE: 2}, "sidecar": {RESOURCE: 1}, "log": {}}
    )
    calls = plugin.called("Allocate")
    assert [len(c.container_requests[0].devices_ids) for c in calls] == [2, 1]
    compute = set(pod.container("compute").devices[RESOURCE])
    sidecar = set(pod.container("sidecar").devices[RESOURCE])
    assert compute.isdisjoint(sidecar)
    assert pod.response("sidecar", RESOURCE).envs["FAKE_DEVICES"] == ",".join(sidecar)
    assert pod.container("log").devices == {}


SHORTFALLS = [
    ("single-container", {"c": {RESOURCE: 5}}, "Requested: 5, Available: 4"),
    ("second-container", {"a": {RESOURCE: 3}, "b": {RESOURCE: 2}}, "Requested: 2, Available: 1"),
]


@pytest.mark.parametrize(
    ("spec", "counts"), [s[1:] for s in SHORTFALLS], ids=[s[0] for s in SHORTFALLS]
)
async def test_shortfall_rejects_pod_and_releases(
    sim: KubeletSimulator, plugin: FakeDevicePlugin, spec: Any, counts: str
) -> None:
    await registered(sim, plugin)
    with pytest.raises(AllocationError) as caught:
        await sim.create_pod("big", spec)
    assert str(caught.value) == f"requested number of devices unavailable for {RESOURCE}. {counts}"
    assert sim.pod("big") is None
    assert sim.available() == {RESOURCE: 4}


async def test_unregistered_resource(sim: KubeletSimulator) -> None:
    with pytest.raises(AllocationError) as caught:
        await sim.create_pod("p", {"c": {"example.com/x": 1}})
    assert str(caught.value) == "cannot allocate unregistered device example.com/x"


async def test_allocate_rpc_failure(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    plugin.allocate_error = "device vanished"
    await registered(sim, plugin)
    with pytest.raises(AllocationError) as caught:
        await sim.create_pod("p", {"c": {RESOURCE: 1}})
    assert str(caught.value) == "rpc error: code = Internal desc = device vanished"
    assert sim.available() == {RESOURCE: 4}


async def test_pre_start_container_called_with_same_ids(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    plugin.pre_start_required = True
    await registered(sim, plugin)
    pod = await sim.create_pod("p", {"c": {RESOURCE: 2}})
    (request,) = plugin.called("PreStartContainer")
    assert list(request.devices_ids) == pod.container("c").devices[RESOURCE]
    assert pod.container("c").start_error is None


async def test_delete_pod_releases_devices(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    await registered(sim, plugin)
    await sim.create_pod("p", {"c": {RESOURCE: 4}})
    assert sim.available() == {RESOURCE: 0}
    await sim.delete_pod("p")
    assert sim.available() == {RESOURCE: 4}
    assert sim.pods == []


BAD_SPECS = [
    ("empty-name", "", {"c": {RESOURCE: 1}}, "a pod needs a name"),
    ("no-containers", "p", {}, "has no containers"),
    ("negative", "p", {"c": {RESOURCE: -1}}, "must be a whole number"),
    ("not-a-number", "p", {"c": {RESOURCE: "2"}}, "must be a whole number"),
]


@pytest.mark.parametrize(
    ("name", "spec", "message"), [b[1:] for b in BAD_SPECS], ids=[b[0] for b in BAD_SPECS]
)
async def test_bad_pod_specs(sim: KubeletSimulator, name: str, spec: Any, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        await sim.create_pod(name, spec)


async def test_duplicate_and_missing_pods(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    await registered(sim, plugin)
    await sim.create_pod("p", {"c": {RESOURCE: 1}})
    with pytest.raises(BadInputError, match='pod "default/p" already exists'):
        await sim.create_pod("p", {"c": {RESOURCE: 1}})
    with pytest.raises(BadInputError, match='pod "default/q" not found'):
        await sim.delete_pod("q")


async def test_pre_start_failure_keeps_pod_with_error(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    plugin.pre_start_required = True
    plugin.pre_start_error = "reset failed"
    await registered(sim, plugin)
    pod = await sim.create_pod("p", {"c": {RESOURCE: 1}})
    assert pod.container("c").start_error == (
        "device plugin PreStartContainer rpc failed with err: "
        "rpc error: code = FailedPrecondition desc = reset failed"
    )
    assert sim.pod("p") is pod
    assert sim.available() == {RESOURCE: 3}


async def test_wait_times_out(sim: KubeletSimulator) -> None:
    with pytest.raises(TimeoutError):
        await sim.wait_registered(RESOURCE, timeout=0.05)
