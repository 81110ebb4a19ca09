"""The DevicePlugin gRPC service (grpc.aio), one instance per resource, each on its own socket.

Allocate is pure in-memory work (the kubelet waits on it with no deadline while every other pod
on the node waits too): no sysfs writes, no subprocesses. It answers one
ContainerAllocateResponse per container request, in order, each with only that container's
devices, or fails the whole call with a clear gRPC error and a fresh ListAndWatch list.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import grpc

from hostdev import metrics
from hostdev.errors import BadInputError, HostdevError
from hostdev.host.model import PciAddress
from hostdev.kubelet import constants
from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.api import deviceplugin_pb2_grpc as pb_grpc
from hostdev.kubelet.envs import container_envs, tag_envs
from hostdev.kubelet.preferred import NumaPolicy, PreferredPolicy
from hostdev.kubelet.state import AllocationError, DeviceTable, ResourceSnapshot
from hostdev.selection import Resource, ServedDevice

log = logging.getLogger(__name__)
VFIO_CONTAINER = "/dev/vfio/vfio"
IOMMUFD = "/dev/iommu"
PERMISSIONS = "mrw"
_DESCRIPTOR = pb.DESCRIPTOR.services_by_name["DevicePlugin"]
SERVICE = _DESCRIPTOR.full_name  # v1beta1.DevicePlugin
STOP_GRACE_S = 0.5  # lets ended ListAndWatch streams finish instead of being cancelled


class VfioNodes(NamedTuple):
    """The host-wide VFIO device nodes present: the container and iommufd's /dev/iommu."""

    container: bool
    iommufd: bool


SOCKET_PREFIX, SOCKET_SUFFIX = "hostdev-", ".sock"
READABLE_CHARS = 24  # of the name after the domain: enough for 10de_1eb8, TU104GL_Tesla_T4
DIGEST_CHARS = 10
SOCKET_NAME_MAX = len(SOCKET_PREFIX) + READABLE_CHARS + 1 + DIGEST_CHARS + len(SOCKET_SUFFIX)
# The longest socket path gRPC binds or dials as a unix:// target: 105 bytes, two short of
# the kernel's 107 (sun_path's 108 less the NUL).
SOCKET_PATH_MAX = 105
_FNV_OFFSET, _FNV_PRIME, _MASK_64 = 0xCBF29CE484222325, 0x100000001B3, (1 << 64) - 1


class PluginServeError(HostdevError):
    """A resource's socket could not be served."""


def socket_name(resource_name: str) -> str:
    """hostdev-<name after the domain, cut short>-<digest of the whole name>.sock: the digest
    tells apart names that read alike; the same on every start; at most SOCKET_NAME_MAX."""
    readable = re.sub(r"[^A-Za-z0-9_.-]", "-", resource_name.rpartition("/")[2])
    digest = f"{fnv1a_64(resource_name.encode()):016x}"[:DIGEST_CHARS]
    return f"{SOCKET_PREFIX}{readable[:READABLE_CHARS]}-{digest}{SOCKET_SUFFIX}"


def fnv1a_64(data: bytes) -> int:
    """The 64-bit FNV-1a hash of data. hashlib would load OpenSSL's libcrypto, which grows the
    daemon's RSS by 3.6 MiB (measured with 4,096 devices); names are short, so this costs
    nothing that matters."""
    digest = _FNV_OFFSET
    for byte in data:
        digest = ((digest ^ byte) * _FNV_PRIME) & _MASK_64
    return digest


def check_plugin_dir(plugin_dir: Path) -> None:
    """Raise BadInputError when a socket name in plugin_dir could pass the unix path limit."""
    length = len(os.fsencode(plugin_dir.absolute()))
    room = SOCKET_PATH_MAX - 1 - SOCKET_NAME_MAX
    if length > room:
        raise BadInputError(
            f"plugin directory {plugin_dir} is {length} bytes long, over the {room} that leave "
            f"room for socket names within the {SOCKET_PATH_MAX}-byte unix socket path limit"
        )


def list_response(snapshot: ResourceSnapshot) -> Any:
    """The ListAndWatch message for a snapshot: every device, health and NUMA node.

    Devices are added in place: building each as a message of its own and copying it in
    took three times as long and twice the transient memory for thousands of devices."""
    response = pb.ListAndWatchResponse()
    add = response.devices.add
    for view in snapshot.views:
        device = view.device
        health = constants.HEALTHY if view.healthy else constants.UNHEALTHY
        entry = add(ID=device.id, health=health)
        numa = device.numa_node
        if numa is not None and numa >= 0:
            entry.topology.nodes.add(ID=numa)
    return response


def device_specs(devices: Sequence[ServedDevice], nodes: VfioNodes) -> list[Any]:
    """/dev/vfio/vfio (when the host has it) and each group node; /dev/iommu and the vfio
    cdevs when iommufd exists. A node the host lacks would fail the container's creation."""
    paths = [VFIO_CONTAINER] if nodes.container else []
    paths.extend(f"/dev/vfio/{device.iommu_group}" for device in devices)
    if nodes.iommufd and any(d.vfio_cdev for d in devices):
        paths.append(IOMMUFD)
        paths.extend(f"/dev/vfio/devices/{d.vfio_cdev}" for d in devices if d.vfio_cdev)
    unique = dict.fromkeys(paths)
    return [pb.DeviceSpec(container_path=p, host_path=p, permissions=PERMISSIONS) for p in unique]


def container_response(
    resource: Resource, devices: Sequence[ServedDevice], nodes: VfioNodes
) -> Any:
    """One container's answer: its device nodes and the env variables naming its devices."""
    envs = container_envs(
        resource.name, resource.kind, resource.options.env, [d.id for d in devices]
    )
    if any(d.tags for d in devices):
        envs.update(tag_envs(resource.name, [d.tags for d in devices]))
    return pb.ContainerAllocateResponse(envs=envs, devices=device_specs(devices, nodes))


class DevicePluginService(pb_grpc.DevicePluginServicer):  # type: ignore[misc]
    """The kubelet-facing service of one resource, reading everything from the device table."""

    def __init__(
        self,
        table: DeviceTable,
        resource_name: str,
        preferred: PreferredPolicy | None = None,
        resetter: Callable[[PciAddress], None] | None = None,
    ) -> None:
        self.table = table
        self.resource_name = resource_name
        self.preferred: PreferredPolicy = preferred or NumaPolicy()
        self.resetter = resetter
        self._listed: tuple[ResourceSnapshot | None, bytes] = (None, b"")

    def listing(self, snapshot: ResourceSnapshot) -> bytes:
        """The serialized ListAndWatch message of a snapshot, built once for every stream.

        A kubelet restart opens a new stream on an unchanged snapshot: sending the bytes kept
        spares the daemon a 1 MiB burst (the message and its copy, 4,096 devices) each time.
        """
        if self._listed[0] is not snapshot:
            self._listed = (snapshot, list_response(snapshot).SerializeToString())
        return self._listed[1]

    def options(self) -> Any:
        """Never None: the kubelet fails registration on a nil options message."""
        snapshot = self.table.snapshot(self.resource_name)
        reset = snapshot is not None and snapshot.resource.options.reset
        return pb.DevicePluginOptions(
            pre_start_required=reset, get_preferred_allocation_available=True
        )

    async def GetDevicePluginOptions(self, request: Any, context: Any) -> Any:
        """The plugin's options."""
        return self.options()

    async def ListAndWatch(self, request: Any, context: Any) -> AsyncIterator[bytes]:
        """The full device list now and after every change, serialized (see add_to_server)."""
        log.debug("ListAndWatch opened for %s", self.resource_name)
        async for snapshot in self.table.watch(self.resource_name):
            yield self.listing(snapshot)

    async def GetPreferredAllocation(self, request: Any, context: Any) -> Any:
        """The policy's choice for each container request."""
        snapshot = self.table.snapshot(self.resource_name)
        devices = {v.device.id: v.device for v in snapshot.views} if snapshot else {}
        answers = []
        for req in request.container_requests:
            ids = self.preferred.choose(
                devices,
                list(req.available_deviceIDs),
                list(req.must_include_deviceIDs),
                req.allocation_size,
            )
            answers.append(pb.ContainerPreferredAllocationResponse(deviceIDs=ids))
        return pb.PreferredAllocationResponse(container_responses=answers)

    async def Allocate(self, request: Any, context: Any) -> Any:
        """Device nodes and env for each container request, in order; all or nothing."""
        requests = [list(r.devices_ids) for r in request.container_requests]
        try:
            claimed = self.table.claim(self.resource_name, requests)
        except AllocationError as err:
            code = (
                grpc.StatusCode.INVALID_ARGUMENT
                if err.code == "invalid"
                else grpc.StatusCode.FAILED_PRECONDITION
            )
            log.warning("Allocate refused: %s", err)
            metrics.ALLOCATIONS.labels(self.resource_name, "refused").inc(len(requests))
            await context.abort(code, str(err))
            raise  # abort raises; this line only satisfies the type checker
        snapshot = self.table.snapshot(self.resource_name)
        assert snapshot is not None  # claim succeeded, so the resource is served
        host = self.table.host
        nodes = VfioNodes(container=host.vfio_container, iommufd=host.iommufd)
        answers = [container_response(snapshot.resource, devices, nodes) for devices in claimed]
        metrics.ALLOCATIONS.labels(self.resource_name, "granted").inc(len(claimed))
        for devices in claimed:
            log.info("allocated %s: %s", self.resource_name, ",".join(d.id for d in devices))
        return pb.AllocateResponse(container_responses=answers)

    async def PreStartContainer(self, request: Any, context: Any) -> Any:
        """With `reset: true`, reset each PCI function through sysfs before the container starts.

        mdevs are skipped: resetting their parent would disturb every other mdev on it. A failed
        reset fails the call, so the kubelet does not start the container on a dirty device.
        """
        snapshot = self.table.snapshot(self.resource_name)
        if snapshot is None or not snapshot.resource.options.reset or self.resetter is None:
            return pb.PreStartContainerResponse()
        served = {v.device.id: v.device for v in snapshot.views}
        for device_id in request.devices_ids:
            device = served.get(device_id)
            if device is None or device.is_mdev:
                continue
            try:
                await asyncio.to_thread(self.resetter, device.address)
            except HostdevError as err:
                log.warning("PreStartContainer: reset of %s failed: %s", device_id, err)
                await context.abort(
                    grpc.StatusCode.FAILED_PRECONDITION, f"reset of {device_id} failed: {err}"
                )
            log.info("PreStartContainer: reset %s", device_id)
        return pb.PreStartContainerResponse()


def add_to_server(service: DevicePluginService, server: grpc.aio.Server) -> None:
    """Serve the DevicePlugin methods as the generated code does (one handler per method of
    the service's descriptor), except that ListAndWatch sends the bytes the service
    serialized (no response serializer)."""
    handlers = {}
    for method in _DESCRIPTOR.methods:
        behaviour = getattr(service, method.name)
        parse = getattr(pb, method.input_type.name).FromString
        if method.name == "ListAndWatch":
            handler = grpc.unary_stream_rpc_method_handler(behaviour, parse, None)
        else:
            serialize = getattr(pb, method.output_type.name).SerializeToString
            handler = grpc.unary_unary_rpc_method_handler(behaviour, parse, serialize)
        handlers[method.name] = handler
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(SERVICE, handlers),))
    server.add_registered_method_handlers(SERVICE, handlers)


class PluginServer:
    """A grpc.aio server for one resource on <plugin_dir>/<socket_name>."""

    def __init__(self, service: DevicePluginService, plugin_dir: Path) -> None:
        self.service = service
        self.endpoint = socket_name(service.resource_name)
        self.socket_path = plugin_dir / self.endpoint
        self._server: grpc.aio.Server | None = None

    async def start(self) -> None:
        """Listen on the socket (replacing a stale file); PluginServeError when it cannot."""
        server = grpc.aio.server()
        add_to_server(self.service, server)
        try:
            self._unlink()
            server.add_insecure_port(f"unix://{self.socket_path.absolute()}")
            await server.start()
        except (OSError, RuntimeError) as err:
            await server.stop(None)
            raise PluginServeError(
                f"{self.service.resource_name}: cannot serve on {self.socket_path}: "
                f"{self._reason(err)}"
            ) from err
        self._server = server

    async def stop(self, *, remove: bool = True) -> None:
        """Stop serving; remove the socket file unless told otherwise."""
        server, self._server = self._server, None
        if server is not None:
            await server.stop(grace=STOP_GRACE_S)
        if remove:
            self._unlink()

    async def restart(self) -> None:
        """Serve on a fresh socket (after the kubelet deleted ours)."""
        await self.stop(remove=False)
        await self.start()

    @property
    def running(self) -> bool:
        """True while the server is listening."""
        return self._server is not None

    def _reason(self, err: OSError | RuntimeError) -> str:
        if isinstance(err, OSError):
            return err.strerror or str(err)
        length = len(os.fsencode(self.socket_path.absolute()))
        if length > SOCKET_PATH_MAX:
            return f"the path is {length} bytes, over the unix socket limit of {SOCKET_PATH_MAX}"
        return "gRPC could not listen there (is the directory there and writable?)"

    def _unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path)
