"""A kubelet simulator: the device-manager side of the device plugin API, for tests and demos.

It behaves like the real kubelet device manager (Kubernetes v1.32, docs/kubelet-protocol.md):
a Registration server on <plugin_dir>/kubelet.sock that checks the version and the resource
name and, inside Register, dials <plugin_dir>/<endpoint> and calls GetDevicePluginOptions;
ListAndWatch per resource in the background; pod admission that calls GetPreferredAllocation,
Allocate and PreStartContainer the way the kubelet does; a PodResources v1 server; and a
restart that wipes the socket directory.

    sim = KubeletSimulator(plugin_dir, pod_resources_socket=None)
    await sim.start()                      # or: async with KubeletSimulator(...) as sim:
    await sim.wait_registered("devices.kubevirt.io/10de_1eb8")
    await sim.wait_for(lambda: sim.allocatable().get("devices.kubevirt.io/10de_1eb8") == 2)
    pod = await sim.create_pod("vm-a", {"compute": {"devices.kubevirt.io/10de_1eb8": 1}})
    pod.response("compute", "devices.kubevirt.io/10de_1eb8").envs   # the Allocate answer
    await sim.delete_pod("vm-a")           # releases its devices
    await sim.restart()                    # kubelet restart: plugins must re-register
    print(sim.describe_node())
    await sim.stop()

capacity() and allocatable() are what the node status shows (allocatable = healthy devices,
as in the real kubelet); available() is healthy minus allocated, what a new pod can get.
Every state change bumps `version` and wakes wait_for(); nothing needs sleeps.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import socket
import stat
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import grpc

from hostdev.errors import BadInputError, HostdevError
from hostdev.kubelet import admission, devicemanager
from hostdev.kubelet.admission import AllocationError
from hostdev.kubelet.api import deviceplugin_pb2 as dp
from hostdev.kubelet.api import deviceplugin_pb2_grpc as dp_grpc
from hostdev.kubelet.constants import (
    CHECKPOINT_NAME,
    KUBELET_SOCKET_NAME,
    REGISTER_DIAL_TIMEOUT_S,
    SUPPORTED_VERSIONS,
    UNHEALTHY,
)
from hostdev.kubelet.devicemanager import Container, Pod, ResourceState
from hostdev.kubelet.resourcename import invalid_resource_name_message, is_extended_resource_name
from hostdev.kubelet.simservers import PodResourcesService, RegistrationService, go_status
from hostdev.userfiles import ensure_directory

__all__ = ["AllocationError", "KubeletSimulator", "RegistrationRecord", "RegistrationRejected"]

log = logging.getLogger(__name__)

MAX_UNIX_PATH = 107
DEFAULT_WAIT_S = 10.0


class RegistrationRejected(HostdevError):
    """Register failed; the message is what the kubelet returns to the plugin."""


@dataclasses.dataclass(frozen=True)
class RegistrationRecord:
    """One Register call as the kubelet saw it."""

    resource: str
    endpoint: str
    version: str
    error: str | None


@dataclasses.dataclass
class _Endpoint:
    resource: str
    channel: grpc.aio.Channel
    stub: Any  # DevicePluginStub
    options: Any  # DevicePluginOptions
    task: asyncio.Task[None] | None = None


class KubeletSimulator:
    """The kubelet's device manager and PodResources server, in-process on asyncio."""

    def __init__(
        self,
        plugin_dir: str | Path,
        pod_resources_socket: str | Path | None = None,
        *,
        dial_timeout: float = REGISTER_DIAL_TIMEOUT_S,
        grace_s: float = devicemanager.ENDPOINT_STOP_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
        write_checkpoint: bool = True,
    ) -> None:
        self.plugin_dir = Path(plugin_dir)
        self.kubelet_socket = self.plugin_dir / KUBELET_SOCKET_NAME
        self.pod_resources_socket = Path(pod_resources_socket) if pod_resources_socket else None
        self.registrations: list[RegistrationRecord] = []
        self.restarts = 0
        self.version = 0
        self._dial_timeout = dial_timeout
        self._grace_s = grace_s
        self._clock = clock
        self._write_checkpoint = write_checkpoint
        self._resources: dict[str, ResourceState] = {}
        self._endpoints: dict[str, _Endpoint] = {}
        self._retired: list[_Endpoint] = []
        self._pods: dict[tuple[str, str], Pod] = {}
        self._admitting: Pod | None = None
        self._admission = asyncio.Lock()
        self._changed = asyncio.Event()
        self._servers: list[tuple[grpc.aio.Server, Path]] = []  # with the socket each serves

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Clean the socket directory and serve Registration (and PodResources if asked)."""
        for path in (self.kubelet_socket, self.pod_resources_socket):
            if path is not None and len(str(path.absolute())) > MAX_UNIX_PATH:
                raise BadInputError(f"socket path too long for a unix socket: {path}")
        if _listening(self.kubelet_socket):
            raise BadInputError(
                f"{self.kubelet_socket}: a kubelet already listens there; "
                "the simulator would delete its plugins' sockets"
            )
        if self.pod_resources_socket is not None:
            _require_replaceable_socket(self.pod_resources_socket)
        ensure_directory(self.plugin_dir, "the device plugin directory")
        self._remove_plugin_dir_files()
        try:
            await self._serve()
        except BaseException:
            await self.stop()  # a server already listening would outlive the event loop
            raise

    async def stop(self) -> None:
        """Stop the servers, close plugin connections and remove our sockets.

        The servers go first: a Register they were answering could otherwise install its
        endpoint after the connections were closed, and leave its stream open."""
        sockets = [path for _, path in self._servers]
        for server, _ in self._servers:
            await server.stop(grace=None)
        self._servers.clear()
        await self._close_endpoints()
        for path in sockets:
            path.unlink(missing_ok=True)

    async def restart(self) -> None:
        """Do what a kubelet restart does; pods and their allocations are kept."""
        await self.stop()
        now = self._clock()
        self._resources = {n: ResourceState(n, stopped_at=now) for n in self._resources}
        self._remove_plugin_dir_files()
        await self._serve()
        self.restarts += 1
        self._bump()

    async def __aenter__(self) -> KubeletSimulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _serve(self) -> None:
        registration = grpc.aio.server()
        dp_grpc.add_RegistrationServicer_to_server(
            RegistrationService(self._register), registration
        )
        await self._listen(registration, self.kubelet_socket)
        if self.pod_resources_socket is not None:
            lister = grpc.aio.server()
            PodResourcesService(self).add_to(lister)
            ensure_directory(self.pod_resources_socket.parent, "the PodResources directory")
            await self._listen(lister, self.pod_resources_socket)

    async def _listen(self, server: grpc.aio.Server, path: Path) -> None:
        try:
            path.unlink(missing_ok=True)
        except OSError as err:
            raise BadInputError(f"cannot use {path} as a socket: {err.strerror or err}") from err
        server.add_insecure_port(f"unix://{path.absolute()}")
        await server.start()
        self._servers.append((server, path))

    def _remove_plugin_dir_files(self) -> None:
        """The kubelet deletes every non-directory file but its checkpoint at start."""
        for entry in self.plugin_dir.iterdir():
            if entry.name != CHECKPOINT_NAME and not entry.is_dir():
                entry.unlink(missing_ok=True)

    # -- waiting ----------------------------------------------------------------------------

    def _bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()
        if self._write_checkpoint and self.plugin_dir.is_dir():
            data = devicemanager.checkpoint(self._resources, self._pods.values())
            (self.plugin_dir / CHECKPOINT_NAME).write_text(json.dumps(data))

    async def wait_for(
        self, predicate: Callable[[], bool], timeout: float | None = DEFAULT_WAIT_S
    ) -> None:
        """Return once predicate() is true, re-checking after every state change."""
        async with asyncio.timeout(timeout):
            while not predicate():
                await self._changed.wait()

    async def wait_change(self, seen: int, timeout: float | None = None) -> None:
        """Return once `version` differs from seen."""
        await self.wait_for(lambda: self.version != seen, timeout)

    async def wait_registered(self, resource: str, timeout: float | None = DEFAULT_WAIT_S) -> None:
        """Return once resource has a connected plugin endpoint."""
        await self.wait_for(lambda: self.is_registered(resource), timeout)

    async def wait_devices(
        self, resource: str, healthy: int, timeout: float | None = DEFAULT_WAIT_S
    ) -> None:
        """Return once resource reports exactly `healthy` healthy devices."""
        await self.wait_for(lambda: self.allocatable().get(resource) == healthy, timeout)

    # -- node status ------------------------------------------------------------------------

    def is_registered(self, resource: str) -> bool:
        """True while resource has a live plugin endpoint."""
        return resource in self._endpoints

    def registration_count(self, resource: str) -> int:
        """How many Register calls for resource succeeded."""
        return sum(1 for r in self.registrations if r.resource == resource and r.error is None)

    def _live_resources(self) -> dict[str, ResourceState]:
        if devicemanager.expire_stopped(self._resources, self._clock(), self._grace_s):
            self._bump()
        return self._resources

    def capacity(self) -> dict[str, int]:
        """Resource -> healthy + unhealthy devices (node status capacity)."""
        return devicemanager.capacity(self._live_resources())

    def allocatable(self) -> dict[str, int]:
        """Resource -> healthy devices (node status allocatable)."""
        return devicemanager.allocatable(self._live_resources())

    def available(self) -> dict[str, int]:
        """Resource -> healthy devices not allocated to any pod."""
        return {
            name: len(r.healthy_ids() - self._allocated(name))
            for name, r in sorted(self._live_resources().items())
        }

    def devices(self, resource: str) -> dict[str, Any]:
        """The last device list resource streamed: ID -> v1beta1.Device."""
        state = self._resources.get(resource)
        return dict(state.devices) if state else {}

    def options(self, resource: str) -> Any:
        """The DevicePluginOptions the resource's plugin answered at registration."""
        return self._endpoints[resource].options

    def describe_node(self) -> str:
        """Capacity, Allocatable and Allocated resources as `kubectl describe node` shows them."""
        return devicemanager.describe_node(self._live_resources(), self._pods.values())

    def resource_states(self) -> dict[str, ResourceState]:
        """The device manager's per-resource state (read-only use)."""
        return self._resources

    @property
    def pods(self) -> list[Pod]:
        """Admitted pods, oldest first."""
        return list(self._pods.values())

    def pod(self, name: str, namespace: str = "default") -> Pod | None:
        """The pod called namespace/name, if admitted."""
        return self._pods.get((namespace, name))

    # -- registration and ListAndWatch ------------------------------------------------------

    async def _register(self, request: Any) -> None:
        record = RegistrationRecord(request.resource_name, request.endpoint, request.version, None)
        try:
            endpoint = await self._connect(request)
        except RegistrationRejected as err:
            log.info("registration of %s rejected: %s", request.resource_name, err)
            self.registrations.append(dataclasses.replace(record, error=str(err)))
            self._bump()
            raise
        self.registrations.append(record)
        self._install(endpoint)

    async def _connect(self, request: Any) -> _Endpoint:
        if request.version not in SUPPORTED_VERSIONS:
            supported = ", ".join(f'"{v}"' for v in SUPPORTED_VERSIONS)
            raise RegistrationRejected(
                f'requested API version "{request.version}" is not supported by kubelet. '
                f"Supported version is [{supported}]"
            )
        if not is_extended_resource_name(request.resource_name):
            raise RegistrationRejected(invalid_resource_name_message(request.resource_name))
        channel = grpc.aio.insecure_channel(
            f"unix://{(self.plugin_dir / request.endpoint).absolute()}"
        )
        stub = dp_grpc.DevicePluginStub(channel)
        try:
            options = await self._plugin_options(channel, stub)
        except BaseException:  # rejected, or cancelled by a stop while dialing
            await channel.close()
            raise
        return _Endpoint(request.resource_name, channel, stub, options)

    async def _plugin_options(self, channel: grpc.aio.Channel, stub: Any) -> Any:
        try:
            async with asyncio.timeout(self._dial_timeout):
                await channel.channel_ready()
        except TimeoutError:
            raise RegistrationRejected(
                "failed to dial device plugin: context deadline exceeded"
            ) from None
        try:
            return await stub.GetDevicePluginOptions(dp.Empty(), timeout=self._dial_timeout)
        except grpc.aio.AioRpcError as err:
            raise RegistrationRejected(
                f"failed to get device plugin options: {go_status(err)}"
            ) from err

    def _install(self, endpoint: _Endpoint) -> None:
        old = self._endpoints.get(endpoint.resource)
        if old is not None:
            self._retired.append(old)  # last registration wins; the old stream is left open
        self._endpoints[endpoint.resource] = endpoint
        state = self._resources.get(endpoint.resource)
        if state is not None:
            state.stopped_at = None
        endpoint.task = asyncio.create_task(self._watch(endpoint), name=f"lw:{endpoint.resource}")
        log.info("registered %s", endpoint.resource)
        self._bump()

    async def _watch(self, endpoint: _Endpoint) -> None:
        try:
            async for response in endpoint.stub.ListAndWatch(dp.Empty()):
                if self._endpoints.get(endpoint.resource) is endpoint:
                    self._store_devices(endpoint.resource, response.devices)
        except grpc.aio.AioRpcError as err:
            log.info("ListAndWatch of %s ended: %s", endpoint.resource, go_status(err))
        if self._endpoints.get(endpoint.resource) is endpoint:
            self._disconnect(endpoint.resource)

    def _store_devices(self, resource: str, devices: Any) -> None:
        """A ListAndWatch message replaces the list (the resource appears with the first)."""
        state = self._resources.setdefault(resource, ResourceState(resource))
        state.devices = {d.ID: d for d in devices}
        self._bump()

    def _disconnect(self, resource: str) -> None:
        """The stream broke: every device turns unhealthy; capacity stays for the grace period."""
        del self._endpoints[resource]
        state = self._resources.get(resource)
        if state is None:
            self._bump()
            return
        for device_id, device in list(state.devices.items()):
            unhealthy = dp.Device()
            unhealthy.CopyFrom(device)
            unhealthy.health = UNHEALTHY
            state.devices[device_id] = unhealthy
        state.stopped_at = self._clock()
        self._bump()

    async def _close_endpoints(self) -> None:
        endpoints = [*self._endpoints.values(), *self._retired]
        self._endpoints.clear()
        self._retired.clear()
        for endpoint in endpoints:
            if endpoint.task is not None:
                endpoint.task.cancel()
            await endpoint.channel.close()
        await asyncio.gather(*(e.task for e in endpoints if e.task), return_exceptions=True)

    # -- pods -------------------------------------------------------------------------------

    def _allocated(self, resource: str) -> set[str]:
        pods = [*self._pods.values(), *([self._admitting] if self._admitting else [])]
        return devicemanager.allocated_ids(pods, resource)

    async def create_pod(
        self,
        name: str,
        containers: Mapping[str, Mapping[str, int]],
        namespace: str = "default",
    ) -> Pod:
        """Admit a pod: allocate every container's device requests, then start its containers.

        Raises AllocationError (pod not created) when admission fails. A failed
        PreStartContainer leaves the pod admitted with the container's start_error set.
        """
        admission.check_pod_spec(name, containers)
        if (namespace, name) in self._pods:
            raise BadInputError(f'pod "{namespace}/{name}" already exists')
        async with self._admission:
            pod = Pod(
                name,
                namespace,
                str(uuid.uuid4()),
                [Container(c, dict(r)) for c, r in containers.items()],
            )
            self._admitting = pod
            try:
                for container in pod.containers:
                    for resource, count in container.requests.items():
                        if count > 0:
                            await self._allocate(container, resource, count)
            finally:
                self._admitting = None
            self._pods[(namespace, name)] = pod
            self._bump()
        await self._start_containers(pod)
        return pod

    async def delete_pod(self, name: str, namespace: str = "default") -> None:
        """Remove a pod; its devices become available again."""
        if self._pods.pop((namespace, name), None) is None:
            raise BadInputError(f'pod "{namespace}/{name}" not found')
        self._bump()

    async def _allocate(self, container: Container, resource: str, needed: int) -> None:
        available = self._available_for_admission(resource, needed)
        endpoint = self._endpoints.get(resource)
        if endpoint is None:
            raise AllocationError(f"unknown Device Plugin {resource}")
        preferred: list[str] = []
        if endpoint.options.get_preferred_allocation_available:
            preferred = await admission.preferred_ids(endpoint.stub, available, needed)
        chosen = admission.choose(preferred, available, needed)
        container.devices[resource] = chosen
        container.responses[resource] = await admission.allocate(endpoint.stub, chosen)
        state = self._resources[resource]
        container.numa[resource] = {i: state.numa_nodes(i) for i in chosen}

    def _available_for_admission(self, resource: str, needed: int) -> set[str]:
        state = self._resources.get(resource)
        if state is None:
            raise AllocationError(f"cannot allocate unregistered device {resource}")
        healthy = state.healthy_ids()
        if not healthy:
            raise AllocationError(
                f"no healthy devices present; cannot allocate unhealthy devices {resource}"
            )
        available = healthy - self._allocated(resource)
        if len(available) < needed:
            raise AllocationError(
                f"requested number of devices unavailable for {resource}. "
                f"Requested: {needed}, Available: {len(available)}"
            )
        return available

    async def _start_containers(self, pod: Pod) -> None:
        for container in pod.containers:
            for resource, ids in container.devices.items():
                endpoint = self._endpoints.get(resource)
                if endpoint is None or not endpoint.options.pre_start_required:
                    continue
                container.start_error = await admission.pre_start(endpoint.stub, ids)
                if container.start_error:
                    self._bump()
                    break


def _require_replaceable_socket(path: Path) -> None:
    """Raise BadInputError unless path is missing or a stale unix socket: listening there
    replaces the file, which must be neither a user's file nor a live kubelet's socket."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    except OSError as err:
        raise BadInputError(f"cannot use {path} as a socket: {err.strerror or err}") from err
    if not stat.S_ISSOCK(mode):
        raise BadInputError(f"cannot use {path} as a socket: not a unix socket")
    if _listening(path):
        raise BadInputError(f"{path}: a kubelet already listens there")


def _listening(path: Path) -> bool:
    """True when something accepts connections on the unix socket path."""
    if not path.exists():
        return False
    with socket.socket(socket.AF_UNIX) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return False
    return True
