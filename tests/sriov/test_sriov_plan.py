"""Pure SR-IOV planning: PF resolution, the kernel's rules for sriov_numvfs, binds, specs."""

from dataclasses import replace
from pathlib import Path

import pytest

from hostdev.errors import BadInputError, ConfigError, DeviceNotFoundError, HostdevError
from hostdev.host.model import PciAddress, Sriov
from hostdev.host.scan import scan_host
from hostdev.sriov import (
    BindVf,
    Problem,
    SetAutoprobe,
    SetNumVfs,
    action_writes,
    describe,
    plan_bind,
    plan_numvfs,
    resolve_pf,
)
from hostdev.sriov_apply import SriovSpec, parse_sriov_specs, reconcile_sriov
from hostdev.testing.fakehost import FakeHost

PF0 = PciAddress.parse("0000:04:00.0")
PF1 = PciAddress.parse("0000:04:00.1")


@pytest.mark.parametrize(
    ("name", "expected"),
    [("enp4s0f1", PF1), ("0000:04:00.1", PF1), ("04:00.0", PF0), ("0000:04:00.0", PF0)],
    ids=["interface", "address", "short-address", "other-pf"],
)
def test_resolve_pf(nic: FakeHost, name: str, expected: PciAddress) -> None:
    assert resolve_pf(scan_host(nic.fs), name).address == expected


@pytest.mark.parametrize(
    ("name", "error", "text"),
    [
        ("eth9", DeviceNotFoundError, "neither a network interface nor a PCI address"),
        ("0000:09:00.0", DeviceNotFoundError, "no PCI device at 0000:09:00.0"),
        ("0000:04:10.1", BadInputError, "is a VF of 0000:04:00.1; name its PF"),
        ("eno1", BadInputError, "is not an SR-IOV PF"),
    ],
    ids=["unknown-name", "absent-address", "a-vf", "not-sriov"],
)
def test_resolve_pf_refusals(nic: FakeHost, name: str, error: type, text: str) -> None:
    with pytest.raises(error, match=text):
        resolve_pf(scan_host(nic.fs), name)


def _pf(nic: FakeHost, num: int, *, driver: str | None = "igb", autoprobe: bool = True):  # type: ignore[no-untyped-def]
    pf = scan_host(nic.fs).devices[PF1]
    vfs = pf.sriov.vfs[:num] if pf.sriov else ()
    sriov = Sriov(7, num, vfs, tuple(range(len(vfs))), autoprobe)
    return replace(pf, sriov=sriov, driver=driver)


@pytest.mark.parametrize(
    ("current", "wanted", "expected"),
    [
        (0, 3, [3]),
        (7, 0, [0]),
        (7, 3, [0, 3]),
        (3, 7, [0, 7]),
        (3, 3, []),
        (0, 0, []),
        (0, 7, [7]),
    ],
    ids=["create", "destroy", "shrink-through-0", "grow-through-0", "same", "zero", "max"],
)
def test_plan_numvfs_goes_through_zero(
    nic: FakeHost, current: int, wanted: int, expected: list[int]
) -> None:
    actions = plan_numvfs(_pf(nic, current), wanted)
    assert [a.count for a in actions if isinstance(a, SetNumVfs)] == expected


def test_plan_numvfs_refuses_more_than_total(nic: FakeHost) -> None:
    with pytest.raises(BadInputError, match=r"supports at most 7 VFs \(sriov_totalvfs\); 8"):
        plan_numvfs(_pf(nic, 0), 8)


def test_plan_numvfs_refuses_negative(nic: FakeHost) -> None:
    with pytest.raises(BadInputError, match="0 or more"):
        plan_numvfs(_pf(nic, 0), -1)


def test_plan_numvfs_without_driver_says_so(nic: FakeHost) -> None:
    with pytest.raises(HostdevError, match=r"PF 0000:04:00\.1 has no driver: bind it to its") as e:
        plan_numvfs(_pf(nic, 0, driver=None), 2)
    assert e.value.exit_code == 1
    assert "the kernel needs the PF driver to create VFs" in str(e.value)


def test_plan_numvfs_without_driver_is_fine_when_nothing_changes(nic: FakeHost) -> None:
    assert plan_numvfs(_pf(nic, 0, driver=None), 0) == []


@pytest.mark.parametrize(
    ("autoprobe", "wanted", "expected"),
    [(True, False, [SetAutoprobe(PF1, False)]), (False, False, []), (True, None, [])],
    ids=["turn-off", "already-off", "leave"],
)
def test_plan_numvfs_autoprobe(
    nic: FakeHost, autoprobe: bool, wanted: bool | None, expected: list[object]
) -> None:
    actions = plan_numvfs(_pf(nic, 2, autoprobe=autoprobe), 2, autoprobe=wanted)
    assert actions == expected


def test_plan_bind_skips_vfs_already_on_the_driver(nic: FakeHost) -> None:
    host = scan_host(nic.fs)
    assert plan_bind(host, PF1, "vfio-pci") == []
    binds = plan_bind(host, PF1, "igbvf")
    assert len(binds) == 7
    assert binds[0] == BindVf(PciAddress.parse("0000:04:10.1"), "igbvf", "vfio-pci")


def test_action_writes_and_descriptions(nic: FakeHost) -> None:
    vf = PciAddress.parse("0000:04:10.1")
    writes = action_writes(nic.fs, BindVf(vf, "vfio-pci", "igbvf"))
    assert [Path(p).name for p, _ in writes] == ["driver_override", "unbind", "drivers_probe"]
    assert [v for _, v in writes] == ["vfio-pci", "0000:04:10.1", "0000:04:10.1"]
    driverless = action_writes(nic.fs, BindVf(vf, "vfio-pci", None))
    assert [Path(p).name for p, _ in driverless] == ["driver_override", "drivers_probe"]
    assert describe(SetNumVfs(PF1, 3)) == "0000:04:00.1: sriov_numvfs = 3"
    assert describe(SetAutoprobe(PF1, False)) == "0000:04:00.1: sriov_drivers_autoprobe = 0"
    assert describe(Problem("eth9", "gone")) == "eth9: not applied: gone"


# -- declarative specs ---------------------------------------------------------------------
def test_parse_specs() -> None:
    specs = parse_sriov_specs(
        [
            {"pf": "enp4s0f1", "numVfs": 7, "bind": "vfio-pci"},
            {"pf": "0000:06:00.0", "numVfs": 0, "driversAutoprobe": False},
        ]
    )
    assert specs == [
        SriovSpec("enp4s0f1", 7, "vfio-pci"),
        SriovSpec("0000:06:00.0", 0, None, False),
    ]
    assert parse_sriov_specs(None) == []


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        ({"pf": "x"}, "sriov", "must be a list"),
        (["enp4s0f1"], "sriov[0]", "must be a mapping"),
        ([{"pf": "a", "numVfs": 1, "vfs": 2}], "sriov[0].vfs", "unknown key"),
        ([{"numVfs": 1}], "sriov[0].pf", "interface name or a PCI address"),
        ([{"pf": "a", "numVfs": -1}], "sriov[0].numVfs", "whole number"),
        ([{"pf": "a", "numVfs": "7"}], "sriov[0].numVfs", "whole number"),
        ([{"pf": "a", "numVfs": True}], "sriov[0].numVfs", "whole number"),
        ([{"pf": "a", "numVfs": 1, "bind": ""}], "sriov[0].bind", "driver name"),
        (
            [{"pf": "a", "numVfs": 1, "driversAutoprobe": "no"}],
            "sriov[0].driversAutoprobe",
            "true or false",
        ),
        ([{"pf": "a", "numVfs": 1}, {"pf": "a", "numVfs": 2}], "sriov[1].pf", "listed twice"),
    ],
    ids=[
        "not-list",
        "not-mapping",
        "unknown",
        "no-pf",
        "negative",
        "string",
        "bool",
        "empty-bind",
        "autoprobe-type",
        "duplicate",
    ],
)
def test_parse_specs_errors(data: object, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_sriov_specs(data, "node.yaml")
    assert err.value.file == "node.yaml"
    assert err.value.field == field
    assert reason in err.value.reason


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (SriovSpec("enp4s0f1", 7, "vfio-pci"), []),
        (SriovSpec("enp4s0f0", 4), [SetNumVfs(PF0, 4, "020000")]),
        (SriovSpec("enp4s0f1", 3), [SetNumVfs(PF1, 0, "020000"), SetNumVfs(PF1, 3, "020000")]),
        (SriovSpec("enp4s0f1", 0), [SetNumVfs(PF1, 0, "020000")]),
        (SriovSpec("enp4s0f0", 0, "vfio-pci"), []),
    ],
    ids=["in-place", "create", "reset-through-0", "remove", "zero-with-bind"],
)
def test_reconcile_counts(nic: FakeHost, spec: SriovSpec, expected: list[object]) -> None:
    assert reconcile_sriov(scan_host(nic.fs), [spec]) == expected


def test_reconcile_binds_only_when_the_count_is_right(nic: FakeHost) -> None:
    host = scan_host(nic.fs)
    binds = reconcile_sriov(host, [SriovSpec("enp4s0f1", 7, "igbvf")])
    assert len(binds) == 7 and all(isinstance(a, BindVf) for a in binds)
    assert not any(
        isinstance(a, BindVf) for a in reconcile_sriov(host, [SriovSpec("enp4s0f1", 3, "igbvf")])
    )


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        (SriovSpec("eth9", 2), "neither a network interface"),
        (SriovSpec("enp4s0f0", 9), "at most 7 VFs"),
        (SriovSpec("eno1", 1), "not an SR-IOV PF"),
    ],
    ids=["unknown", "too-many", "not-a-pf"],
)
def test_reconcile_problems(nic: FakeHost, spec: SriovSpec, reason: str) -> None:
    (problem,) = reconcile_sriov(scan_host(nic.fs), [spec])
    assert isinstance(problem, Problem) and reason in problem.reason


def test_reconcile_never_resets_vfs_in_use(nic: FakeHost) -> None:
    busy = PciAddress.parse("0000:04:10.3")
    (problem,) = reconcile_sriov(
        scan_host(nic.fs), [SriovSpec("enp4s0f1", 2)], in_use=lambda a: a == busy
    )
    assert isinstance(problem, Problem)
    assert "VFs in use (0000:04:10.3)" in problem.reason
    assert (
        reconcile_sriov(scan_host(nic.fs), [SriovSpec("enp4s0f1", 7)], in_use=lambda a: True) == []
    )


def test_reconcile_pf_without_driver(nic: FakeHost) -> None:
    nic.unbind("0000:04:00.0")
    (problem,) = reconcile_sriov(scan_host(nic.fs), [SriovSpec("enp4s0f0", 2)])
    assert isinstance(problem, Problem) and "has no driver" in problem.reason
