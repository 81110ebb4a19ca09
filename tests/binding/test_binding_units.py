"""Pure parts of binding: selector parsing and matching, write plans, the state file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from binding_helpers import E1000, GPU, GPU_AUDIO, RTL

from hostdev.binding.guards import default_ipv4_probe, kernel_ipv4_probe, no_ipv4_probe
from hostdev.binding.plan import Binding, Write, plan_bind, plan_restore, plan_unbind
from hostdev.binding.selectors import parse_selector, parse_selectors, resolve
from hostdev.binding.state import DeviceRecord, StateFile, load_records
from hostdev.errors import BadInputError, ConfigError, DeviceNotFoundError
from hostdev.host.fs import HostFS
from hostdev.host.model import PciAddress
from hostdev.host.scan import scan_host

FS = HostFS.under("/h")
ADDR = PciAddress.parse("0000:65:00.0")
OVERRIDE = "/h/sys/bus/pci/devices/0000:65:00.0/driver_override"
PROBE = "/h/sys/bus/pci/drivers_probe"


@pytest.mark.parametrize(
    ("text", "kind", "value"),
    [
        ("10de:1eb8", "id", "10de:1eb8"),
        ("10DE:1EB8", "id", "10de:1eb8"),
        ("0000:65:00.0", "address", "0000:65:00.0"),
        ("65:00.0", "address", "0000:65:00.0"),
        ("0000:65:*", "glob", "0000:65:*"),
        ("06:0?.0", "glob", "0000:06:0?.0"),
        ("*:06:0[12].0", "glob", "*:06:0[12].0"),
        ("10000:01:00.0", "address", "10000:01:00.0"),
        ("10de:*", "id", "10de:*"),
        ("8086:10?3", "id", "8086:10?3"),
    ],
    ids=[
        "id",
        "id-upper",
        "address",
        "short-address",
        "glob",
        "short-glob",
        "glob-class",
        "wide-domain",
        "id-any-device",
        "id-one-digit-open",
    ],
)
def test_parse_selector(text, kind, value):
    selector = parse_selector(text)
    assert (selector.kind, selector.value) == (kind, value)


@pytest.mark.parametrize(
    "text",
    [
        "10de",
        "10de:1eb",
        "nvidia",
        "0000:65:00.8",
        "0000:65:20.0",
        "0000:65:*;rm",
        "",
        "*",
        "0000:65:00.0:1",
    ],
    ids=[
        "vendor-only",
        "short-device",
        "name",
        "function-8",
        "slot-20",
        "glob-junk",
        "empty",
        "bare-star",
        "too-many-parts",
    ],
)
def test_bad_selectors_are_bad_input(text):
    with pytest.raises(BadInputError):
        parse_selector(text)


def test_no_selectors_is_bad_input():
    with pytest.raises(BadInputError, match="no device given"):
        parse_selectors([])


def test_resolve_matches_and_sorts(host):
    snapshot = scan_host(host.fs)
    found = resolve(snapshot, parse_selectors(["10de:10f8", "0000:06:0*", "10de:1eb8"]))
    assert [str(a) for a in found] == [E1000, RTL, GPU, GPU_AUDIO, "0000:65:00.0", "0000:b3:00.0"]
    nvidia = sorted(a for a, d in snapshot.devices.items() if d.vendor == "10de")
    assert len(nvidia) > 2
    assert resolve(snapshot, parse_selectors(["10de:*"])) == nvidia


@pytest.mark.parametrize(
    "text", ["dead:beef", "0000:99:00.0", "0000:99:*"], ids=["id", "address", "glob"]
)
def test_resolve_without_match_is_bad_input(host, text):
    with pytest.raises(DeviceNotFoundError, match="matches"):
        resolve(scan_host(host.fs), parse_selectors([text]))


UNBIND_NOUVEAU = Write("/h/sys/bus/pci/drivers/nouveau/unbind", str(ADDR))


@pytest.mark.parametrize(
    ("current", "writes"),
    [
        (
            Binding("nouveau", None),
            [Write(OVERRIDE, "vfio-pci"), UNBIND_NOUVEAU, Write(PROBE, str(ADDR))],
        ),
        (Binding(None, None), [Write(OVERRIDE, "vfio-pci"), Write(PROBE, str(ADDR))]),
        (Binding(None, "vfio-pci"), [Write(PROBE, str(ADDR))]),
        (Binding("vfio-pci", None), []),
        (Binding("vfio-pci", "vfio-pci"), []),
    ],
    ids=["from-driver", "driverless", "override-set", "on-vfio", "on-vfio-with-override"],
)
def test_plan_bind(current, writes):
    assert plan_bind(FS, ADDR, current) == writes


@pytest.mark.parametrize(
    ("current", "writes"),
    [
        (Binding("nouveau", None), [UNBIND_NOUVEAU]),
        (Binding("nouveau", "nouveau"), [Write(OVERRIDE, "\n"), UNBIND_NOUVEAU]),
        (Binding(None, None), []),
    ],
    ids=["bound", "bound-with-override", "already-unbound"],
)
def test_plan_unbind(current, writes):
    assert plan_unbind(FS, ADDR, current) == writes


BIND_NOUVEAU = Write("/h/sys/bus/pci/drivers/nouveau/bind", str(ADDR))
UNBIND_VFIO = Write("/h/sys/bus/pci/drivers/vfio-pci/unbind", str(ADDR))


@pytest.mark.parametrize(
    ("current", "target", "loaded", "writes"),
    [
        (
            Binding("vfio-pci", "vfio-pci"),
            Binding("nouveau", None),
            True,
            [Write(OVERRIDE, "\n"), UNBIND_VFIO, BIND_NOUVEAU],
        ),
        (
            Binding("vfio-pci", "vfio-pci"),
            Binding("nouveau", None),
            False,
            [Write(OVERRIDE, "\n"), UNBIND_VFIO, Write(PROBE, str(ADDR))],
        ),
        (
            Binding(None, "vfio-pci"),
            Binding("nouveau", None),
            True,
            [Write(OVERRIDE, "\n"), BIND_NOUVEAU],
        ),
        (Binding("nouveau", "vfio-pci"), Binding("nouveau", None), True, [Write(OVERRIDE, "\n")]),
        (Binding("nouveau", None), Binding("nouveau", None), True, []),
        (
            Binding("vfio-pci", "vfio-pci"),
            Binding(None, None),
            True,
            [Write(OVERRIDE, "\n"), UNBIND_VFIO],
        ),
        (
            Binding("vfio-pci", "vfio-pci"),
            Binding("nouveau", "nouveau"),
            True,
            [Write(OVERRIDE, "nouveau"), UNBIND_VFIO, BIND_NOUVEAU],
        ),
    ],
    ids=[
        "bound",
        "driver-not-loaded",
        "crashed-after-unbind",
        "crashed-after-override",
        "nothing-to-do",
        "originally-driverless",
        "original-override",
    ],
)
def test_plan_restore(current, target, loaded, writes):
    assert plan_restore(FS, ADDR, current, target, target_loaded=loaded) == writes


def test_state_file_first_original_wins_and_saves_atomically(tmp_path):
    path = tmp_path / "deep" / "state.json"
    state = StateFile(path)
    with state.locked():
        assert state.add({"0000:65:00.0": DeviceRecord("nouveau", None, "10de:1eb8")}) == [
            "0000:65:00.0"
        ]
        assert state.add({"0000:65:00.0": DeviceRecord("vfio-pci", None, "10de:1eb8")}) == []
    assert load_records(path)["0000:65:00.0"].driver == "nouveau"
    assert sorted(os.listdir(path.parent)) == ["state.json", "state.json.lock"]  # no temp files
    with state.locked():
        state.drop(["0000:65:00.0"])
    assert json.loads(path.read_text()) == {"version": 1, "devices": {}}


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("{not json", "not JSON"),
        ('{"version": 2, "devices": {}}', "version"),
        ('{"version": 1, "devices": []}', "devices"),
        ('{"version": 1, "devices": {"0000:65:00.0": 3}}', "must be an object"),
        ('{"version": 1, "devices": {"0000:65:00.0": {"driver": 5}}}', "driver"),
    ],
    ids=["not-json", "version", "devices-list", "record-not-object", "driver-not-string"],
)
def test_broken_state_file_is_a_config_error(tmp_path: Path, text, field):
    path = tmp_path / "state.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=field):
        load_records(path)


def test_default_ipv4_probe_asks_the_kernel_only_for_our_own_proc(tmp_path):
    assert default_ipv4_probe(HostFS()) is kernel_ipv4_probe
    assert default_ipv4_probe(HostFS.under(tmp_path)) is no_ipv4_probe


def test_kernel_ipv4_probe_of_a_missing_interface_is_empty():
    assert kernel_ipv4_probe("hostdev-none0") == ()


def test_binding_api_names_load_lazily_and_unknown_names_fail():
    import hostdev.binding as binding

    assert binding.restore_devices.__module__ == "hostdev.binding.restore"
    assert binding.BindOptions.__module__ == "hostdev.binding.execute"
    with pytest.raises(AttributeError, match="no_such_name"):
        _ = binding.no_such_name  # type: ignore[attr-defined]
