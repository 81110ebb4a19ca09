"""`bind: onStart` and `reset: true` in hostdev serve: devices bound at start and when they
appear (never in Allocate), refused devices left alone, PreStartContainer resets through sysfs."""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import NodeFactory
from fakekubelet import FakeKubelet, Registration

from hostdev import metrics
from hostdev.binding import BindOptions
from hostdev.binding.guards import no_ipv4_probe
from hostdev.binding.onstart import Binder, devices_to_bind
from hostdev.config import load_config
from hostdev.config.model import Config
from hostdev.host.model import PciAddress
from hostdev.host.scan import scan_host
from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.api import deviceplugin_pb2_grpc as pb_grpc
from hostdev.kubelet.plugin import socket_name
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

T4 = "nvidia.com/T4"
GPU, AUDIO, LATE = "0000:0b:00.0", "0000:0b:00.1", "0000:0c:00.0"


@pytest.fixture
def host(gpu_host: FakeHost) -> FakeHost:
    """The GPU node plus a T4 on nouveau whose HDMI audio (snd_hda_intel) shares its group."""
    gpu_host.add_driver("nouveau")
    gpu_host.add_driver("snd_hda_intel")
    gpu_host.add_device(GPU, "10de", "1eb8", "030200", driver="nouveau", iommu_group=51)
    gpu_host.add_device(AUDIO, "10de", "10f8", "040300", driver="snd_hda_intel", iommu_group=51)
    return gpu_host


def config(tmp_path: Path, *, bind: str = "onStart", reset: bool = False) -> Config:
    path = tmp_path / "hostdev.yaml"
    path.write_text(
        f"resources:\n- name: {T4}\n  selectors:\n  - device: '10de:1eb8'\n"
        f"  bind: {bind}\n  reset: {str(reset).lower()}\n"
    )
    return load_config(path)


@pytest.fixture
def kernel(host: FakeHost) -> FakeKernelWriter:
    return FakeKernelWriter(host)


@pytest.fixture
def binder(host: FakeHost, kernel: FakeKernelWriter, tmp_path: Path) -> Binder:
    options = BindOptions(state_file=tmp_path / "state.json", ipv4_probe=no_ipv4_probe)
    return Binder(host.fs, kernel, options)


@asynccontextmanager
async def plugin_stub(plugin_dir: Path) -> AsyncIterator[Any]:
    async with grpc.aio.insecure_channel(f"unix://{plugin_dir / socket_name(T4)}") as channel:
        yield pb_grpc.DevicePluginStub(channel)


async def registration(kubelet: FakeKubelet) -> Registration:
    return await kubelet.accepted.get()


def ids(listing: Any) -> Sequence[str]:
    return [d.ID for d in listing.devices]


async def test_on_start_binds_selected_devices_and_their_group(
    kubelet, make_node: NodeFactory, host, binder, tmp_path
):
    node = make_node(host, config(tmp_path), binder=binder)
    await node.start()
    reg = await registration(kubelet)
    assert ids(await reg.lists.get()) == [GPU, "0000:65:00.0", "0000:b3:00.0"]
    assert host.driver_of(GPU) == host.driver_of(AUDIO) == "vfio-pci"
    assert scan_host(host.fs).group_viability(51).viable


async def test_on_start_binds_devices_that_appear_later(
    kubelet, make_node: NodeFactory, host, binder, kernel, tmp_path
):
    node = make_node(host, config(tmp_path), binder=binder)
    await node.start()
    reg = await registration(kubelet)
    await reg.lists.get()
    host.add_device(LATE, "10de", "1eb8", "030200", driver="nouveau", iommu_group=52)
    await node.rescan()
    assert host.driver_of(LATE) == "vfio-pci"
    assert LATE in ids(await reg.lists.get())


async def test_bind_none_leaves_host_drivers_alone(
    kubelet, make_node: NodeFactory, host, binder, kernel, tmp_path
):
    node = make_node(host, config(tmp_path, bind="none"), binder=binder)
    await node.start()
    reg = await registration(kubelet)
    assert ids(await reg.lists.get()) == ["0000:65:00.0", "0000:b3:00.0"]
    assert host.driver_of(GPU) == "nouveau"
    assert kernel.writes == []


async def test_refused_device_is_left_alone_and_not_retried(
    kubelet, make_node: NodeFactory, host, binder, kernel, tmp_path, caplog
):
    host.set_boot_vga(GPU).add_framebuffer("fb0")
    node = make_node(host, config(tmp_path), binder=binder)
    with caplog.at_level(logging.WARNING):
        await node.start()
    reg = await registration(kubelet)
    assert ids(await reg.lists.get()) == ["0000:65:00.0", "0000:b3:00.0"]
    assert host.driver_of(GPU) == "nouveau"
    assert "boot VGA" in caplog.text
    await node.rescan()
    assert kernel.writes == []


async def test_allocate_never_writes_to_sysfs(
    kubelet, make_node: NodeFactory, host, binder, kernel, tmp_path, plugin_dir
):
    node = make_node(host, config(tmp_path), binder=binder)
    await node.start()
    await (await registration(kubelet)).lists.get()
    writes = list(kernel.writes)
    async with plugin_stub(plugin_dir) as stub:
        request = pb.AllocateRequest(
            container_requests=[pb.ContainerAllocateRequest(devices_ids=[GPU])]
        )
        await stub.Allocate(request)
    assert kernel.writes == writes


async def test_reset_true_resets_each_device_before_start(
    kubelet, make_node: NodeFactory, host, binder, kernel, tmp_path, plugin_dir
):
    node = make_node(host, config(tmp_path, reset=True), binder=binder)
    await node.start()
    reg = await registration(kubelet)
    assert reg.options.pre_start_required
    kernel.writes.clear()
    async with plugin_stub(plugin_dir) as stub:
        await stub.PreStartContainer(pb.PreStartContainerRequest(devices_ids=[GPU, "0000:65:00.0"]))
    assert kernel.writes == [
        (str(host.root / f"sys/bus/pci/devices/{GPU}/reset"), "1"),
        (str(host.root / "sys/bus/pci/devices/0000:65:00.0/reset"), "1"),
    ]


async def test_failed_reset_fails_pre_start(
    kubelet, make_node: NodeFactory, host, binder, kernel, tmp_path, plugin_dir
):
    kernel.fail_on["0000:65:00.0/reset"] = errno.ENOTTY
    node = make_node(host, config(tmp_path, reset=True), binder=binder)
    await node.start()
    await registration(kubelet)
    async with plugin_stub(plugin_dir) as stub:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.PreStartContainer(pb.PreStartContainerRequest(devices_ids=["0000:65:00.0"]))
    assert failure.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "reset of 0000:65:00.0 failed" in (failure.value.details() or "")


async def test_without_reset_pre_start_does_nothing(
    kubelet, make_node: NodeFactory, host, binder, kernel, tmp_path, plugin_dir
):
    node = make_node(host, config(tmp_path), binder=binder)
    await node.start()
    reg = await registration(kubelet)
    assert not reg.options.pre_start_required
    kernel.writes.clear()
    async with plugin_stub(plugin_dir) as stub:
        await stub.PreStartContainer(pb.PreStartContainerRequest(devices_ids=[GPU]))
    assert kernel.writes == []


async def test_reset_turned_on_by_a_reload_resets_at_once(
    kubelet, make_node: NodeFactory, host, binder, kernel, tmp_path, plugin_dir
):
    node = make_node(host, config(tmp_path, bind="none"), binder=binder)
    await node.start()
    await registration(kubelet)
    await node.reload(config(tmp_path, bind="none", reset=True))
    kernel.writes.clear()
    async with plugin_stub(plugin_dir) as stub:
        await stub.PreStartContainer(pb.PreStartContainerRequest(devices_ids=["0000:65:00.0"]))
    assert kernel.writes == [(str(host.root / "sys/bus/pci/devices/0000:65:00.0/reset"), "1")]


def test_devices_to_bind_follows_first_resource_and_skips_bound(host, tmp_path):
    snapshot = scan_host(host.fs)
    assert [str(a) for a in devices_to_bind(snapshot, config(tmp_path))] == [GPU]
    assert devices_to_bind(snapshot, config(tmp_path, bind="none")) == []
    assert devices_to_bind(snapshot, Config()) == []


def test_one_refused_device_does_not_hold_back_the_others(host, binder, kernel, tmp_path):
    host.set_boot_vga(GPU).add_framebuffer("fb0")
    host.add_device(LATE, "10de", "1eb8", "030200", driver="nouveau", iommu_group=52)
    before = metrics.BINDING_FAILURES.value(operation="bind")
    results = binder.bind_pending(scan_host(host.fs), config(tmp_path))
    assert [[d.action for d in r.devices] for r in results] == [["refused", "skipped"], ["bound"]]
    # the refused GPU, counted once
    assert metrics.BINDING_FAILURES.value(operation="bind") == before + 1
    assert host.driver_of(GPU) == "nouveau"
    assert host.driver_of(LATE) == "vfio-pci"
    assert binder.given_up == {PciAddress.parse(GPU)}


def test_pending_devices_are_bound_in_one_run(host, binder, kernel, tmp_path):
    host.add_device(LATE, "10de", "1eb8", "030200", driver="nouveau", iommu_group=52)
    results = binder.bind_pending(scan_host(host.fs), config(tmp_path))
    assert [[d.address for d in r.devices] for r in results] == [[GPU, AUDIO, LATE]]
    assert binder.pending(scan_host(host.fs), config(tmp_path)) == []
