"""What wakes the daemon: kernel uevents, inotify on /dev/vfio and the config directory, and a
coalescing trigger that turns bursts of wake-ups into one rescan (plus a slow backstop).

Nothing here polls. The uevent socket and the inotify fd are read from `loop.add_reader` when
the kernel says they are readable; the only timers are the debounce (a few ms, armed only
after a wake-up) and the backstop interval.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from hostdev.host import inotify
from hostdev.host.uevent import (
    MAX_MESSAGE,
    Uevent,
    is_relevant,
    open_uevent_socket,
    parse_uevent,
)
from hostdev.waiting import cancel_and_wait, wait_event

log = logging.getLogger(__name__)

DEBOUNCE_S = 0.005
DATA_LINK = "..data"  # a ConfigMap volume swaps this symlink to publish a new version
_DIR_EVENTS = (
    inotify.IN_CREATE
    | inotify.IN_DELETE
    | inotify.IN_MOVED_TO
    | inotify.IN_MOVED_FROM
    | inotify.IN_CLOSE_WRITE
)


class Coalescer:
    """Runs `action(reasons)` once per burst of `poke(reason)` calls, and every `backstop`
    seconds of quiet (None: never). Pokes during a run lead to exactly one more run."""

    def __init__(
        self,
        name: str,
        action: Callable[[frozenset[str]], Awaitable[None]],
        *,
        debounce: float = DEBOUNCE_S,
        backstop: float | None = None,
    ) -> None:
        self.name = name
        self.action = action
        self.debounce = debounce
        self.backstop = backstop
        self.runs = 0
        self.busy_since: float | None = None  # loop.time() when the running action began
        self._reasons: set[str] = set()
        self._wake = asyncio.Event()
        self._ran = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def poke(self, reason: str) -> None:
        """Ask for a run soon; reasons of one burst are passed together."""
        self._reasons.add(reason)
        self._wake.set()

    @property
    def running(self) -> bool:
        """True while the background loop is alive."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        """Start waiting for pokes in the background."""
        self._task = asyncio.create_task(self._loop(), name=f"coalescer {self.name}")

    async def stop(self) -> None:
        """Stop (a run in progress is cancelled)."""
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait(task)

    async def _loop(self) -> None:
        while True:
            if not await wait_event(self._wake, self.backstop):
                self._reasons.add("backstop")
            if self.debounce > 0:
                await asyncio.sleep(self.debounce)
            self._wake.clear()
            reasons, self._reasons = frozenset(self._reasons), set()
            self.busy_since = asyncio.get_running_loop().time()
            try:
                await self.action(reasons)
            except Exception:  # the boundary: log once, keep the daemon alive
                log.exception("%s failed (reasons: %s)", self.name, ", ".join(sorted(reasons)))
            self.busy_since = None
            self.runs += 1
            self._ran.set()
            self._ran = asyncio.Event()

    def stuck_for(self) -> float:
        """Seconds the current run has taken so far (0 when idle)."""
        if self.busy_since is None:
            return 0.0
        return asyncio.get_running_loop().time() - self.busy_since

    async def wait_runs(self, count: int) -> None:
        """Return once `count` runs have completed in total."""
        while self.runs < count:
            await self._ran.wait()


class UeventListener:
    """Reads kernel uevents from a datagram socket (netlink, or a socketpair in tests) and
    reports the relevant ones; a receive-buffer overflow is reported as lost events."""

    def __init__(
        self,
        sock: socket.socket,
        on_event: Callable[[Uevent], None],
        on_overflow: Callable[[], None],
    ) -> None:
        self.sock = sock
        self.on_event = on_event
        self.on_overflow = on_overflow
        self.received = 0
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Read from the running loop whenever the socket is readable."""
        self.sock.setblocking(False)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._drain)

    def close(self) -> None:
        """Stop reading and close the socket."""
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
            self._loop = None
        self.sock.close()

    def _drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno != errno.ENOBUFS:
                    raise
                log.warning("uevent buffer overflowed: events were lost, rescanning")
                self.on_overflow()
                continue
            self.received += 1
            event = parse_uevent(data)
            if event is not None and is_relevant(event):
                self.on_event(event)


class DirWatch:
    """inotify on /dev/vfio (group nodes come and go) and on the config file's directory
    (a ConfigMap swaps `..data`; an editor rewrites or renames the file)."""

    def __init__(
        self,
        vfio_dir: Path,
        config_file: Path | None,
        on_vfio: Callable[[str, bool], None],
        on_config: Callable[[], None],
    ) -> None:
        """on_vfio(path, gone): gone is True when the entry was deleted or moved away."""
        self.vfio_dir = vfio_dir
        self.config_file = config_file
        self.on_vfio = on_vfio
        self.on_config = on_config
        self._inotify: inotify.Inotify | None = None

    def start(self) -> None:
        """Add the watches and deliver events on the running loop."""
        watcher = inotify.Inotify()
        self._inotify = watcher
        self._watch_vfio(watcher)
        if self.config_file is not None:
            watcher.add_watch(str(self.config_file.parent), _DIR_EVENTS | inotify.IN_ONLYDIR)
        watcher.start(self._on_event)

    def close(self) -> None:
        """Remove every watch."""
        if self._inotify is not None:
            self._inotify.close()
            self._inotify = None

    def _watch_vfio(self, watcher: inotify.Inotify) -> None:
        """Watch /dev/vfio, or /dev until vfio's directory appears (module not loaded yet)."""
        target = self.vfio_dir if self.vfio_dir.is_dir() else self.vfio_dir.parent
        try:
            watcher.add_watch(str(target), _DIR_EVENTS | inotify.IN_ONLYDIR)
        except OSError as err:
            log.warning("cannot watch %s (%s): relying on uevents and the backstop", target, err)

    def _on_event(self, event: inotify.InotifyEvent) -> None:
        directory = Path(event.directory)
        if directory == self.vfio_dir:
            gone = bool(event.mask & (inotify.IN_DELETE | inotify.IN_MOVED_FROM))
            self.on_vfio(f"/dev/vfio/{event.name}", gone)
        elif directory == self.vfio_dir.parent and event.name == self.vfio_dir.name:
            if event.mask & (inotify.IN_CREATE | inotify.IN_MOVED_TO) and self._inotify:
                self._watch_vfio(self._inotify)
                self.on_vfio(str(self.vfio_dir), False)
        elif self.config_file is not None and self._is_config_event(directory, event.name):
            self.on_config()

    def _is_config_event(self, directory: Path, name: str) -> bool:
        assert self.config_file is not None
        return directory == self.config_file.parent and name in (DATA_LINK, self.config_file.name)


def open_kernel_uevents() -> socket.socket | None:
    """The netlink uevent socket, or None (logged) where the kernel or sandbox refuses it."""
    try:
        return open_uevent_socket()
    except OSError as err:
        log.warning(
            "kernel uevents unavailable (%s): following the host through inotify and the "
            "backstop rescan only",
            os.strerror(err.errno) if err.errno else err,
        )
        return None
