"""PodResources v1 client and the reconcile loop that keeps the allocation ledger truthful.

`list_holdings` asks the kubelet (`List` on /var/lib/kubelet/pod-resources/kubelet.sock) which
device IDs live pods hold, and by which pod and container. `Reconciler` runs it at start,
shortly after each Allocate, when the socket reappears (inotify on its directory: a kubelet
restart) and every `interval` seconds. When the kubelet cannot be asked, the ledger keeps
everything it knew and everything allocated since (conservative) and `reachable` says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from hostdev.allocation import Holder
from hostdev.host import inotify
from hostdev.kubelet.podlist import PodDevice, PodResourcesUnavailable, holdings, list_pod_devices
from hostdev.ledger import AllocationLedger
from hostdev.waiting import cancel_and_wait, wait_event

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 10.0
DEFAULT_TIMEOUT_S = 5.0
AFTER_ALLOCATE_S = 0.5  # the kubelet records a container's devices right after Allocate returns
AFTER_SOCKET_S = 0.2  # a re-created socket may take a moment to answer

Lister = Callable[[Path, float], Awaitable[dict[str, Holder]]]


def holdings_from(response: Any) -> dict[str, Holder]:
    """Device ID → the pod container holding it, from a ListPodResourcesResponse."""
    return _by_id(holdings(response))


def _by_id(found: list[PodDevice]) -> dict[str, Holder]:
    return {d.device_id: Holder(d.namespace, d.pod, d.container) for d in found}


async def list_holdings(socket: Path, timeout: float = DEFAULT_TIMEOUT_S) -> dict[str, Holder]:
    """Call List once; PodResourcesUnavailable when the kubelet does not answer in time."""
    return _by_id(await list_pod_devices(socket, timeout))


class Reconciler:
    """Feeds PodResources into a ledger; calls on_change after every attempt."""

    def __init__(
        self,
        ledger: AllocationLedger,
        socket: Path,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        on_change: Callable[[], None] = lambda: None,
        lister: Lister = list_holdings,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = ledger
        self.socket = socket
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.on_change = on_change
        self.reconciles = 0  # successful ones, for tests and metrics
        self._attempts = 0
        self._lister = lister
        self._clock = clock
        self._wake = asyncio.Event()
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._watch: inotify.Inotify | None = None

    @property
    def reachable(self) -> bool:
        """False while the last attempt to read PodResources failed."""
        return self.ledger.podresources_reachable is not False

    async def start(self) -> None:
        """Reconcile once now, then keep reconciling until stop()."""
        await self.reconcile_now()
        self._watch_socket_dir()
        self._task = asyncio.create_task(self._run(), name="podresources-reconcile")

    async def stop(self) -> None:
        """Stop the loop and the directory watch."""
        if self._timer is not None:
            self._timer.cancel()
        if self._watch is not None:
            self._watch.close()
            self._watch = None
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None

    def poke(self, delay_s: float = 0.0) -> None:
        """Reconcile soon (after delay_s); pokes that come together merge into one."""
        if delay_s <= 0:
            self._wake.set()
            return
        if self._timer is None or self._timer.cancelled():
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(delay_s, self._fire)

    def after_allocate(self) -> None:
        """An Allocate was granted: learn the pod's name once the kubelet recorded it."""
        self.poke(AFTER_ALLOCATE_S)

    @property
    def attempts(self) -> int:
        """Reconciles tried so far, successful or not."""
        return self._attempts

    async def wait_reconciled(self, count: int) -> None:
        """Return once `count` reconciles (successful or not) have run since start."""
        while self._attempts < count:
            await self._done.wait()

    def _fire(self) -> None:
        self._timer = None
        self._wake.set()

    async def _run(self) -> None:
        while True:
            await wait_event(self._wake, self.interval_s)
            self._wake.clear()
            await self.reconcile_now()

    async def reconcile_now(self) -> bool:
        """One List; adopt it or go conservative. True when PodResources answered."""
        started = self._clock()
        try:
            listed = await self._lister(self.socket, self.timeout_s)
        except (PodResourcesUnavailable, OSError) as err:
            self._failed(str(err))
            return False
        if self.ledger.podresources_reachable is False:
            log.info("PodResources reachable again at %s", self.socket)
        for pending in self.ledger.reconcile(listed, started):
            if not any(i in listed for i in pending.device_ids):
                log.info(
                    "allocation #%d (%s) not seen in PodResources within the grace: released "
                    "(pod deleted or never admitted)",
                    pending.holder.allocation,
                    ",".join(pending.device_ids),
                )
        self.reconciles += 1
        self._finish()
        return True

    def _failed(self, error: str) -> None:
        if self.ledger.podresources_reachable is not False:
            log.warning(
                "PodResources unreachable (%s): treating every device known in use or "
                "allocated since the last reconcile as in use",
                error,
            )
        self.ledger.reconcile_failed(error)
        self._finish()

    def _finish(self) -> None:
        self._attempts += 1
        self.on_change()
        self._done.set()
        self._done = asyncio.Event()

    def _watch_socket_dir(self) -> None:
        directory = self.socket.parent
        try:
            watch = inotify.Inotify()
            try:
                mask = inotify.IN_CREATE | inotify.IN_MOVED_TO | inotify.IN_ONLYDIR
                watch.add_watch(str(directory), mask)
            except OSError:
                watch.close()
                raise
        except OSError as err:
            log.warning(
                "cannot watch %s (%s): reconciling every %.0f s only",
                directory,
                err.strerror,
                self.interval_s,
            )
            return
        watch.start(self._on_event)
        self._watch = watch

    def _on_event(self, event: inotify.InotifyEvent) -> None:
        if event.name == self.socket.name:
            log.info("PodResources socket %s appeared: reconciling", self.socket)
            self.poke(AFTER_SOCKET_S)
