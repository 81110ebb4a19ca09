"""A tiny device plugin (v1beta1 DevicePlugin over grpc.aio) for driving the kubelet simulator.

It serves a fixed set of devices on a unix socket, records every call, and lets a test change
device health (each change is streamed on ListAndWatch), answer GetPreferredAllocation with a
chosen list, or fail Allocate. Not the real plugin: see hostdev.plugin for that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import grpc

from hostdev.kubelet.api import deviceplugin_pb2 as dp
from hostdev.kubelet.api import deviceplugin_pb2_grpc as dp_grpc
from hostdev.kubelet.constants import API_VERSION, HEALTHY


def make_device(device_id: str, health: str = HEALTHY, numa: int | None = None) -> Any:
    """A v1beta1.Device, with a NUMA node when numa is given."""
    topology = dp.TopologyInfo(nodes=[dp.NUMANode(ID=numa)]) if numa is not None else None
    return dp.Device(ID=device_id, health=health, topology=topology)


class FakeDevicePlugin(dp_grpc.DevicePluginServicer):  # type: ignore[misc]
    """A scriptable device plugin; `calls` lists (method, request) in arrival order."""

    def __init__(
        self,
        devices: Sequence[Any],
        *,
        pre_start_required: bool = False,
        preferred: Callable[[Any], list[str]] | None = None,
        allocate_error: str | None = None,
        options_error: str | None = None,
        pre_start_error: str | None = None,
    ) -> None:
        self.devices = list(devices)
        self.pre_start_required = pre_start_required
        self.preferred = preferred
        self.allocate_error = allocate_error
        self.options_error = options_error
        self.pre_start_error = pre_start_error
        self.calls: list[tuple[str, Any]] = []
        self.socket: Path | None = None
        self._changed = asyncio.Event()
        self._server: grpc.aio.Server | None = None

    async def GetDevicePluginOptions(self, request: Any, context: Any) -> Any:
        """Options: PreStartContainer and GetPreferredAllocation as configured."""
        self.calls.append(("GetDevicePluginOptions", request))
        if self.options_error is not None:
            await context.abort(grpc.StatusCode.INTERNAL, self.options_error)
        return dp.DevicePluginOptions(
            pre_start_required=self.pre_start_required,
            get_preferred_allocation_available=self.preferred is not None,
        )

    async def ListAndWatch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        """Stream the device list now and after every set_devices()."""
        self.calls.append(("ListAndWatch", request))
        while True:
            changed = self._changed
            yield dp.ListAndWatchResponse(devices=self.devices)
            await changed.wait()

    async def GetPreferredAllocation(self, request: Any, context: Any) -> Any:
        """Answer with whatever the `preferred` callback picks for each container request."""
        self.calls.append(("GetPreferredAllocation", request))
        assert self.preferred is not None
        return dp.PreferredAllocationResponse(
            container_responses=[
                dp.ContainerPreferredAllocationResponse(deviceIDs=self.preferred(r))
                for r in request.container_requests
            ]
        )

    async def Allocate(self, request: Any, context: Any) -> Any:
        """One response per container request: an env listing the IDs and a DeviceSpec each."""
        self.calls.append(("Allocate", request))
        if self.allocate_error is not None:
            await context.abort(grpc.StatusCode.INTERNAL, self.allocate_error)
        return dp.AllocateResponse(
            container_responses=[
                _container_response(r.devices_ids) for r in request.container_requests
            ]
        )

    async def PreStartContainer(self, request: Any, context: Any) -> Any:
        """Record the call; fail when pre_start_error is set."""
        self.calls.append(("PreStartContainer", request))
        if self.pre_start_error is not None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, self.pre_start_error)
        return dp.PreStartContainerResponse()

    def called(self, method: str) -> list[Any]:
        """The requests received for method."""
        return [request for name, request in self.calls if name == method]

    def set_devices(self, devices: Sequence[Any]) -> None:
        """Replace the device list and stream it to every ListAndWatch caller."""
        self.devices = list(devices)
        self._changed.set()
        self._changed = asyncio.Event()

    async def serve(self, socket: Path) -> None:
        """Listen on the unix socket path."""
        self.socket = socket
        self._server = grpc.aio.server()
        dp_grpc.add_DevicePluginServicer_to_server(self, self._server)
        self._server.add_insecure_port(f"unix://{socket.absolute()}")
        await self._server.start()

    async def stop(self) -> None:
        """Stop serving (ends every ListAndWatch stream) and remove the socket."""
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None
        if self.socket is not None:
            self.socket.unlink(missing_ok=True)

    async def register(
        self,
        kubelet_socket: Path,
        resource: str,
        version: str = API_VERSION,
        endpoint: str | None = None,
    ) -> None:
        """Call Register on the kubelet; raises grpc.aio.AioRpcError when rejected."""
        if endpoint is None:
            assert self.socket is not None, "serve() first"
            endpoint = self.socket.name
        async with grpc.aio.insecure_channel(f"unix://{kubelet_socket.absolute()}") as channel:
            request = dp.RegisterRequest(
                version=version,
                endpoint=endpoint,
                resource_name=resource,
                options=dp.DevicePluginOptions(),
            )
            await dp_grpc.RegistrationStub(channel).Register(request, timeout=10)


def _container_response(device_ids: Sequence[str]) -> Any:
    return dp.ContainerAllocateResponse(
        envs={"FAKE_DEVICES": ",".join(device_ids)},
        devices=[
            dp.DeviceSpec(
                container_path=f"/dev/fake/{i}", host_path=f"/dev/fake/{i}", permissions="rw"
            )
            for i in device_ids
        ],
    )
