"""The simulator's PodResources v1 server reflects live pods and healthy devices."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from hostdev.kubelet.api import podresources_pb2 as pr
from hostdev.kubelet.api import podresources_pb2_grpc as pr_grpc
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.fakeplugin import FakeDevicePlugin, make_device

RESOURCE = "example.com/gpu"


@pytest.fixture
async def lister(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> AsyncIterator[Any]:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    assert sim.pod_resources_socket is not None
    async with grpc.aio.insecure_channel(f"unix://{sim.pod_resources_socket}") as channel:
        yield pr_grpc.PodResourcesListerStub(channel)


def devices_of(pod: Any) -> dict[str, list[tuple[str, list[int]]]]:
    return {
        c.name: [(d.device_ids[0], [n.ID for n in d.topology.nodes]) for d in c.devices]
        for c in pod.containers
    }


async def test_list_reflects_pods_and_deletions(sim: KubeletSimulator, lister: Any) -> None:
    pod = await sim.create_pod("vm", {"a": {RESOURCE: 2}, "b": {}}, namespace="ns1")
    response = await lister.List(pr.ListPodResourcesRequest())
    (listed,) = response.pod_resources
    assert (listed.name, listed.namespace) == ("vm", "ns1")
    ids = sorted(pod.container("a").devices[RESOURCE])
    numa = {f"dev{i}": i // 2 for i in range(4)}
    assert devices_of(listed) == {"a": [(i, [numa[i]]) for i in ids], "b": []}
    assert {d.resource_name for d in listed.containers[0].devices} == {RESOURCE}
    await sim.delete_pod("vm", namespace="ns1")
    assert not (await lister.List(pr.ListPodResourcesRequest())).pod_resources


async def test_get_allocatable_resources(lister: Any) -> None:
    response = await lister.GetAllocatableResources(pr.AllocatableResourcesRequest())
    assert sorted(d.device_ids[0] for d in response.devices) == ["dev0", "dev1", "dev2", "dev3"]
    assert [d.topology.nodes[0].ID for d in response.devices] == [0, 0, 1, 1]


async def test_get_pod(sim: KubeletSimulator, lister: Any) -> None:
    await sim.create_pod("vm", {"a": {RESOURCE: 1}})
    response = await lister.Get(pr.GetPodResourcesRequest(pod_name="vm", pod_namespace="default"))
    assert response.pod_resources.name == "vm"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await lister.Get(pr.GetPodResourcesRequest(pod_name="nope", pod_namespace="default"))
    assert caught.value.details() == "pod nope in namespace default not found"


async def test_device_without_numa_is_listed_on_node_minus_one(
    sim: KubeletSimulator, plugin: FakeDevicePlugin, lister: Any
) -> None:
    plugin.set_devices([make_device("plain")])
    await sim.wait_for(lambda: set(sim.devices(RESOURCE)) == {"plain"})
    await sim.create_pod("vm", {"a": {RESOURCE: 1}})
    (listed,) = (await lister.List(pr.ListPodResourcesRequest())).pod_resources
    assert devices_of(listed) == {"a": [("plain", [-1])]}
    allocatable = await lister.GetAllocatableResources(pr.AllocatableResourcesRequest())
    assert [(d.device_ids[0], d.HasField("topology")) for d in allocatable.devices] == [
        ("plain", False)
    ]


async def test_socket_is_served_again_after_restart(sim: KubeletSimulator) -> None:
    await sim.create_pod("empty", {"c": {}})
    await sim.restart()
    assert sim.pod_resources_socket is not None
    async with grpc.aio.insecure_channel(f"unix://{sim.pod_resources_socket}") as channel:
        response = await pr_grpc.PodResourcesListerStub(channel).List(pr.ListPodResourcesRequest())
    assert [p.name for p in response.pod_resources] == ["empty"]
