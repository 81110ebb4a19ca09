"""A minimal kubelet Registration server for plugin tests: records registrations, can reject
the first N, and (like the kubelet) dials the plugin and reads its options and device lists."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.api import deviceplugin_pb2_grpc as pb_grpc


@dataclass
class Registration:
    """One accepted Register call and what the kubelet then learnt from the plugin."""

    request: Any
    options: Any
    lists: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)


class FakeKubelet(pb_grpc.RegistrationServicer):  # type: ignore[misc]
    """Serves Registration on <plugin_dir>/kubelet.sock."""

    def __init__(
        self, plugin_dir: Path, *, reject_first: int = 0, hold: asyncio.Event | None = None
    ) -> None:
        self.plugin_dir = plugin_dir
        self.hold = hold  # when given, Register waits for it before answering
        self.entered = asyncio.Event()  # set when a Register call arrives
        self.socket = plugin_dir / "kubelet.sock"
        self.reject_left = reject_first
        self.rejections = 0
        self.accepted: asyncio.Queue[Registration] = asyncio.Queue()
        self._server: grpc.aio.Server | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._channels: list[grpc.aio.Channel] = []

    async def Register(self, request: Any, context: Any) -> Any:
        self.entered.set()
        if self.hold is not None:
            await self.hold.wait()
        if self.reject_left > 0:
            self.reject_left -= 1
            self.rejections += 1
            await context.abort(grpc.StatusCode.UNKNOWN, "resource name is taken")
        channel = grpc.aio.insecure_channel(f"unix://{self.plugin_dir / request.endpoint}")
        self._channels.append(channel)
        stub = pb_grpc.DevicePluginStub(channel)
        options = await stub.GetDevicePluginOptions(pb.Empty(), timeout=5)
        registration = Registration(request, options)
        self._tasks.append(asyncio.create_task(self._watch(stub, registration)))
        await self.accepted.put(registration)
        return pb.Empty()

    @staticmethod
    async def _watch(stub: Any, registration: Registration) -> None:
        with contextlib.suppress(grpc.aio.AioRpcError):
            async for response in stub.ListAndWatch(pb.Empty()):
                await registration.lists.put(response)

    async def start(self) -> None:
        server = grpc.aio.server()
        pb_grpc.add_RegistrationServicer_to_server(self, server)
        server.add_insecure_port(f"unix://{self.socket}")
        await server.start()
        self._server = server

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for channel in self._channels:
            await channel.close()
        self._channels.clear()
        if self._server is not None:
            await self._server.stop(grace=None)
            self._server = None
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()

    async def restart(self) -> None:
        """Like a kubelet restart: stop, delete every non-directory file, listen again."""
        await self.stop()
        for entry in self.plugin_dir.iterdir():
            if not entry.is_dir():
                entry.unlink()
        await self.start()
