"""Inspect any device plugin socket: its options and the first ListAndWatch device list.

Works on other vendors' plugins too: it only speaks the public v1beta1 DevicePlugin API, as the
kubelet does, and gives up with a clear error when nothing answers within the timeout.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path
from typing import Any

import grpc

from hostdev.errors import BadInputError, HostdevError
from hostdev.kubelet.api import deviceplugin_pb2 as dp
from hostdev.kubelet.api import deviceplugin_pb2_grpc as dp_grpc
from hostdev.kubelet.simservers import go_status

DEFAULT_TIMEOUT_S = 5.0


class PluginUnreachableError(HostdevError):
    """Nothing answered on the socket, or it broke off the conversation."""


async def inspect_plugin(socket: Path, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Options and devices a device plugin reports: a JSON-able document."""
    _check_socket(socket)
    async with grpc.aio.insecure_channel(f"unix://{socket.absolute()}") as channel:
        try:
            async with asyncio.timeout(timeout):
                await channel.channel_ready()
        except TimeoutError:
            raise PluginUnreachableError(
                f"no device plugin answers on {socket} (waited {timeout:g}s)"
            ) from None
        stub = dp_grpc.DevicePluginStub(channel)
        try:
            options = await stub.GetDevicePluginOptions(dp.Empty(), timeout=timeout)
            devices = await _first_device_list(stub, timeout)
        except grpc.aio.AioRpcError as err:
            raise PluginUnreachableError(f"{socket}: {go_status(err)}") from err
    return {
        "socket": str(socket),
        "options": {
            "preStartRequired": options.pre_start_required,
            "getPreferredAllocationAvailable": options.get_preferred_allocation_available,
        },
        "devices": [
            {"id": d.ID, "health": d.health, "numaNodes": [n.ID for n in d.topology.nodes]}
            for d in devices
        ],
    }


async def _first_device_list(stub: Any, timeout: float) -> list[Any]:
    call = stub.ListAndWatch(dp.Empty())
    try:
        async with asyncio.timeout(timeout):
            response = await call.read()
    except TimeoutError:
        raise PluginUnreachableError(
            f"the plugin sent no device list within {timeout:g}s"
        ) from None
    finally:
        call.cancel()
    if response is grpc.aio.EOF:
        raise PluginUnreachableError("the plugin ended ListAndWatch without a device list")
    return list(response.devices)


def _check_socket(socket: Path) -> None:
    try:
        mode = socket.stat().st_mode
    except FileNotFoundError:
        raise BadInputError(f"{socket}: no such file") from None
    except OSError as err:
        raise BadInputError(f"{socket}: {err.strerror}") from err
    if not stat.S_ISSOCK(mode):
        raise BadInputError(f"{socket}: not a unix socket")
