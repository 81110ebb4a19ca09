"""The node state a kubelet's device manager keeps: resources, their devices, pods and allocations.

Pure bookkeeping without I/O, used by the kubelet simulator. Rules follow the real device
manager (Kubernetes v1.32): each ListAndWatch message replaces a resource's device list;
capacity = healthy + unhealthy, allocatable = healthy (only the exact string "Healthy" counts);
a resource whose plugin stream broke has all devices unhealthy and is dropped after the
endpoint stop grace period; allocated devices stay allocated whatever their health.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from hostdev.kubelet.api import podresources_pb2 as pr
from hostdev.kubelet.constants import HEALTHY

ENDPOINT_STOP_GRACE_S = 300.0
NO_NUMA_NODE = -1


@dataclass
class ResourceState:
    """One extended resource: its devices as last streamed and its endpoint's liveness."""

    name: str
    devices: dict[str, Any] = field(default_factory=dict)  # ID -> v1beta1.Device
    stopped_at: float | None = None  # when the plugin stream ended; None while connected

    def healthy_ids(self) -> set[str]:
        """IDs whose health is exactly "Healthy"."""
        return {i for i, d in self.devices.items() if d.health == HEALTHY}

    def capacity(self) -> int:
        """healthy + unhealthy devices."""
        return len(self.devices)

    def numa_nodes(self, device_id: str) -> list[int]:
        """The NUMA nodes a device reported, or [-1] when it reported none."""
        device = self.devices.get(device_id)
        nodes = [n.ID for n in device.topology.nodes] if device is not None else []
        return nodes or [NO_NUMA_NODE]


@dataclass
class Container:
    """A container's requests and what the device manager gave it."""

    name: str
    requests: dict[str, int]
    devices: dict[str, list[str]] = field(default_factory=dict)  # resource -> IDs
    responses: dict[str, Any] = field(default_factory=dict)  # resource -> ContainerAllocateResponse
    numa: dict[str, dict[str, list[int]]] = field(default_factory=dict)  # resource -> ID -> nodes
    start_error: str | None = None


@dataclass
class Pod:
    """A pod admitted on the node."""

    name: str
    namespace: str
    uid: str
    containers: list[Container]

    def container(self, name: str) -> Container:
        """The container called name (KeyError if none)."""
        for container in self.containers:
            if container.name == name:
                return container
        raise KeyError(name)

    def response(self, container: str, resource: str) -> Any:
        """The ContainerAllocateResponse the plugin gave container for resource."""
        return self.container(container).responses[resource]

    def device_ids(self, resource: str) -> set[str]:
        """Every ID of resource held by any container of the pod."""
        return {i for c in self.containers for i in c.devices.get(resource, ())}


def allocated_ids(pods: Iterable[Pod], resource: str) -> set[str]:
    """Device IDs of resource held by the given pods."""
    return {i for pod in pods for i in pod.device_ids(resource)}


def expire_stopped(resources: dict[str, ResourceState], now: float, grace_s: float) -> bool:
    """Drop resources whose endpoint stopped more than grace_s ago; True if any was dropped."""
    expired = [
        name
        for name, r in resources.items()
        if r.stopped_at is not None and now - r.stopped_at > grace_s
    ]
    for name in expired:
        del resources[name]
    return bool(expired)


def capacity(resources: Mapping[str, ResourceState]) -> dict[str, int]:
    """Resource name -> capacity, as the node status reports it."""
    return {name: r.capacity() for name, r in sorted(resources.items())}


def allocatable(resources: Mapping[str, ResourceState]) -> dict[str, int]:
    """Resource name -> allocatable (healthy devices), as the node status reports it."""
    return {name: len(r.healthy_ids()) for name, r in sorted(resources.items())}


def describe_node(
    resources: Mapping[str, ResourceState], pods: Iterable[Pod], node_name: str = "sim-node"
) -> str:
    """The Capacity/Allocatable/Allocated blocks of `kubectl describe node`."""
    cap, alloc = capacity(resources), allocatable(resources)
    requested = {name: len(allocated_ids(pods, name)) for name in cap}
    lines = [f"Name:               {node_name}", *status_lines(cap, alloc)]
    lines += [
        "Allocated resources:",
        "  (Total limits may be over 100 percent, i.e., overcommitted.)",
    ]
    width = max([len("Resource"), *(len(n) for n in cap)])
    lines.append(f"  {'Resource':<{width}}  Requests  Limits")
    lines.append(f"  {'--------':<{width}}  --------  ------")
    lines += [f"  {n:<{width}}  {requested[n]:<8}  {requested[n]}" for n in cap]
    return "\n".join(lines) + "\n"


def status_lines(cap: Mapping[str, int], alloc: Mapping[str, int]) -> list[str]:
    """The Capacity: and Allocatable: blocks, values aligned as kubectl aligns them."""
    return ["Capacity:", *_aligned(cap), "Allocatable:", *_aligned(alloc)]


def _aligned(values: Mapping[str, int]) -> list[str]:
    width = max((len(name) + 1 for name in values), default=0)
    return [f"  {name + ':':<{width}}  {count}" for name, count in values.items()]


def container_devices(container: Container) -> list[Any]:
    """PodResources ContainerDevices: one entry per device and NUMA node, like the kubelet."""
    entries = []
    for resource, ids in sorted(container.devices.items()):
        for device_id in sorted(ids):
            for node in container.numa.get(resource, {}).get(device_id, [NO_NUMA_NODE]):
                topology = pr.TopologyInfo(nodes=[pr.NUMANode(ID=node)])
                entries.append(
                    pr.ContainerDevices(
                        resource_name=resource, device_ids=[device_id], topology=topology
                    )
                )
    return entries


def pod_resources(pod: Pod) -> Any:
    """The PodResources message for pod."""
    containers = [
        pr.ContainerResources(name=c.name, devices=container_devices(c)) for c in pod.containers
    ]
    return pr.PodResources(name=pod.name, namespace=pod.namespace, containers=containers)


def allocatable_devices(resources: Mapping[str, ResourceState]) -> list[Any]:
    """GetAllocatableResources devices: every healthy device, one entry per NUMA node."""
    entries = []
    for name, resource in sorted(resources.items()):
        for device_id in sorted(resource.healthy_ids()):
            device = resource.devices[device_id]
            nodes = [n.ID for n in device.topology.nodes]
            if not nodes:
                entries.append(pr.ContainerDevices(resource_name=name, device_ids=[device_id]))
            for node in nodes:
                topology = pr.TopologyInfo(nodes=[pr.NUMANode(ID=node)])
                entries.append(
                    pr.ContainerDevices(
                        resource_name=name, device_ids=[device_id], topology=topology
                    )
                )
    return entries


def checkpoint(resources: Mapping[str, ResourceState], pods: Iterable[Pod]) -> dict[str, Any]:
    """What the kubelet keeps in kubelet_internal_checkpoint (private; for inspection only)."""
    entries = [
        {
            "PodUID": pod.uid,
            "ContainerName": c.name,
            "ResourceName": resource,
            "DeviceIDs": sorted(ids),
            "AllocResp": dict(c.responses[resource].envs) if resource in c.responses else {},
        }
        for pod in pods
        for c in pod.containers
        for resource, ids in sorted(c.devices.items())
    ]
    registered = {name: sorted(r.devices) for name, r in sorted(resources.items())}
    return {"Data": {"PodDeviceEntries": entries, "RegisteredDevices": registered}}
