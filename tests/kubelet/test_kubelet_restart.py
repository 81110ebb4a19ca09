"""A simulated kubelet restart wipes the socket directory and keeps pod allocations."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

from hostdev.errors import BadInputError
from hostdev.kubelet.constants import CHECKPOINT_NAME
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.fakeplugin import FakeDevicePlugin

RESOURCE = "example.com/gpu"


async def test_restart_wipes_sockets_and_keeps_allocations(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    pod = await sim.create_pod("p", {"c": {RESOURCE: 1}})
    stray = sim.plugin_dir / "stray.txt"
    stray.write_text("x")
    (sim.plugin_dir / "subdir").mkdir()

    await sim.restart()

    assert not (sim.plugin_dir / "fake.sock").exists(), "the plugin's socket is deleted"
    assert not stray.exists()
    assert (sim.plugin_dir / "subdir").is_dir()
    assert (sim.plugin_dir / CHECKPOINT_NAME).is_file()
    assert sim.kubelet_socket.is_socket()
    assert sim.capacity() == {RESOURCE: 0}, "capacity 0 until the plugin registers again"
    assert not sim.is_registered(RESOURCE)
    assert sim.pod("p") is pod
    assert sim.restarts == 1

    await plugin.stop()
    await plugin.serve(sim.plugin_dir / "fake.sock")
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    assert sim.available() == {RESOURCE: 3}, "the pod kept its device across the restart"
    assert sim.registration_count(RESOURCE) == 2


async def test_restart_ends_plugin_streams(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    await sim.restart()
    assert len(plugin.called("ListAndWatch")) == 1
    assert sim.devices(RESOURCE) == {}


async def test_stop_removes_sockets(sim: KubeletSimulator) -> None:
    await sim.stop()
    assert not sim.kubelet_socket.exists()
    assert sim.pod_resources_socket is not None and not sim.pod_resources_socket.exists()


async def test_checkpoint_lists_allocations(
    sim: KubeletSimulator, plugin: FakeDevicePlugin
) -> None:
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    pod = await sim.create_pod("p", {"c": {RESOURCE: 2}})
    data = json.loads((sim.plugin_dir / CHECKPOINT_NAME).read_text())["Data"]
    (entry,) = data["PodDeviceEntries"]
    assert entry["PodUID"] == pod.uid
    assert entry["DeviceIDs"] == sorted(pod.container("c").devices[RESOURCE])
    assert data["RegisteredDevices"] == {RESOURCE: ["dev0", "dev1", "dev2", "dev3"]}


async def test_refuses_a_directory_a_kubelet_serves(sim: KubeletSimulator) -> None:
    second = KubeletSimulator(sim.plugin_dir)
    with pytest.raises(BadInputError, match="a kubelet already listens there"):
        await second.start()
    assert sim.kubelet_socket.is_socket(), "the running kubelet's socket is untouched"


async def test_refuses_a_pod_resources_socket_a_kubelet_serves(sim: KubeletSimulator) -> None:
    assert sim.pod_resources_socket is not None
    second = KubeletSimulator(sim.plugin_dir.parent / "other", sim.pod_resources_socket)
    try:
        with pytest.raises(BadInputError, match="a kubelet already listens there"):
            await second.start()
    finally:
        await second.stop()
    assert sim.pod_resources_socket.is_socket(), "the running kubelet's socket is untouched"


async def test_refuses_a_pod_resources_path_that_is_no_socket(sockdir: Path) -> None:
    kept = sockdir / "notes.txt"
    kept.write_text("not a socket\n")
    simulator = KubeletSimulator(sockdir / "plugins", pod_resources_socket=kept)
    try:
        with pytest.raises(BadInputError, match="not a unix socket"):
            await simulator.start()
    finally:
        await simulator.stop()
    assert kept.read_text() == "not a socket\n"


async def test_replaces_a_stale_pod_resources_socket(sockdir: Path) -> None:
    stale = sockdir / "stale.sock"
    with socket.socket(socket.AF_UNIX) as left_behind:
        left_behind.bind(str(stale))
    simulator = KubeletSimulator(sockdir / "plugins", pod_resources_socket=stale)
    await simulator.start()
    try:
        assert stale.is_socket()
    finally:
        await simulator.stop()
