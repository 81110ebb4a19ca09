"""Health rules as a table: each case mutates a fake host and judges one served device."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from hostdev.health import (
    HealthView,
    Signals,
    aer_watch_list,
    assess,
    retain_vanished,
    transitions,
)
from hostdev.host.model import PciAddress
from hostdev.host.scan import scan_host
from hostdev.host.signals import read_aer_fatal, vfio_group_nodes
from hostdev.selection import Resource, ServedDevice
from hostdev.testing.examples import build_example
from hostdev.testing.fakehost import FakeHost

T4 = "0000:65:00.0"
GPU_B = "0000:b3:00.0"
GEFORCE, AUDIO = "0000:17:00.0", "0000:17:00.1"
MDEV = "4b20d080-1b54-4048-85b3-a6a62d165c01"
VGPU_PARENT = "0000:3b:00.0"


def _drop_node(group: int) -> Callable[[FakeHost], None]:
    return lambda h: os.unlink(h.root / "dev" / "vfio" / str(group))


def _rebind(driver: str) -> Callable[[FakeHost], None]:
    def apply(h: FakeHost) -> None:
        h.unbind(T4)
        h.bind(T4, driver)

    return apply


CASES: list[tuple[str, str, str, Callable[[FakeHost], None], bool, str]] = [
    ("untouched", "gpu-node", T4, lambda h: None, True, ""),
    ("removed", "gpu-node", T4, lambda h: h.remove_device(T4), False, "removed from the bus"),
    ("unbound", "gpu-node", T4, lambda h: h.unbind(T4), False, "unbound (no driver)"),
    (
        "rebound-nouveau",
        "gpu-node",
        T4,
        _rebind("nouveau"),
        False,
        "bound to nouveau, not vfio-pci",
    ),
    ("rebound-vfio", "gpu-node", T4, _rebind("vfio-pci"), True, ""),
    ("node-vanished", "gpu-node", T4, _drop_node(11), False, "/dev/vfio/11 vanished"),
    (
        "aer-rose",
        "gpu-node",
        T4,
        lambda h: h.set_aer_fatal(T4, {"Poisoned TLP": 1}),
        False,
        "AER fatal errors rose from 0 to 1",
    ),
    (
        "aer-other-device",
        "gpu-node",
        T4,
        lambda h: h.set_aer_fatal("0000:b3:00.0", {"Poisoned TLP": 1}),
        True,
        "",
    ),
    ("group-sibling-unbound", "gpu-node", GEFORCE, lambda h: h.unbind(AUDIO), True, ""),
    ("mdev-untouched", "vgpu-node", MDEV, lambda h: None, True, ""),
    ("mdev-removed", "vgpu-node", MDEV, lambda h: h.remove_mdev(MDEV), False, "mdev removed"),
    ("mdev-node-vanished", "vgpu-node", MDEV, _drop_node(36), False, "/dev/vfio/36 vanished"),
    (
        "mdev-parent-aer",
        "vgpu-node",
        MDEV,
        lambda h: h.set_aer_fatal(VGPU_PARENT, {"Completion Timeout": 3}),
        False,
        "parent 0000:3b:00.0: AER fatal errors rose from 0 to 3",
    ),
]


def _judge(host: FakeHost, served: list[str], previous: HealthView) -> HealthView:
    snapshot = scan_host(host.fs)
    aer = read_aer_fatal(host.fs, aer_watch_list(snapshot, served))
    return assess(previous, snapshot, served, Signals(aer, vfio_group_nodes(host.fs)))


@pytest.mark.parametrize(
    ("example", "device", "mutate", "healthy", "reason"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_health_rules(
    tmp_path: Path,
    example: str,
    device: str,
    mutate: Callable[[FakeHost], None],
    healthy: bool,
    reason: str,
) -> None:
    host = build_example(example, tmp_path)
    for address in (T4, "0000:b3:00.0", VGPU_PARENT):
        if address in host.funcs:
            host.set_aer_fatal(address, {})
    before = _judge(host, [device], HealthView())
    assert before.of(device).healthy, before.of(device).reason
    mutate(host)
    after = _judge(host, [device], before)
    assert (after.of(device).healthy, after.of(device).reason) == (healthy, reason)
    assert after.of(device).state == ("Healthy" if healthy else "Unhealthy")
    assert len(transitions(before, after)) == (0 if healthy else 1)


def test_aer_count_at_start_is_the_baseline(tmp_path: Path) -> None:
    host = build_example("gpu-node", tmp_path)
    host.set_aer_fatal(T4, {"Surprise Down Error": 5})
    view = _judge(host, [T4], HealthView())
    assert view.of(T4).healthy
    assert view.aer_baseline[PciAddress.parse(T4)] == 5


def test_aer_stays_unhealthy_until_the_device_leaves_vfio(tmp_path: Path) -> None:
    host = build_example("gpu-node", tmp_path)
    host.set_aer_fatal(T4, {})
    view = _judge(host, [T4], HealthView())
    host.set_aer_fatal(T4, {"Poisoned TLP": 2})
    view = _judge(host, [T4], view)
    view = _judge(host, [T4], view)
    assert not view.of(T4).healthy  # sticky: no new errors, still unhealthy
    host.unbind(T4)
    view = _judge(host, [T4], view)
    assert PciAddress.parse(T4) not in view.aer_baseline
    host.bind(T4, "vfio-pci")
    view = _judge(host, [T4], view)
    assert view.of(T4).healthy  # re-bound: the kernel re-initialised it, new baseline 2
    assert view.aer_baseline[PciAddress.parse(T4)] == 2


def test_comes_back_after_removal_and_rescan(tmp_path: Path) -> None:
    host = build_example("gpu-node", tmp_path)
    view = _judge(host, [T4], HealthView())
    host.remove_device(T4)
    gone = _judge(host, [T4], view)
    host.add_device(
        T4, "10de", "1eb8", "030200", driver="vfio-pci", iommu_group=11, parent="0000:64:00.0"
    )
    back = _judge(host, [T4], gone)
    assert [(t.device_id, t.after.healthy) for t in transitions(gone, back)] == [(T4, True)]


def test_unknown_ids_and_new_devices() -> None:
    view = HealthView()
    assert view.of("anything").healthy
    assert transitions(view, HealthView({"x": view.of("x")})) == []


def _resource(name: str, *ids: str) -> Resource:
    devices = tuple(ServedDevice(i, PciAddress.parse(i), None, None) for i in ids)
    return Resource(name, "pci", devices)


@pytest.mark.parametrize(
    ("previous", "selected", "problems", "expected"),
    [
        (
            [_resource("a", T4, GPU_B)],
            [_resource("a", T4)],
            {GPU_B: "removed from the bus"},
            {"a": [T4, GPU_B]},
        ),
        ([_resource("a", T4, GPU_B)], [_resource("a", T4)], {}, {"a": [T4]}),
        (
            [_resource("a", T4, GPU_B)],
            [_resource("a", T4), _resource("b", GPU_B)],
            {GPU_B: "x"},
            {"a": [T4], "b": [GPU_B]},
        ),
        ([_resource("a", T4)], [], {T4: "unbound (no driver)"}, {"a": [T4]}),
        ([_resource("a", T4)], [], {}, {}),
        ([], [_resource("a", T4)], {GPU_B: "x"}, {"a": [T4]}),
    ],
    ids=[
        "kept-unhealthy",
        "dropped-healthy",
        "moved-to-other-resource",
        "resource-kept-for-ghost",
        "resource-gone",
        "nothing-before",
    ],
)
def test_retain_vanished(
    previous: list[Resource],
    selected: list[Resource],
    problems: dict[str, str],
    expected: dict[str, list[str]],
) -> None:
    kept = retain_vanished({r.name: r for r in previous}, selected, problems)
    assert {r.name: [d.id for d in r.devices] for r in kept} == expected
