"""Which device IDs the kubelet has handed to pods, asked once over the PodResources API.

Used by commands that must not take away a device a pod holds (`hostdev mdev remove`,
`hostdev mdev apply`). A socket that does not answer is an error the caller reports; the
caller decides whether to go on without the check.
"""

from __future__ import annotations

from collections.abc import Callable

from hostdev.errors import HostdevError
from hostdev.kubelet.podlist import PodResourcesUnavailable, list_pod_devices_sync


def allocated_ids(socket_path: str, timeout: float = 5.0) -> frozenset[str]:
    """Every device ID of every container of every pod, from PodResources List."""
    try:
        found = list_pod_devices_sync(socket_path, timeout)
    except PodResourcesUnavailable as err:
        raise HostdevError(f"PodResources at {socket_path} did not answer: {err}") from err
    return frozenset(d.device_id for d in found)


def in_use_checker(socket_path: str, timeout: float = 5.0) -> Callable[[str], bool]:
    """A predicate over device IDs, from one PodResources List call."""
    ids = allocated_ids(socket_path, timeout)
    return ids.__contains__
