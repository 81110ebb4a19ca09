"""Registration: after our socket answers, retried with backoff when refused, and again after
a kubelet restart (seen through inotify)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import grpc
import pytest
from conftest import NodeFactory
from fakekubelet import FakeKubelet

from hostdev.config import load_config
from hostdev.kubelet.constants import OWN_CONNECTION
from hostdev.kubelet.plugin import socket_name
from hostdev.kubelet.registration import Backoff, probe
from hostdev.testing.fakehost import FakeHost

T4 = "example.com/t4"


class EventOnMessage(logging.Handler):
    """Sets an asyncio event when a log message containing a text is emitted."""

    def __init__(self, text: str, event: asyncio.Event) -> None:
        super().__init__()
        self.text = text
        self.event = event

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.event.set()


@pytest.fixture
def one_resource(short_dir: Path) -> Path:
    path = short_dir / "c.yaml"
    path.write_text(f"resources:\n- {{name: {T4}, selectors: [{{device: '10de:1eb8'}}]}}\n")
    return path


@pytest.mark.parametrize("attempt,expected", [(1, 0.05), (2, 0.1), (5, 0.8), (20, 30.0)])
def test_backoff_is_exponential_and_capped(attempt: int, expected: float) -> None:
    assert Backoff().delay(attempt) == pytest.approx(expected)


async def test_rejected_registration_is_retried_and_logged_once(
    plugin_dir: Path,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    one_resource: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    kubelet = FakeKubelet(plugin_dir, reject_first=3)
    await kubelet.start()
    try:
        node = make_node(gpu_host, load_config(one_resource))
        await node.start()
        registration = await kubelet.accepted.get()
        await node.wait_registered()
    finally:
        await kubelet.stop()
    assert registration.request.resource_name == T4
    assert kubelet.rejections == 3
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "resource name is taken" in warnings[0].getMessage()
    assert "registered with the kubelet" in caplog.text
    assert node.registrars[T4].registrations == 1


async def test_waits_for_the_kubelet_then_registers(
    plugin_dir: Path,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    one_resource: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    waiting = asyncio.Event()
    handler = EventOnMessage("waiting for the kubelet socket", waiting)
    logging.getLogger("hostdev.kubelet.registration").addHandler(handler)
    node = make_node(gpu_host, load_config(one_resource))
    await node.start()
    assert (plugin_dir / socket_name(T4)).exists()
    await waiting.wait()
    logging.getLogger("hostdev.kubelet.registration").removeHandler(handler)
    kubelet = FakeKubelet(plugin_dir)
    await kubelet.start()  # creating kubelet.sock wakes the registrar (inotify)
    try:
        registration = await kubelet.accepted.get()
    finally:
        await kubelet.stop()
    assert registration.request.endpoint == socket_name(T4)
    assert "waiting for the kubelet socket" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_reregisters_after_a_kubelet_restart(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    plugin_dir: Path,
    one_resource: Path,
) -> None:
    node = make_node(gpu_host, load_config(one_resource))
    await node.start()
    first = await kubelet.accepted.get()
    await first.lists.get()
    for _ in range(2):
        await kubelet.restart()  # wipes our socket, then listens again
        again = await kubelet.accepted.get()
        assert again.request.resource_name == T4
        devices = (await again.lists.get()).devices  # served on a fresh socket
        assert [d.ID for d in devices] == ["0000:65:00.0", "0000:b3:00.0"]
    assert node.registrars[T4].registrations == 3
    assert (plugin_dir / socket_name(T4)).exists()


async def test_own_socket_lost_unseen_is_served_again_before_registering(
    plugin_dir: Path,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    one_resource: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A deletion the watch does not report (the kubelet wiped the directory while our
    server was restarting) must not leave the registrar dialling a missing socket forever."""
    caplog.set_level(logging.INFO)
    waiting = asyncio.Event()
    handler = EventOnMessage("waiting for the kubelet socket", waiting)
    logging.getLogger("hostdev.kubelet.registration").addHandler(handler)
    try:
        node = make_node(gpu_host, load_config(one_resource))
        await node.start()
        async with asyncio.timeout(10):
            await waiting.wait()
    finally:
        logging.getLogger("hostdev.kubelet.registration").removeHandler(handler)
    node.registrars[T4].socket_deleted = lambda: None  # type: ignore[method-assign]
    (plugin_dir / socket_name(T4)).unlink()
    kubelet = FakeKubelet(plugin_dir)
    await kubelet.start()
    try:
        async with asyncio.timeout(10):
            registration = await kubelet.accepted.get()
    finally:
        await kubelet.stop()
    assert registration.request.endpoint == socket_name(T4)
    assert (plugin_dir / socket_name(T4)).exists()


async def test_own_socket_deleted_alone_is_served_again(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    plugin_dir: Path,
    one_resource: Path,
) -> None:
    node = make_node(gpu_host, load_config(one_resource))
    await node.start()
    await kubelet.accepted.get()
    (plugin_dir / socket_name(T4)).unlink()
    again = await kubelet.accepted.get()
    assert (await again.lists.get()).devices
    assert (plugin_dir / socket_name(T4)).exists()


async def test_stop_removes_sockets_and_ignores_its_own_unlinks(
    kubelet: FakeKubelet,
    make_node: NodeFactory,
    gpu_host: FakeHost,
    plugin_dir: Path,
    one_resource: Path,
) -> None:
    (plugin_dir / socket_name(T4)).write_text("stale")  # from an earlier run
    node = make_node(gpu_host, load_config(one_resource))
    await node.start()
    await kubelet.accepted.get()
    await node.stop()
    assert sorted(p.name for p in plugin_dir.iterdir()) == ["kubelet.sock"]
    assert kubelet.accepted.empty()


async def test_stop_during_a_registration_attempt_leaves_no_task_behind(
    plugin_dir: Path, make_node: NodeFactory, gpu_host: FakeHost, one_resource: Path
) -> None:
    hold = asyncio.Event()
    kubelet = FakeKubelet(plugin_dir, hold=hold)
    await kubelet.start()
    try:
        node = make_node(gpu_host, load_config(one_resource))
        await node.start()
        await kubelet.entered.wait()  # our Register is in flight, held by the kubelet
        await node.stop()
        current = asyncio.current_task()
        attempts = [
            t for t in asyncio.all_tasks() if t is not current and "_attempt" in repr(t.get_coro())
        ]
        assert attempts == []
    finally:
        hold.set()
        await kubelet.stop()


async def _failed_to_connect(channel: grpc.aio.Channel) -> None:
    state = channel.get_state(try_to_connect=True)
    while state != grpc.ChannelConnectivity.TRANSIENT_FAILURE:
        await channel.wait_for_state_change(state)
        state = channel.get_state()


async def test_a_dial_is_not_held_back_by_another_channels_refused_connect(short_dir: Path) -> None:
    """gRPC core shares a connection per target and arguments between channels, and one
    refused dial puts it in reconnect backoff (about 1 s): two registrars dialling the kubelet
    as it restarts would fail again and again. Each dial gets a connection of its own."""
    path = short_dir / "kubelet.sock"
    refusing = socket.socket(socket.AF_UNIX)  # bound, not listening: connect is refused
    refusing.bind(str(path))
    other = grpc.aio.insecure_channel(f"unix://{path.absolute()}", options=OWN_CONNECTION)
    server = grpc.aio.server()  # no services: any call that connects is UNIMPLEMENTED
    try:
        async with asyncio.timeout(10):
            await _failed_to_connect(other)
        refusing.close()
        path.unlink()
        server.add_insecure_port(f"unix://{path.absolute()}")
        await server.start()
        with pytest.raises(grpc.aio.AioRpcError) as answer:
            await probe(path)
        assert answer.value.code() == grpc.StatusCode.UNIMPLEMENTED  # it connected
    finally:
        refusing.close()
        await other.close()
        await server.stop(None)
