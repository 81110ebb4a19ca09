"""The daemon's C heap: free pages given back after a scan, and few malloc arenas.

A scan's short-lived objects come and go in a burst. glibc keeps what they freed in its
arenas (the scan runs in a worker thread, which has an arena of its own), so the daemon's
resident size would keep the burst's high-water mark until the next burst reused it.
malloc_trim(0) returns every whole free page of every arena: 1.5–2.6 MiB of a daemon serving
4,096 devices, in a fraction of a millisecond (docs/benchmarks.md). C libraries without the
call (musl) are left alone.

glibc also gives each new thread an arena of its own, up to eight per CPU. gRPC's threads come
and go around each kubelet restart, and a burst in a fresh arena left up to 2 MiB of
high-water mark: with every thread sharing two arenas, the peak of a daemon serving 4,096
devices was 44.3–45.2 MiB over eleven runs, against 44.5–46.5 MiB over ten
(docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable

_M_ARENA_MAX = -8  # glibc's mallopt parameter for the most arenas


@functools.cache
def _libc_function(name: str) -> Callable[..., int] | None:
    try:
        function: Callable[..., int] = getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
    return function


def release_free_heap() -> bool:
    """Return the C heap's whole free pages to the kernel; False where libc cannot."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim(0)
    return True


def cap_malloc_arenas(count: int) -> bool:
    """Let at most count malloc arenas serve all threads; False where libc cannot."""
    mallopt = _libc_function("mallopt")
    return mallopt is not None and mallopt(_M_ARENA_MAX, count) == 1
