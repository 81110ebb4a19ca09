"""Registering each resource's plugin with the kubelet, and again after every kubelet restart.

- Register only once our own socket answers: dial it and call GetDevicePluginOptions first
  (the kubelet does the same inside Register and fails it otherwise).
- A failed or rejected Register is retried with capped exponential backoff; each distinct
  failure is logged once, never a crash loop.
- A kubelet restart deletes every socket in the plugin dir and then creates kubelet.sock.
  `KubeletWatch` sees both through inotify (no polling) and wakes the affected `Registrar`s:
  our socket deleted → serve on a fresh one; kubelet.sock created → register again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from hostdev import metrics
from hostdev.host import inotify
from hostdev.kubelet import constants
from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.api import deviceplugin_pb2_grpc as pb_grpc
from hostdev.kubelet.plugin import PluginServer
from hostdev.waiting import cancel_and_wait, wait_event

log = logging.getLogger(__name__)
RPC_TIMEOUT_S = 10.0


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential delays: first, first*factor, ... up to cap."""

    first: float = 0.05
    factor: float = 2.0
    cap: float = 30.0

    def delay(self, attempt: int) -> float:
        """The wait after the given failed attempt (1-based)."""
        return float(min(self.cap, self.first * self.factor ** max(attempt - 1, 0)))


def _dial(socket_path: Path) -> grpc.aio.Channel:
    target = f"unix://{socket_path.absolute()}"
    return grpc.aio.insecure_channel(target, options=constants.OWN_CONNECTION)


async def probe(socket_path: Path) -> Any:
    """Dial a device plugin socket and return its options (raises grpc.aio.AioRpcError)."""
    async with _dial(socket_path) as channel:
        stub = pb_grpc.DevicePluginStub(channel)
        return await stub.GetDevicePluginOptions(pb.Empty(), timeout=RPC_TIMEOUT_S)


async def register_once(
    kubelet_socket: Path, endpoint: str, resource_name: str, options: Any
) -> None:
    """One Register call (raises grpc.aio.AioRpcError when refused or unreachable)."""
    async with _dial(kubelet_socket) as channel:
        stub = pb_grpc.RegistrationStub(channel)
        request = pb.RegisterRequest(
            version=constants.API_VERSION,
            endpoint=endpoint,
            resource_name=resource_name,
            options=options,
        )
        await stub.Register(request, timeout=RPC_TIMEOUT_S)


def _describe(err: BaseException) -> str:
    if isinstance(err, grpc.aio.AioRpcError):
        return f"{err.code().name}: {err.details()}"
    return str(err) or type(err).__name__


class Registrar:
    """Keeps one resource's server listening and registered, for as long as it runs."""

    def __init__(
        self,
        server: PluginServer,
        kubelet_socket: Path,
        backoff: Backoff | None = None,
        on_registered: Callable[[str], None] | None = None,
    ) -> None:
        self.server = server
        self.kubelet_socket = kubelet_socket
        self.backoff = backoff or Backoff()
        self.on_registered = on_registered
        self.registrations = 0
        self._wake = asyncio.Event()
        self._socket_lost = False
        self._task: asyncio.Task[None] | None = None

    @property
    def resource_name(self) -> str:
        """The resource this registrar serves."""
        return self.server.service.resource_name

    def start(self) -> None:
        """Run the registration loop in the background."""
        self._task = asyncio.create_task(self._run(), name=f"register {self.resource_name}")

    async def stop(self) -> None:
        """Stop the loop (the server is stopped by its owner)."""
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def kubelet_started(self) -> None:
        """kubelet.sock was (re)created: register again."""
        self._wake.set()

    def socket_deleted(self) -> None:
        """Our socket file vanished (a kubelet restart wipes the dir): serve anew, register."""
        self._socket_lost = True
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            await self._register_until_accepted()
            await self._wake.wait()

    async def _serve_anew(self) -> None:
        self._socket_lost = False
        await self.server.restart()
        log.info("%s: serving on a new socket %s", self.resource_name, self.server.socket_path)

    async def _register_until_accepted(self) -> None:
        attempt, last_error = 0, ""
        while True:
            # Checked before every attempt, not only when inotify says so: a kubelet that wipes
            # the directory while our server restarts deletes a socket the watch cannot yet
            # tell from our own unlink of a stale file.
            if self._socket_lost or not self.server.socket_path.exists():
                await self._serve_anew()
            if not self.kubelet_socket.exists():
                log.info(
                    "%s: waiting for the kubelet socket %s", self.resource_name, self.kubelet_socket
                )
                await self._sleep_or_wake(None)
                continue
            attempt += 1
            try:
                if not await self._attempt_unless_woken():
                    continue  # our socket vanished mid-attempt: serve anew, try again at once
            except (grpc.aio.AioRpcError, OSError) as err:
                text = _describe(err)
                metrics.REGISTRATIONS.labels(self.resource_name, "failed").inc()
                level = logging.DEBUG if text == last_error else logging.WARNING
                log.log(
                    level,
                    "%s: registration failed (attempt %d, retrying): %s",
                    self.resource_name,
                    attempt,
                    text,
                )
                last_error = text
                await self._sleep_or_wake(self.backoff.delay(attempt))
                continue
            self.registrations += 1
            metrics.REGISTRATIONS.labels(self.resource_name, "accepted").inc()
            log.info(
                "%s: registered with the kubelet (endpoint %s)",
                self.resource_name,
                self.server.endpoint,
            )
            if self.on_registered is not None:
                self.on_registered(self.resource_name)
            return

    async def _attempt_unless_woken(self) -> bool:
        """Probe our socket and Register; give up (False) if our socket is deleted meanwhile.

        A kubelet that starts wipes the directory; if it deletes the socket we just made,
        its Register would dial a missing file until its 10 s timeout. Start over instead."""
        attempt = asyncio.create_task(self._attempt())
        woken = asyncio.create_task(self._wake.wait())
        try:
            await asyncio.wait({attempt, woken}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:  # stopping: end the attempt too, and retrieve it
            await cancel_and_wait(attempt, grpc.aio.AioRpcError, OSError)
            raise
        finally:
            woken.cancel()
        if attempt.done() or not self._socket_lost:
            await attempt
            return True
        await cancel_and_wait(attempt, grpc.aio.AioRpcError)
        self._wake.clear()
        return False

    async def _attempt(self) -> None:
        options = await probe(self.server.socket_path)
        await register_once(self.kubelet_socket, self.server.endpoint, self.resource_name, options)

    async def _sleep_or_wake(self, delay: float | None) -> None:
        """Wait out the backoff (None: forever), cut short when the kubelet or our socket
        changes (the attempt loop then serves anew if our socket is gone)."""
        await wait_event(self._wake, delay)
        self._wake.clear()


class KubeletWatch:
    """inotify on the plugin dir: tells registrars about kubelet.sock and their own sockets."""

    def __init__(self, plugin_dir: Path, kubelet_socket: Path) -> None:
        self.plugin_dir = plugin_dir
        self.kubelet_socket = kubelet_socket
        self.registrars: dict[str, Registrar] = {}  # socket file name → registrar
        self._inotify: inotify.Inotify | None = None

    def add(self, registrar: Registrar) -> None:
        """Route events about this registrar's socket to it."""
        self.registrars[registrar.server.endpoint] = registrar

    def remove(self, registrar: Registrar) -> None:
        """Stop routing events to it."""
        self.registrars.pop(registrar.server.endpoint, None)

    def start(self) -> None:
        """Watch the plugin dir (and kubelet.sock's dir if it lives elsewhere)."""
        watcher = inotify.Inotify()
        mask = inotify.IN_CREATE | inotify.IN_DELETE | inotify.IN_MOVED_TO | inotify.IN_MOVED_FROM
        watcher.add_watch(str(self.plugin_dir), mask | inotify.IN_ONLYDIR)
        kubelet_dir = self.kubelet_socket.parent
        if os.path.realpath(kubelet_dir) != os.path.realpath(self.plugin_dir):
            watcher.add_watch(str(kubelet_dir), mask | inotify.IN_ONLYDIR)
        watcher.start(self._on_event)
        self._inotify = watcher

    def stop(self) -> None:
        """Stop watching."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def _on_event(self, event: inotify.InotifyEvent) -> None:
        created = event.mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO)
        deleted = event.mask & (inotify.IN_DELETE | inotify.IN_MOVED_FROM)
        if created and Path(event.path) == self.kubelet_socket:
            log.info("kubelet socket %s appeared: registering again", self.kubelet_socket)
            for registrar in self.registrars.values():
                registrar.kubelet_started()
        elif deleted and Path(event.directory) == self.plugin_dir:
            owner = self.registrars.get(event.name)
            # Our own unlink of a stale file also shows up here: only act while it is gone.
            if owner is not None and owner.server.running and not os.path.exists(event.path):
                log.info("%s: socket %s was deleted", owner.resource_name, event.path)
                owner.socket_deleted()
