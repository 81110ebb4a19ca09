"""The daemon's C heap: free pages given back, and the cap on malloc arenas, where libc can."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from hostdev.daemon import heap

glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's calls")

# Five threads alive at once each allocate from malloc, then glibc's malloc_stats() writes
# one "Arena N:" block per arena to stderr.
ARENAS_SCRIPT = """
import ctypes, sys, threading
from hostdev.daemon import heap
cap = int(sys.argv[1])
if cap and not heap.cap_malloc_arenas(cap):
    sys.exit("cap refused")
all_alive = threading.Barrier(6)
def allocate():
    held = [bytearray(1000) for _ in range(100)]
    all_alive.wait()
threads = [threading.Thread(target=allocate) for _ in range(5)]
for thread in threads:
    thread.start()
all_alive.wait()
for thread in threads:
    thread.join()
ctypes.CDLL(None).malloc_stats()
"""


@glibc_only
def test_glibc_trims() -> None:
    assert heap.release_free_heap()


@glibc_only
@pytest.mark.parametrize(
    ("cap", "arenas"), [(0, 6), (1, 1), (2, 2)], ids=["uncapped", "one", "two"]
)
def test_threads_share_the_capped_arenas(cap: int, arenas: int) -> None:
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    run = subprocess.run(
        [sys.executable, "-c", ARENAS_SCRIPT, str(cap)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    assert run.stderr.count("Arena ") == arenas


def test_a_libc_without_the_calls_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_libc_function", lambda name: None)
    assert not heap.release_free_heap()
    assert not heap.cap_malloc_arenas(2)
