"""A small inotify binding (ctypes over libc) that feeds events to the asyncio loop.

No polling: the inotify fd is non-blocking and read from `loop.add_reader` when the kernel
says it is readable. Used to notice kubelet restarts (kubelet.sock created, our socket
deleted) and, later, /dev/vfio and config-file changes.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_MOVED_FROM = 0x00000040
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_DELETE_SELF = 0x00000400
IN_MOVE_SELF = 0x00000800
IN_IGNORED = 0x00008000
IN_ONLYDIR = 0x01000000
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
_HEADER = struct.Struct("iIII")  # wd, mask, cookie, len
_READ_SIZE = 65536


@dataclass(frozen=True, slots=True)
class InotifyEvent:
    """One inotify event: the watched directory, the file name in it (may be empty), the mask."""

    directory: str
    name: str
    mask: int

    @property
    def path(self) -> str:
        """The full path the event is about."""
        return os.path.join(self.directory, self.name) if self.name else self.directory


def _libc() -> ctypes.CDLL:
    # The C library the interpreter is linked against: no ctypes.util.find_library, which
    # runs `ldconfig -p` in a subprocess and imports tempfile, shutil and random (1 MiB).
    lib = ctypes.CDLL(None, use_errno=True)
    lib.inotify_init1.argtypes = [ctypes.c_int]
    lib.inotify_add_watch.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_uint32]
    return lib


class Inotify:
    """An inotify instance; `start(callback)` delivers events on the running loop."""

    def __init__(self) -> None:
        self._lib = _libc()
        fd = self._lib.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if fd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_init1: {os.strerror(code)}")
        self.fd: int = fd
        self._dirs: dict[int, str] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_watch(self, path: str, mask: int) -> int:
        """Watch a path for the events in mask; returns the watch descriptor."""
        wd = self._lib.inotify_add_watch(self.fd, os.fsencode(path), mask)
        if wd < 0:
            code = ctypes.get_errno()
            raise OSError(code, f"inotify_add_watch {path}: {os.strerror(code)}", path)
        self._dirs[wd] = path
        return int(wd)

    def read_events(self) -> list[InotifyEvent]:
        """Every event queued now (non-blocking; empty when none)."""
        try:
            data = os.read(self.fd, _READ_SIZE)
        except BlockingIOError:
            return []
        except OSError as err:
            if err.errno == errno.EINTR:
                return []
            raise
        return list(self._parse(data))

    def _parse(self, data: bytes) -> list[InotifyEvent]:
        events: list[InotifyEvent] = []
        offset = 0
        while offset + _HEADER.size <= len(data):
            wd, mask, _cookie, length = _HEADER.unpack_from(data, offset)
            offset += _HEADER.size
            raw = data[offset : offset + length].rstrip(b"\0")
            offset += length
            directory = self._dirs.get(wd, "")
            if mask & IN_IGNORED:
                self._dirs.pop(wd, None)
            events.append(InotifyEvent(directory, os.fsdecode(raw), mask))
        return events

    def start(self, callback: Callable[[InotifyEvent], None]) -> None:
        """Deliver each event to callback from the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.fd, self._drain, callback)

    def _drain(self, callback: Callable[[InotifyEvent], None]) -> None:
        for event in self.read_events():
            callback(event)

    def close(self) -> None:
        """Stop delivering events and close the fd."""
        if self._loop is not None:
            self._loop.remove_reader(self.fd)
            self._loop = None
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1
