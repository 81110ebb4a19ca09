"""Doctor's checks as a table over fake hosts with one thing wrong each."""

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from hostdev.host.checks import FAIL, PASS, WARN, check_device, kernel_args, run_checks
from hostdev.host.facts import read_facts
from hostdev.host.model import PciAddress
from hostdev.host.scan import scan_host
from hostdev.testing.examples import add_intel_pch, build_example
from hostdev.testing.fakehost import FakeHost


def _statuses(host: FakeHost) -> dict[str, str]:
    scanned = scan_host(host.fs)
    devices = [d for d in scanned.sorted_devices() if not d.is_bridge]
    return {c.name: c.status for c in run_checks(scanned, read_facts(host.fs), devices)}


def _no_pt(h: FakeHost) -> None:
    h.set_cmdline("ro intel_iommu=on")


def _iommu_off(h: FakeHost) -> None:
    h.set_cmdline("ro intel_iommu=off")


def _amd_without_flag(h: FakeHost) -> None:
    h.set_cpu_vendor("AuthenticAMD").set_cmdline("ro iommu=pt")


def _no_remapping(h: FakeHost) -> None:
    (h.root / "sys/devices/virtual/iommu/dmar0/intel-iommu/ecap").write_text("f00f42\n")


def _no_remapping_unsafe(h: FakeHost) -> None:
    _no_remapping(h)
    h.load_module("vfio_iommu_type1", allow_unsafe_interrupts="Y")


def _intremap_off(h: FakeHost) -> None:
    h.set_cmdline("ro intel_iommu=on iommu=pt intremap=off")


def _second_unit_unreadable(h: FakeHost) -> None:
    h.add_iommu("intel", unit=1)
    (h.root / "sys/devices/virtual/iommu/dmar1/intel-iommu/ecap").unlink()


def _one_unreadable_one_without(h: FakeHost) -> None:
    _second_unit_unreadable(h)
    _no_remapping(h)


def _ecap_garbage(h: FakeHost) -> None:
    (h.root / "sys/devices/virtual/iommu/dmar0/intel-iommu/ecap").write_text("f_00f4a\n")


def _amd_units(h: FakeHost) -> None:
    (h.root / "sys/class/iommu/dmar0").unlink()
    h.add_iommu("amd").add_iommu("amd", unit=1)


def _noiommu_mode(h: FakeHost) -> None:
    h.load_module("vfio", enable_unsafe_noiommu_mode="Y")


def _no_vfio(h: FakeHost) -> None:
    shutil.rmtree(h.root / "sys/module/vfio_pci")


def _iommufd_only(h: FakeHost) -> None:
    (h.root / "dev/vfio/vfio").unlink()
    (h.root / "dev/iommu").write_text("")


def _no_vfio_nodes(h: FakeHost) -> None:
    (h.root / "dev/vfio/vfio").unlink()


@pytest.mark.parametrize(
    ("damage", "name", "status"),
    [
        (lambda h: None, "iommu-cmdline", PASS),
        (_no_pt, "iommu-cmdline", WARN),
        (_iommu_off, "iommu-cmdline", FAIL),
        (_amd_without_flag, "iommu-cmdline", PASS),
        (lambda h: None, "interrupt-remapping", PASS),
        (_no_remapping, "interrupt-remapping", FAIL),
        (_no_remapping_unsafe, "interrupt-remapping", WARN),
        (_intremap_off, "interrupt-remapping", FAIL),
        (_one_unreadable_one_without, "interrupt-remapping", FAIL),
        (_second_unit_unreadable, "interrupt-remapping", WARN),
        (_ecap_garbage, "interrupt-remapping", WARN),
        (_amd_units, "interrupt-remapping", PASS),
        (_noiommu_mode, "noiommu-mode", WARN),
        (_no_vfio, "vfio-modules", FAIL),
        (lambda h: None, "vfio-nodes", PASS),
        (_iommufd_only, "vfio-nodes", WARN),
        (_no_vfio_nodes, "vfio-nodes", FAIL),
        (lambda h: None, "device 0000:06:01.0", FAIL),
        (lambda h: None, "device 0000:17:00.1", PASS),
        (lambda h: None, "device 0000:01:00.0", WARN),
        (lambda h: None, "device 0000:08:00.0", FAIL),
    ],
    ids=[
        "all-good",
        "no-iommu-pt",
        "iommu-off",
        "amd-default-on",
        "remapping",
        "no-remapping",
        "no-remapping-unsafe-allowed",
        "intremap-off",
        "one-unit-unreadable-other-without",
        "one-unit-unreadable",
        "ecap-garbage",
        "amd-units-do-not-report",
        "noiommu-mode",
        "vfio-not-loaded",
        "vfio-container-node",
        "iommufd-without-container",
        "no-vfio-nodes",
        "shared-group-not-viable",
        "companion-group-viable",
        "viable-but-host-driver",
        "no-group",
    ],
)
def test_check(tmp_path: Path, damage: Callable[[FakeHost], None], name: str, status: str) -> None:
    host = build_example("kitchen-sink", tmp_path)
    damage(host)
    assert _statuses(host)[name] == status


def test_no_iommu_host_fails_everything_iommu(tmp_path: Path) -> None:
    statuses = _statuses(build_example("no-iommu", tmp_path))
    assert statuses["iommu-enabled"] == FAIL and statuses["iommu-groups"] == FAIL
    assert statuses["iommu-cmdline"] == FAIL


@pytest.mark.parametrize(
    ("vendor", "args"),
    [("intel", "intel_iommu=on iommu=pt"), ("amd", "amd_iommu=on iommu=pt")],
    ids=["intel", "amd"],
)
def test_kernel_args(vendor: str, args: str) -> None:
    assert kernel_args(vendor) == args


def test_vfio_nodes_are_not_checked_before_vfio_is_loaded(tmp_path: Path) -> None:
    host = build_example("kitchen-sink", tmp_path)
    shutil.rmtree(host.root / "sys/module/vfio")
    (host.root / "dev/vfio/vfio").unlink()
    statuses = _statuses(host)
    assert statuses["vfio-modules"] == FAIL and "vfio-nodes" not in statuses


@pytest.mark.parametrize(
    "pch_driver", ["snd_hda_intel", None], ids=["others-on-host-drivers", "others-unbound"]
)
def test_group_held_by_a_bridge_is_not_fixed_by_binding(
    tmp_path: Path, pch_driver: str | None
) -> None:
    host = build_example("kitchen-sink", tmp_path)
    add_intel_pch(host, driver=pch_driver)
    scanned = scan_host(host.fs)
    check = check_device(scanned, scanned.devices[PciAddress.parse("0000:00:1f.3")])
    assert check.status == FAIL and "0000:00:1f.0 on lpc_ich" in check.message
    assert "hostdev bind" not in check.fix and "bridge 0000:00:1f.0" in check.fix


@pytest.mark.parametrize(
    ("damage", "words", "not_words"),
    [
        (_one_unreadable_one_without, "not supported by dmar0", "AMD"),
        (_second_unit_unreadable, "the ecap of dmar1 is unreadable", "AMD"),
        (_amd_units, "AMD-Vi", "ecap"),
    ],
    ids=["names-the-unit-without", "intel-unit-unreadable", "amd"],
)
def test_interrupt_remapping_message(
    tmp_path: Path, damage: Callable[[FakeHost], None], words: str, not_words: str
) -> None:
    host = build_example("kitchen-sink", tmp_path)
    damage(host)
    (check,) = [
        c
        for c in run_checks(scan_host(host.fs), read_facts(host.fs), [])
        if c.name == "interrupt-remapping"
    ]
    assert words in check.message and not_words not in check.message
