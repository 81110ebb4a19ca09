"""The kubelet's per-container device admission calls and their error messages.

Pure RPC helpers used by the simulator: which devices to hand out given a preferred answer,
and GetPreferredAllocation, Allocate and PreStartContainer as the kubelet issues them
(one container per request; errors rendered the way the kubelet reports them).
"""

from __future__ import annotations

from collections.abc import Mapping, Set
from typing import Any

import grpc

from hostdev.errors import BadInputError, HostdevError
from hostdev.kubelet.api import deviceplugin_pb2 as dp
from hostdev.kubelet.constants import PRE_START_CONTAINER_TIMEOUT_S
from hostdev.kubelet.simservers import go_status


class AllocationError(HostdevError):
    """Pod admission failed; the message is the kubelet's own."""


def choose(preferred: list[str], available: Set[str], needed: int) -> list[str]:
    """Keep the preferred IDs that are available (at most needed), fill up from the rest."""
    chosen = [i for i in dict.fromkeys(preferred) if i in available][:needed]
    chosen += [i for i in sorted(available) if i not in chosen][: needed - len(chosen)]
    return chosen


async def preferred_ids(stub: Any, available: Set[str], size: int) -> list[str]:
    """GetPreferredAllocation for one container; [] when the plugin answers nothing."""
    request = dp.PreferredAllocationRequest(
        container_requests=[
            dp.ContainerPreferredAllocationRequest(
                available_deviceIDs=sorted(available),
                must_include_deviceIDs=[],
                allocation_size=size,
            )
        ]
    )
    try:
        response = await stub.GetPreferredAllocation(request)
    except grpc.aio.AioRpcError as err:
        raise AllocationError(
            f"device plugin GetPreferredAllocation rpc failed with err: {go_status(err)}"
        ) from err
    if not response.container_responses:
        return []
    return list(response.container_responses[0].deviceIDs)


async def allocate(stub: Any, device_ids: list[str]) -> Any:
    """Allocate with one ContainerAllocateRequest; the first ContainerAllocateResponse."""
    request = dp.AllocateRequest(
        container_requests=[dp.ContainerAllocateRequest(devices_ids=device_ids)]
    )
    try:
        response = await stub.Allocate(request)
    except grpc.aio.AioRpcError as err:
        raise AllocationError(go_status(err)) from err
    if not response.container_responses:
        raise AllocationError(f"no containers return in allocation response {response}")
    return response.container_responses[0]


async def pre_start(stub: Any, device_ids: list[str]) -> str | None:
    """PreStartContainer with the kubelet's 30 s deadline; the error text, or None."""
    request = dp.PreStartContainerRequest(devices_ids=device_ids)
    try:
        await stub.PreStartContainer(request, timeout=PRE_START_CONTAINER_TIMEOUT_S)
    except grpc.aio.AioRpcError as err:
        return f"device plugin PreStartContainer rpc failed with err: {go_status(err)}"
    return None


def check_pod_spec(name: str, containers: Mapping[str, Mapping[str, int]]) -> None:
    """Reject a pod spec the API server would not accept (BadInputError)."""
    if not name:
        raise BadInputError("a pod needs a name")
    if not containers:
        raise BadInputError(f"pod {name!r} has no containers")
    for container, requests in containers.items():
        for resource, count in requests.items():
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise BadInputError(
                    f"pod {name!r} container {container!r}: {resource} must be a whole number >= 0"
                )
