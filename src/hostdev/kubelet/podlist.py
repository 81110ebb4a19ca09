"""The one PodResources v1 `List` client: which pod and container hold each device of each
resource, as the kubelet says. `hostdev status` uses it as is; the daemon's reconciler
(kubelet/podresources.py) and the mdev/SR-IOV in-use checks (allocated.py) build on it.

`List` over the kubelet's pod-resources socket (a unix socket, no TLS). The kubelet answers
for every pod on the node; only device assignments are kept. An unreachable socket or a
failed call raises `PodResourcesUnavailable` with the reason in one line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from hostdev.errors import HostdevError
from hostdev.kubelet.api import podresources_pb2 as pr
from hostdev.kubelet.api import podresources_pb2_grpc as pr_grpc
from hostdev.kubelet.constants import OWN_CONNECTION

DEFAULT_TIMEOUT_S = 3.0


class PodResourcesUnavailable(HostdevError):
    """The PodResources API could not be asked (no socket, refused, timed out)."""


@dataclass(frozen=True, slots=True, order=True)
class PodDevice:
    """One device held by a container."""

    resource: str
    device_id: str
    namespace: str
    pod: str
    container: str

    @property
    def pod_ref(self) -> str:
        """namespace/pod."""
        return f"{self.namespace}/{self.pod}"


def holdings(response: Any) -> list[PodDevice]:
    """Every (resource, device) a ListPodResourcesResponse assigns, sorted."""
    found = []
    for pod in response.pod_resources:
        for container in pod.containers:
            for devices in container.devices:
                for device_id in devices.device_ids:
                    found.append(
                        PodDevice(
                            devices.resource_name, device_id, pod.namespace, pod.name,
                            container.name,
                        )
                    )  # fmt: skip
    return sorted(found)


def by_device(found: list[PodDevice]) -> Mapping[tuple[str, str], PodDevice]:
    """Index holdings by (resource, device ID)."""
    return {(d.resource, d.device_id): d for d in found}


async def list_pod_devices(
    socket_path: str | Path, timeout: float = DEFAULT_TIMEOUT_S
) -> list[PodDevice]:
    """Ask the kubelet which devices pods hold (raises PodResourcesUnavailable)."""
    path = Path(socket_path)
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError) as err:
        raise PodResourcesUnavailable(f"PodResources socket {path} does not exist") from err
    except OSError as err:  # no permission on a directory above it, a name too long
        reason = err.strerror or err
        raise PodResourcesUnavailable(f"PodResources socket {path}: {reason}") from err
    try:
        target = f"unix://{path.absolute()}"
        async with grpc.aio.insecure_channel(target, options=OWN_CONNECTION) as channel:
            stub = pr_grpc.PodResourcesListerStub(channel)
            response = await stub.List(pr.ListPodResourcesRequest(), timeout=timeout)
    except grpc.aio.AioRpcError as err:
        raise PodResourcesUnavailable(
            f"PodResources List on {path} failed: {err.code().name}: {err.details()}"
        ) from err
    return holdings(response)


def list_pod_devices_sync(
    socket_path: str | Path, timeout: float = DEFAULT_TIMEOUT_S
) -> list[PodDevice]:
    """list_pod_devices for synchronous callers (the CLI)."""
    return asyncio.run(list_pod_devices(socket_path, timeout))
