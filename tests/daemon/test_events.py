"""Event sources in isolation: the coalescer, the uevent listener, the directory watch."""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from pathlib import Path

import pytest

from hostdev.daemon.events import Coalescer, DirWatch, UeventListener
from hostdev.host.uevent import Uevent, encode_uevent

UNBIND = encode_uevent("unbind", "/devices/pci0000:00/0000:00:05.0", {"SUBSYSTEM": "pci"})


async def test_coalescer_merges_a_burst() -> None:
    seen: list[frozenset[str]] = []

    async def action(reasons: frozenset[str]) -> None:
        seen.append(reasons)

    coalescer = Coalescer("test", action, debounce=0.05)
    coalescer.start()
    try:
        for i in range(20):
            coalescer.poke(f"uevent {i % 3}")
        await coalescer.wait_runs(1)
        assert seen == [frozenset({"uevent 0", "uevent 1", "uevent 2"})]
        coalescer.poke("again")
        await coalescer.wait_runs(2)
        assert seen[1] == frozenset({"again"})
    finally:
        await coalescer.stop()
    assert not coalescer.running


async def test_coalescer_survives_a_failing_action(caplog: pytest.LogCaptureFixture) -> None:
    calls = 0

    async def action(reasons: frozenset[str]) -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError("scan exploded")

    coalescer = Coalescer("rescan", action, debounce=0)
    coalescer.start()
    try:
        coalescer.poke("x")
        await coalescer.wait_runs(1)
        coalescer.poke("y")
        await coalescer.wait_runs(2)
        assert coalescer.running and calls == 2
        assert "rescan failed (reasons: x)" in caplog.text
    finally:
        await coalescer.stop()


async def test_coalescer_backstop_runs_when_quiet() -> None:
    reasons: list[frozenset[str]] = []

    async def action(r: frozenset[str]) -> None:
        reasons.append(r)

    coalescer = Coalescer("rescan", action, debounce=0, backstop=0.01)
    coalescer.start()
    try:
        await coalescer.wait_runs(2)
        assert reasons[:2] == [frozenset({"backstop"})] * 2
    finally:
        await coalescer.stop()


async def test_coalescer_reports_how_long_a_run_takes() -> None:
    release = asyncio.Event()
    started = asyncio.Event()

    async def action(reasons: frozenset[str]) -> None:
        started.set()
        await release.wait()

    coalescer = Coalescer("rescan", action, debounce=0)
    assert coalescer.stuck_for() == 0.0
    coalescer.start()
    try:
        coalescer.poke("x")
        await started.wait()
        assert coalescer.busy_since is not None and coalescer.stuck_for() >= 0.0
        release.set()
        await coalescer.wait_runs(1)
        assert coalescer.busy_since is None
    finally:
        await coalescer.stop()


async def test_coalescer_stops_when_a_poke_lands_with_the_stop() -> None:
    """The stop's cancellation and a poke arrive in the same loop turn: the loop still ends.
    Python 3.11's asyncio.wait_for returned the poke instead and the loop waited for its
    600 s backstop, stop() with it (found by `make bench` hanging in a daemon's shutdown)."""

    async def action(reasons: frozenset[str]) -> None:
        return None

    coalescer = Coalescer("rescan", action, debounce=0, backstop=600)
    coalescer.start()
    await asyncio.sleep(0)  # one loop turn: the coalescer now waits for a poke
    coalescer.poke("x")
    stopping = asyncio.create_task(coalescer.stop())
    done, _ = await asyncio.wait({stopping}, timeout=30)  # bounds the hang this is about
    assert done == {stopping} and not coalescer.running


async def test_listener_filters_and_reads_every_datagram() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    got: list[Uevent] = []
    done = asyncio.Event()

    def on_event(event: Uevent) -> None:
        got.append(event)
        if len(got) == 2:
            done.set()

    listener = UeventListener(theirs, on_event, lambda: None)
    listener.start()
    try:
        for message in (UNBIND, b"garbage", b"change@/devices/virtual/net/lo\0SUBSYSTEM=net\0",
                        UNBIND):  # fmt: skip
            ours.send(message)
        await done.wait()
        assert [e.action for e in got] == ["unbind", "unbind"]
        assert listener.received == 4
    finally:
        listener.close()
        ours.close()


class _OverflowingSocket:
    """A socket whose first recv reports ENOBUFS (the kernel dropped uevents)."""

    def __init__(self, real: socket.socket) -> None:
        self.real = real
        self.overflowed = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.real, name)

    def recv(self, size: int) -> bytes:
        if not self.overflowed:
            self.overflowed = True
            raise OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))
        return self.real.recv(size)


async def test_listener_reports_overflow() -> None:
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    overflow = asyncio.Event()
    events: list[Uevent] = []
    listener = UeventListener(_OverflowingSocket(theirs), events.append, overflow.set)  # type: ignore[arg-type]
    listener.start()
    try:
        ours.send(UNBIND)
        await overflow.wait()
        assert listener.received == 1  # the queued message is still read after the overflow
    finally:
        listener.close()
        ours.close()


async def test_dirwatch_vfio_and_configmap(tmp_path: Path) -> None:
    vfio = tmp_path / "dev" / "vfio"
    vfio.mkdir(parents=True)
    cfgdir = tmp_path / "cfg"
    cfgdir.mkdir()
    vfio_events: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
    config_events: asyncio.Queue[None] = asyncio.Queue()
    watch = DirWatch(
        vfio,
        cfgdir / "config.yaml",
        lambda path, gone: vfio_events.put_nowait((path, gone)),
        lambda: config_events.put_nowait(None),
    )
    watch.start()
    try:
        (vfio / "12").write_text("")
        assert await vfio_events.get() == ("/dev/vfio/12", False)  # created, then closed
        assert await vfio_events.get() == ("/dev/vfio/12", False)
        (vfio / "12").unlink()
        assert await vfio_events.get() == ("/dev/vfio/12", True)
        (cfgdir / "unrelated").write_text("x")
        (cfgdir / "..2026_01").mkdir()
        os.symlink("..2026_01", cfgdir / "..data_tmp")
        os.rename(cfgdir / "..data_tmp", cfgdir / "..data")
        await config_events.get()
        assert config_events.empty()
    finally:
        watch.close()


async def test_dirwatch_waits_for_vfio_to_appear(tmp_path: Path) -> None:
    dev = tmp_path / "dev"
    dev.mkdir()
    seen: asyncio.Queue[str] = asyncio.Queue()
    watch = DirWatch(dev / "vfio", None, lambda path, _: seen.put_nowait(path), lambda: None)
    watch.start()
    try:
        (dev / "other").write_text("")
        (dev / "vfio").mkdir()  # modprobe vfio
        assert await seen.get() == str(dev / "vfio")
        (dev / "vfio" / "3").write_text("")
        assert await seen.get() == "/dev/vfio/3"
    finally:
        watch.close()


async def test_dirwatch_without_any_dev_dir(tmp_path: Path, caplog: pytest.LogCaptureFixture
                                            ) -> None:  # fmt: skip
    watch = DirWatch(tmp_path / "missing" / "vfio", None, lambda p, g: None, lambda: None)
    watch.start()
    watch.close()
    assert "relying on uevents and the backstop" in caplog.text
