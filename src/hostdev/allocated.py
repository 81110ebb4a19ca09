"""Which device IDs the kubelet has handed to pods, asked once over the PodResources API.

Used by commands that must not take away a device a pod holds (`hostdev mdev remove`,
`hostdev mdev apply`). A socket that does not answer is an error the caller reports; the
caller decides whether to go on without the check.
"""

from __future__ import annotations

from collections.abc import Callable

import grpc

from hostdev.errors import HostdevError
from hostdev.kubelet.api import podresources_pb2, podresources_pb2_grpc


def allocated_ids(socket_path: str, timeout: float = 5.0) -> frozenset[str]:
    """Every device ID of every container of every pod, from PodResources List."""
    with grpc.insecure_channel(f"unix://{socket_path}") as channel:
        stub = podresources_pb2_grpc.PodResourcesListerStub(channel)
        try:
            response = stub.List(podresources_pb2.ListPodResourcesRequest(), timeout=timeout)
        except grpc.RpcError as err:
            detail = err.details() if hasattr(err, "details") else str(err)
            raise HostdevError(f"PodResources at {socket_path} did not answer: {detail}") from err
    return frozenset(
        device_id
        for pod in response.pod_resources
        for container in pod.containers
        for devices in container.devices
        for device_id in devices.device_ids
    )


def in_use_checker(socket_path: str, timeout: float = 5.0) -> Callable[[str], bool]:
    """A predicate over device IDs, from one PodResources List call."""
    ids = allocated_ids(socket_path, timeout)
    return ids.__contains__
