"""release_free_heap: the C heap's free pages back to the kernel where libc can."""

from __future__ import annotations

import platform

import pytest

from hostdev.daemon import heap


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_glibc_trims() -> None:
    assert heap.release_free_heap()


def test_a_libc_without_malloc_trim_is_left_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(heap, "_malloc_trim", lambda: None)
    assert not heap.release_free_heap()
