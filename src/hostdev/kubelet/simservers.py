"""The gRPC services the kubelet simulator serves: Registration and PodResourcesLister v1.

Thin adapters: the simulator owns the state; these turn its answers and errors into gRPC
replies the way the kubelet does (Go errors arrive as status UNKNOWN with the message).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from hostdev.errors import HostdevError
from hostdev.kubelet import devicemanager
from hostdev.kubelet.api import deviceplugin_pb2 as dp
from hostdev.kubelet.api import deviceplugin_pb2_grpc as dp_grpc
from hostdev.kubelet.api import podresources_pb2 as pr
from hostdev.kubelet.api import podresources_pb2_grpc as pr_grpc

if TYPE_CHECKING:
    from hostdev.kubelet.simulator import KubeletSimulator


def go_status(err: grpc.aio.AioRpcError) -> str:
    """Render a gRPC error the way Go's status package prints it."""
    code = "".join(part.capitalize() for part in err.code().name.split("_"))
    return f"rpc error: code = {code} desc = {err.details()}"


class RegistrationService(dp_grpc.RegistrationServicer):  # type: ignore[misc]
    """v1beta1.Registration: hands each RegisterRequest to the simulator."""

    def __init__(self, register: Callable[[Any], Awaitable[None]]) -> None:
        self._register = register

    async def Register(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Register a plugin, or fail with the kubelet's message."""
        try:
            await self._register(request)
        except HostdevError as err:
            await context.abort(grpc.StatusCode.UNKNOWN, str(err))
        return dp.Empty()


class PodResourcesService(pr_grpc.PodResourcesListerServicer):  # type: ignore[misc]
    """v1.PodResourcesLister over the simulator's live pods and devices."""

    def __init__(self, simulator: KubeletSimulator) -> None:
        self._sim = simulator

    def add_to(self, server: grpc.aio.Server) -> None:
        """Register this service on server."""
        pr_grpc.add_PodResourcesListerServicer_to_server(self, server)

    async def List(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Every admitted pod with the devices of each container."""
        return pr.ListPodResourcesResponse(
            pod_resources=[devicemanager.pod_resources(p) for p in self._sim.pods]
        )

    async def GetAllocatableResources(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Every healthy device of every resource."""
        self._sim.capacity()  # expires stopped endpoints first, like the kubelet's GetCapacity
        return pr.AllocatableResourcesResponse(
            devices=devicemanager.allocatable_devices(self._sim.resource_states())
        )

    async def Get(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """One pod's resources; an error when the pod is unknown."""
        pod = self._sim.pod(request.pod_name, request.pod_namespace)
        if pod is not None:
            return pr.GetPodResourcesResponse(pod_resources=devicemanager.pod_resources(pod))
        message = f"pod {request.pod_name} in namespace {request.pod_namespace} not found"
        await context.abort(grpc.StatusCode.UNKNOWN, message)
