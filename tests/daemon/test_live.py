"""The live node end to end: a fake host, the kubelet simulator, events, health, reloads."""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from hostdev import metrics
from hostdev.binding.execute import BindOptions
from hostdev.binding.guards import no_ipv4_probe
from hostdev.binding.onstart import Binder
from hostdev.config import DEFAULT_CONFIG, load_config
from hostdev.config.model import Config
from hostdev.daemon import live as live_module
from hostdev.daemon.live import LiveNode, LiveOptions
from hostdev.host.fs import HostFS
from hostdev.host.model import Host
from hostdev.host.scan import scan_host
from hostdev.kubelet.accounting import GroupAccounting
from hostdev.kubelet.constants import HEALTHY, UNHEALTHY
from hostdev.kubelet.plugin import socket_name
from hostdev.kubelet.registration import Backoff
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.examples import build_example
from hostdev.testing.fakeevents import UeventInjector, uevent_for
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

T4 = "devices.kubevirt.io/10de_1eb8"
GPU_A, GPU_B = "0000:65:00.0", "0000:b3:00.0"
GEFORCE, GEFORCE_FN = "devices.kubevirt.io/10de_2184", "0000:17:00.0"


@dataclass
class Rig:
    """Everything a live test drives."""

    host: FakeHost
    kernel: FakeKernelWriter
    sim: KubeletSimulator
    node: LiveNode
    uevents: UeventInjector

    def health(self, resource: str) -> dict[str, str]:
        return {i: d.health for i, d in self.sim.devices(resource).items()}


@asynccontextmanager
async def rig(
    tmp_path: Path,
    sockdir: Path,
    config: Config = DEFAULT_CONFIG,
    config_path: Path | None = None,
    debounce: float = 0.005,
    scanner: Callable[[HostFS, Host | None], Host] = scan_host,
    **node_kwargs: object,
) -> AsyncIterator[Rig]:
    host = build_example("gpu-node", tmp_path / "host")
    for address in (GPU_A, GPU_B):
        host.set_aer_fatal(address, {})  # AER-capable devices have the file from boot
    injector = UeventInjector()
    sim = KubeletSimulator(sockdir / "plugins", dial_timeout=1)
    await sim.start()
    live = LiveOptions(
        rescan_interval=None,
        kernel_uevents=False,
        uevent_socket=injector.daemon_end,
        config_path=config_path,
        metrics_address="127.0.0.1:0",
        debounce=debounce,
    )
    node = LiveNode(
        host.fs, config, sim.plugin_dir, sim.plugin_dir / "kubelet.sock",
        backoff=Backoff(0.01, 2, 0.1), live=live, scanner=scanner, **node_kwargs,
    )  # fmt: skip
    await node.start()
    try:
        await node.wait_registered()
        yield Rig(host, FakeKernelWriter(host), sim, node, injector)
    finally:
        await node.stop()
        await sim.stop()
        injector.close()


async def test_rescan_of_an_unchanged_host_rebuilds_nothing(tmp_path: Path, sockdir: Path) -> None:
    """The scan hands back the served snapshot itself, so the allocation inventory stays."""
    accounting = GroupAccounting()
    async with rig(tmp_path, sockdir, policy=accounting) as r:
        await r.sim.wait_devices(T4, 2)
        host, inventory = r.node.table.host, accounting.ledger.inventory
        await r.node.rescan()
        assert r.node.table.host is host and accounting.ledger.inventory is inventory
        r.host.unbind(GPU_A)
        await r.node.rescan()
        assert r.node.table.host is not host
        assert accounting.ledger.inventory is not inventory


async def test_unbind_uevent_marks_unhealthy(tmp_path: Path, sockdir: Path) -> None:
    async with rig(tmp_path, sockdir) as r:
        await r.sim.wait_devices(T4, 2)
        before = metrics.HEALTH_TRANSITIONS.value(resource=T4, to="unhealthy")
        message = uevent_for(r.host, "unbind", GPU_A)
        runs = r.node.rescans.runs
        r.kernel.write(str(r.host.device_dir(GPU_A) / "driver" / "unbind"), GPU_A)
        r.uevents.send(message)
        await r.sim.wait_devices(T4, 1)
        await r.node.rescans.wait_runs(runs + 1)
        assert r.health(T4) == {GPU_A: UNHEALTHY, GPU_B: HEALTHY}
        assert r.sim.capacity()[T4] == 2  # still listed: Unhealthy, not vanished
        assert r.node.health.of(GPU_A).reason == "unbound (no driver)"
        after = metrics.HEALTH_TRANSITIONS.value(resource=T4, to="unhealthy")
        assert after == before + 1
        # Bound back to vfio-pci: healthy again.
        r.kernel.write(str(r.host.device_dir(GPU_A) / "driver_override"), "vfio-pci")
        r.kernel.write(str(r.host.root / "sys/bus/pci/drivers_probe"), GPU_A)
        r.uevents.send(uevent_for(r.host, "bind", GPU_A, "vfio-pci"))
        await r.sim.wait_devices(T4, 2)


async def test_removal_seen_through_inotify_alone(tmp_path: Path, sockdir: Path) -> None:
    async with rig(tmp_path, sockdir) as r:
        await r.sim.wait_devices(T4, 2)
        runs = r.node.rescans.runs
        r.kernel.write(str(r.host.device_dir(GPU_B) / "remove"), "1")  # /dev/vfio/13 goes too
        await r.sim.wait_devices(T4, 1)
        await r.node.rescans.wait_runs(runs + 1)
        assert r.health(T4)[GPU_B] == UNHEALTHY
        assert r.node.health.of(GPU_B).reason == "removed from the bus"
        assert r.uevents.sent == 0


async def test_new_device_appears_and_capacity_follows(tmp_path: Path, sockdir: Path) -> None:
    async with rig(tmp_path, sockdir) as r:
        await r.sim.wait_devices(T4, 2)
        r.host.add_bridge("0000:c0:00.0", iommu_group=90)
        r.host.add_device(
            "0000:c1:00.0", "10de", "1eb8", "030200", driver="vfio-pci", iommu_group=91,
            parent="0000:c0:00.0",
        )  # fmt: skip
        r.uevents.send(uevent_for(r.host, "add", "0000:c1:00.0", "vfio-pci"))
        await r.sim.wait_devices(T4, 3)
        assert r.sim.capacity()[T4] == 3


async def test_aer_rise_after_change_event(tmp_path: Path, sockdir: Path) -> None:
    async with rig(tmp_path, sockdir) as r:
        await r.sim.wait_devices(T4, 2)
        r.host.set_aer_fatal(GPU_A, {"Surprise Down Error": 1})
        r.uevents.send(uevent_for(r.host, "change", GPU_A))
        await r.sim.wait_devices(T4, 1)
        assert r.node.health.of(GPU_A).reason == "AER fatal errors rose from 0 to 1"


@pytest.mark.parametrize("seen_by", ["uevents", "inotify"], ids=["uevents", "inotify-alone"])
async def test_aer_rise_forgiven_by_a_rebind_within_one_rescan(
    tmp_path: Path, sockdir: Path, seen_by: str
) -> None:
    """Unbound and bound back before a rescan runs, the device still left VFIO and came back:
    its fatal count then is the new baseline (the kernel keeps counting across drivers)."""
    async with rig(tmp_path, sockdir) as r:
        r.host.set_aer_fatal(GPU_A, {"Surprise Down Error": 1})
        r.uevents.send(uevent_for(r.host, "change", GPU_A))
        await r.sim.wait_devices(T4, 1)
        runs = r.node.rescans.runs
        (r.host.root / "dev/vfio/11").write_text("")  # a VM closing its group: no leave
        await r.node.rescans.wait_runs(runs + 1)
        assert not r.node.health.of(GPU_A).healthy
        runs = r.node.rescans.runs
        r.kernel.write(str(r.host.device_dir(GPU_A) / "driver" / "unbind"), GPU_A)
        r.kernel.write(str(r.host.device_dir(GPU_A) / "driver_override"), "vfio-pci")
        r.kernel.write(str(r.host.root / "sys/bus/pci/drivers_probe"), GPU_A)
        if seen_by == "uevents":
            r.uevents.send(uevent_for(r.host, "unbind", GPU_A))
            r.uevents.send(uevent_for(r.host, "bind", GPU_A, "vfio-pci"))
        await r.sim.wait_devices(T4, 2)
        assert r.node.rescans.runs == runs + 1  # one rescan saw both the unbind and the bind
        assert r.node.health.of(GPU_A).healthy


async def test_burst_of_events_makes_few_rescans(tmp_path: Path, sockdir: Path) -> None:
    async with rig(tmp_path, sockdir) as r:
        runs = r.node.rescans.runs
        for _ in range(50):
            r.uevents.send(uevent_for(r.host, "change", GPU_A))
        r.uevents.send(uevent_for(r.host, "unbind", GPU_B))
        r.host.unbind(GPU_B)
        await r.sim.wait_devices(T4, 1)
        await r.node.rescans.wait_runs(runs + 1)
        assert r.node.rescans.runs - runs < 10  # coalesced, not 51 rescans


async def test_irrelevant_and_garbage_uevents_do_not_rescan(tmp_path: Path, sockdir: Path) -> None:
    async with rig(tmp_path, sockdir) as r:
        runs = r.node.rescans.runs
        r.uevents.send(b"change@/devices/virtual/net/lo\0ACTION=change\0SUBSYSTEM=net\0")
        r.uevents.send(b"libudev\0\xfe\xed\xca\xfe")
        r.uevents.send(uevent_for(r.host, "change", GPU_A))  # a relevant one to wait on
        await r.node.rescans.wait_runs(runs + 1)
        assert r.node.uevents is not None and r.node.uevents.received == 3
        assert r.node.rescans.runs == runs + 1


def _configmap_volume(tmp_path: Path, first: str) -> tuple[Path, Path]:
    """A ConfigMap volume holding `first` as version v1: (its directory, config.yaml)."""
    cfgdir = tmp_path / "cfg"
    cfgdir.mkdir()
    _configmap(cfgdir, "v1", first)
    return cfgdir, cfgdir / "config.yaml"


def _configmap(directory: Path, version: str, text: str) -> None:
    """Publish a config the way the kubelet updates a ConfigMap volume (swap ..data)."""
    data = directory / f"..{version}"
    data.mkdir()
    (data / "config.yaml").write_text(text)
    tmp = directory / "..data_tmp"
    tmp.symlink_to(data.name)
    os.rename(tmp, directory / "..data")
    link = directory / "config.yaml"
    if not link.is_symlink():
        link.symlink_to("..data/config.yaml")


ONE = """
resources:
  - name: example.com/t4
    selectors: [{device: "10de:1eb8"}]
"""
TWO = (
    ONE
    + """
  - name: example.com/geforce
    selectors: [{device: "10de:2184"}]
"""
)


async def test_configmap_swap_reload_and_invalid_kept(tmp_path: Path, sockdir: Path) -> None:
    cfgdir, path = _configmap_volume(tmp_path, ONE)
    async with rig(tmp_path, sockdir, load_config(path), path) as r:
        await r.sim.wait_devices("example.com/t4", 2)
        pod = await r.sim.create_pod("vm-a", {"compute": {"example.com/t4": 1}})
        held = pod.device_ids("example.com/t4")
        registrations = r.sim.registration_count("example.com/t4")
        _configmap(cfgdir, "v2", TWO)
        await r.sim.wait_devices("example.com/geforce", 1)
        assert r.sim.pod("vm-a") is not None
        assert r.sim.pod("vm-a").device_ids("example.com/t4") == held  # type: ignore[union-attr]
        assert r.sim.registration_count("example.com/t4") == registrations  # not disturbed
        assert (r.sim.plugin_dir / socket_name("example.com/geforce")).exists()
        rejected = metrics.CONFIG_RELOADS.value("rejected")
        runs = r.node.reloads.runs
        _configmap(cfgdir, "v3", "resources:\n  - name: nodomain\n    selectors: [{}]\n")
        async with asyncio.timeout(10):
            await r.node.reloads.wait_runs(runs + 1)
        assert metrics.CONFIG_RELOADS.value("rejected") == rejected + 1
        assert [s.name for s in r.node.config.resources] == [
            "example.com/t4",
            "example.com/geforce",
        ]
        await r.sim.delete_pod("vm-a")


async def test_configmap_swap_removes_a_resource(tmp_path: Path, sockdir: Path) -> None:
    cfgdir, path = _configmap_volume(tmp_path, TWO)
    async with rig(tmp_path, sockdir, load_config(path), path) as r:
        await r.sim.wait_devices("example.com/geforce", 1)
        runs = r.node.reloads.runs
        _configmap(cfgdir, "v2", ONE)
        async with asyncio.timeout(10):
            await r.node.reloads.wait_runs(runs + 1)
        assert list(r.node.registrars) == ["example.com/t4"]
        assert not (r.sim.plugin_dir / socket_name("example.com/geforce")).exists()


async def test_plain_file_rewrite_reloads(tmp_path: Path, sockdir: Path) -> None:
    path = tmp_path / "hostdev.yaml"
    path.write_text(ONE)
    async with rig(tmp_path, sockdir, load_config(path), path) as r:
        tmp = tmp_path / ".hostdev.yaml.swp"
        tmp.write_text(TWO)
        os.rename(tmp, path)  # how editors and config managers replace a file
        await r.sim.wait_devices("example.com/geforce", 1)


async def test_a_reload_of_options_alone_re_registers_with_them(
    tmp_path: Path, sockdir: Path
) -> None:
    path = tmp_path / "hostdev.yaml"
    path.write_text(ONE)
    async with rig(tmp_path, sockdir, load_config(path), path) as r:
        await r.sim.wait_devices("example.com/t4", 2)
        registrations = r.sim.registration_count("example.com/t4")
        tmp = tmp_path / ".hostdev.yaml.swp"
        tmp.write_text(ONE + "    env: [sriov]\n    reset: true\n")
        os.rename(tmp, path)
        await r.sim.wait_for(lambda: r.sim.registration_count("example.com/t4") > registrations)
        assert r.sim.options("example.com/t4").pre_start_required
        pod = await r.sim.create_pod("vm", {"compute": {"example.com/t4": 1}})
        envs = pod.response("compute", "example.com/t4").envs
        assert list(envs) == ["PCIDEVICE_EXAMPLE_COM_T4"]
        await r.sim.delete_pod("vm")


async def test_metrics_and_healthz_over_http(tmp_path: Path, sockdir: Path) -> None:
    import asyncio

    async with rig(tmp_path, sockdir) as r:
        await r.sim.wait_devices(T4, 2)
        port = r.node.metrics_port
        assert port
        for path, status, needle in (
            (
                "/metrics",
                b"200",
                b'hostdev_devices{resource="devices.kubevirt.io/10de_1eb8",state="healthy"} 2.0',
            ),
            ("/healthz", b"200", b"ok"),
            ("/nope", b"404", b"try /metrics"),
        ):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
            assert reply.split(b" ")[1] == status
            assert needle in reply


@pytest.mark.parametrize("reason", ["inotify", "uevent"], ids=["inotify", "uevent"])
async def test_vfio_node_vanishing(tmp_path: Path, sockdir: Path, reason: str) -> None:
    async with rig(tmp_path, sockdir) as r:
        await r.sim.wait_devices(T4, 2)
        runs = r.node.rescans.runs
        os.unlink(r.host.root / "dev" / "vfio" / "11")
        if reason == "uevent":
            r.uevents.send(uevent_for(r.host, "change", GPU_A))
        await r.sim.wait_devices(T4, 1)
        await r.node.rescans.wait_runs(runs + 1)
        assert r.node.health.of(GPU_A).reason == "/dev/vfio/11 vanished"


@pytest.mark.parametrize(
    "how",
    ["unbind-uevent", "remove-uevent", "vfio-node-inotify"],
    ids=["unbind-uevent", "remove-uevent", "vfio-node-inotify"],
)
async def test_fast_path_reaches_the_kubelet_before_the_rescan(
    tmp_path: Path, sockdir: Path, how: str
) -> None:
    async with rig(tmp_path, sockdir, debounce=30.0) as r:  # the rescan waits 30 s
        await r.sim.wait_devices(T4, 2)
        runs = r.node.rescans.runs
        if how == "vfio-node-inotify":
            os.unlink(r.host.root / "dev" / "vfio" / "11")
        else:
            r.uevents.send(uevent_for(r.host, how.split("-")[0], GPU_A))
        await r.sim.wait_devices(T4, 1)
        assert r.health(T4)[GPU_A] == UNHEALTHY
        assert r.node.rescans.runs == runs  # no rescan has run yet


async def test_health_ignores_whether_a_pod_holds_the_device(tmp_path: Path, sockdir: Path) -> None:
    async with rig(tmp_path, sockdir) as r:
        await r.sim.wait_devices(T4, 2)
        pod = await r.sim.create_pod("vm-a", {"compute": {T4: 1}})
        (held,) = pod.device_ids(T4)
        r.node.table.set_in_use([held])
        r.host.unbind(held)
        r.uevents.send(uevent_for(r.host, "unbind", held))
        await r.sim.wait_devices(T4, 1)
        assert r.health(T4)[held] == UNHEALTHY
        assert r.sim.pod("vm-a") is not None  # the kubelet keeps the allocation


async def test_fast_mark_survives_a_scan_that_predates_it(tmp_path: Path, sockdir: Path) -> None:
    scanned, release = threading.Event(), threading.Event()
    calls = 0

    def slow_scanner(fs: HostFS, previous: Host | None) -> Host:
        nonlocal calls
        calls += 1
        snapshot = scan_host(fs, previous)
        if calls == 2:  # the first rescan: its snapshot is taken before the unbind
            scanned.set()
            release.wait(30)
        return snapshot

    async with rig(tmp_path, sockdir, scanner=slow_scanner) as r:
        await r.sim.wait_devices(GEFORCE, 1)
        runs = r.node.rescans.runs
        r.uevents.send(uevent_for(r.host, "change", GPU_B))
        await asyncio.to_thread(scanned.wait, 30)
        # Its audio function stays on vfio-pci, so /dev/vfio/15 stays: only the fast path and
        # the next scan can tell.
        r.host.unbind(GEFORCE_FN)
        r.uevents.send(uevent_for(r.host, "unbind", GEFORCE_FN))
        await r.sim.wait_devices(GEFORCE, 0)  # the fast path, while the scan still runs
        release.set()
        await r.node.rescans.wait_runs(runs + 1)
        snapshot = r.node.table.snapshot(GEFORCE)
        assert snapshot is not None and not snapshot.by_id[GEFORCE_FN].healthy  # no flap back
        await r.node.rescans.wait_runs(runs + 2)
        assert r.node.health.of(GEFORCE_FN).reason == "unbound (no driver)"


async def test_rescan_binds_on_start_devices_that_appear(tmp_path: Path, sockdir: Path) -> None:
    path = tmp_path / "hostdev.yaml"
    path.write_text(
        f"resources:\n- name: {T4}\n  selectors:\n  - device: '10de:1eb8'\n  bind: onStart\n"
    )
    state = BindOptions(state_file=tmp_path / "state.json", ipv4_probe=no_ipv4_probe)
    late = "0000:c1:00.0"
    async with rig(tmp_path, sockdir, load_config(path)) as r:
        r.node.binder = Binder(r.host.fs, r.kernel, state)
        await r.sim.wait_devices(T4, 2)
        r.host.add_device(late, "10de", "1eb8", "030200", driver="nouveau", iommu_group=60)
        r.uevents.send(uevent_for(r.host, "add", late, "nouveau"))
        await r.sim.wait_devices(T4, 3)
        assert r.host.driver_of(late) == "vfio-pci"


async def test_a_reload_that_asks_for_bind_on_start_binds_without_waiting_for_an_event(
    tmp_path: Path, sockdir: Path
) -> None:
    path = tmp_path / "hostdev.yaml"
    path.write_text(f"resources:\n- name: {T4}\n  selectors:\n  - device: '10de:1eb8'\n")
    state = BindOptions(state_file=tmp_path / "state.json", ipv4_probe=no_ipv4_probe)
    idle = "0000:c1:00.0"  # on the host all along, on its native driver
    async with rig(tmp_path, sockdir, load_config(path), path) as r:  # no backstop
        r.node.binder = Binder(r.host.fs, r.kernel, state)
        r.host.add_device(idle, "10de", "1eb8", "030200", driver="nouveau", iommu_group=60)
        await r.sim.wait_devices(T4, 2)
        tmp = tmp_path / ".hostdev.yaml.swp"
        tmp.write_text(path.read_text() + "  bind: onStart\n")
        os.rename(tmp, path)
        await r.sim.wait_devices(T4, 3)
        assert r.host.driver_of(idle) == "vfio-pci"


async def test_free_heap_released_after_start_and_each_rescan(
    tmp_path: Path, sockdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    releases: list[str] = []
    monkeypatch.setattr(live_module, "release_free_heap", lambda: releases.append("trim") or True)
    async with rig(tmp_path, sockdir) as r:
        assert releases == ["trim"]
        await r.node.rescan()
        assert releases == ["trim", "trim"]


async def test_a_resource_whose_socket_failed_on_reload_is_served_by_the_next_rescan(
    tmp_path: Path, sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="hostdev")
    path = tmp_path / "hostdev.yaml"
    path.write_text(ONE)
    async with rig(tmp_path, sockdir, load_config(path), path) as r:
        in_the_way = r.sim.plugin_dir / socket_name("example.com/geforce")
        in_the_way.mkdir()  # nothing can listen there
        failed = metrics.PLUGIN_SERVERS.value("example.com/geforce", "failed")
        runs = r.node.reloads.runs
        path.write_text(TWO)
        async with asyncio.timeout(10):
            await r.node.reloads.wait_runs(runs + 1)
        assert list(r.node.registrars) == ["example.com/t4"]
        runs = r.node.rescans.runs
        r.node.rescans.poke("backstop")  # the directory is still there: fails again, quietly
        async with asyncio.timeout(10):
            await r.node.rescans.wait_runs(runs + 1)
        assert metrics.PLUGIN_SERVERS.value("example.com/geforce", "failed") == failed + 2
        in_the_way.rmdir()
        r.node.rescans.poke("backstop")
        await r.sim.wait_devices("example.com/geforce", 1)
        assert sorted(r.node.registrars) == ["example.com/geforce", "example.com/t4"]
    about = [r for r in caplog.records if "example.com/geforce" in r.getMessage()]
    errors = [r.getMessage() for r in about if r.levelname == "ERROR"]
    assert len(errors) == 1 and "retried on each rescan" in errors[0]
    assert any("now served" in r.getMessage() for r in about if r.levelname == "INFO")
