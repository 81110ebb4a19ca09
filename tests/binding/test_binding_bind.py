"""bind/unbind/restore through the API on a fake host whose writes behave like the kernel's."""

from __future__ import annotations

import errno
import json
from dataclasses import replace
from pathlib import Path

import pytest
from binding_helpers import E1000, GPU, GPU_AUDIO, NVME, RTL, bindings

from hostdev.binding import (
    BindOptions,
    bind_devices,
    reset_device,
    restore_devices,
    unbind_devices,
)
from hostdev.errors import DeviceNotFoundError, HostdevError
from hostdev.host.model import PciAddress
from hostdev.host.scan import scan_host
from hostdev.host.writer import RecordingWriter
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter


def addrs(*texts: str) -> list[PciAddress]:
    return [PciAddress.parse(t) for t in texts]


def records(state_file: Path) -> dict[str, dict[str, object]]:
    return json.loads(state_file.read_text())["devices"] if state_file.exists() else {}


def test_bind_takes_group_companion_and_makes_group_viable(host, kernel, options, state_file):
    result = bind_devices(host.fs, kernel, addrs(E1000), options)
    assert result.ok
    assert [(d.address, d.action, d.companion_of) for d in result.devices] == [
        (E1000, "bound", None),
        (RTL, "bound", E1000),
    ]
    assert result.devices[0].companions == (RTL,)
    assert host.driver_of(E1000) == host.driver_of(RTL) == "vfio-pci"
    assert host.driver_of("0000:05:00.0") is None  # the bridge is left alone
    snapshot = scan_host(host.fs)
    assert snapshot.group_viability(32).viable
    assert (host.root / "dev/vfio/32").exists()
    assert records(state_file)[RTL]["driver"] == "8139cp"
    assert records(state_file)[RTL]["companion_of"] == E1000


def test_bind_uses_driver_override_never_new_id(host, kernel, options):
    bind_devices(host.fs, kernel, addrs(GPU), options)
    paths = [path.removeprefix(str(host.root)) for path, _ in kernel.writes]
    assert paths == [
        f"/sys/bus/pci/devices/{GPU}/driver_override",
        "/sys/bus/pci/drivers/nouveau/unbind",
        "/sys/bus/pci/drivers_probe",
        f"/sys/bus/pci/devices/{GPU_AUDIO}/driver_override",
        "/sys/bus/pci/drivers/snd_hda_intel/unbind",
        "/sys/bus/pci/drivers_probe",
    ]
    assert not any(p.endswith("new_id") for p in paths)


def test_bind_is_idempotent(host, kernel, options, state_file):
    bind_devices(host.fs, kernel, addrs(E1000), options)
    before = records(state_file)
    kernel.writes.clear()
    again = bind_devices(host.fs, kernel, addrs(E1000, RTL), options)
    assert again.ok
    assert [d.action for d in again.devices] == ["already-bound", "already-bound"]
    assert kernel.writes == []
    assert records(state_file) == before  # the original driver is not overwritten by vfio-pci


def test_bind_device_already_on_vfio_records_nothing(host, kernel, options, state_file):
    result = bind_devices(host.fs, kernel, addrs("0000:65:00.0"), options)
    assert [d.action for d in result.devices] == ["already-bound"]
    assert records(state_file) == {}


def test_bind_unknown_address_is_bad_input(host, kernel, options):
    with pytest.raises(DeviceNotFoundError):
        bind_devices(host.fs, kernel, addrs("0000:99:00.0"), options)


@pytest.mark.parametrize(
    "index",
    range(6),
    ids=["override-1", "unbind-1", "probe-1", "override-2", "unbind-2", "probe-2"],
)
def test_failure_at_each_write_rolls_back_everything(host, options, state_file, index):
    before = bindings(host)
    kernel = FakeKernelWriter(host, fail_at={index: errno.EIO})
    result = bind_devices(host.fs, kernel, addrs(E1000), options)
    assert not result.ok
    assert bindings(host) == before
    assert records(state_file) == {}
    actions = [d.action for d in result.devices]
    assert actions[index // 3] == "failed"
    assert "Input/output error" in result.devices[index // 3].reason
    if index >= 3:
        assert actions[0] == "rolled-back"


def test_failed_rollback_keeps_records_for_restore(host, options, state_file):
    before = bindings(host)
    # the companion's probe fails, and so does putting e1000 back: the run cannot undo itself
    kernel = FakeKernelWriter(
        host, fail_at={5: errno.EIO}, fail_on={"drivers/e1000/bind": errno.EIO}
    )
    result = bind_devices(host.fs, kernel, addrs(E1000), options)
    assert not result.ok
    assert any("rollback incomplete" in w for w in result.warnings)
    assert set(records(state_file)) == {E1000, RTL}
    restored = restore_devices(host.fs, FakeKernelWriter(host), None, options)
    assert restored.ok
    assert bindings(host) == before
    assert records(state_file) == {}


@pytest.mark.parametrize(
    ("stuck", "expected"),
    [
        (
            "drivers/e1000/bind",
            [(E1000, "rollback-failed", None, True), (RTL, "failed", "8139cp", False)],
        ),
        (
            "drivers/8139cp/bind",
            [(E1000, "rolled-back", "e1000", False), (RTL, "failed", None, True)],
        ),
    ],
    ids=["target-stuck", "failed-companion-stuck"],
)
def test_each_device_says_whether_it_was_really_put_back(host, options, stuck, expected):
    # the companion's probe fails; putting one of the two devices back fails as well
    kernel = FakeKernelWriter(host, fail_at={5: errno.EIO}, fail_on={stuck: errno.EIO})
    result = bind_devices(host.fs, kernel, addrs(E1000), options)
    assert not result.ok
    assert [
        (d.address, d.action, d.to_driver, "could not be put back" in d.reason)
        for d in result.devices
    ] == expected
    assert [(a, host.driver_of(a)) for a in (E1000, RTL)] == [(a, t) for a, _, t, _ in expected]


class LettingGoWriter(FakeKernelWriter):
    """The device's driver lets go of it just before our unbind (a new VF whose probe fails
    meanwhile, as QEMU's NVMe VFs do): the kernel then refuses the unbind with ENODEV."""

    def write(self, path: str, value: str) -> None:
        if path.endswith("/unbind") and self.host.driver_of(value) is not None:
            self.host.unbind(value)
        super().write(path, value)


def test_bind_goes_on_when_the_driver_let_go_before_the_unbind(host, options, state_file):
    writer = LettingGoWriter(host)
    result = bind_devices(host.fs, writer, addrs(NVME), options)
    assert result.ok, result.to_json()
    assert host.driver_of(NVME) == "vfio-pci"
    assert records(state_file)[NVME]["driver"] == "nvme"  # the original driver, for restore


def test_an_unbind_refused_while_the_driver_still_holds_the_device_fails_the_run(
    host, options, state_file
):
    before = bindings(host)
    writer = FakeKernelWriter(host, fail_on={"/unbind": errno.ENODEV})
    result = bind_devices(host.fs, writer, addrs(NVME), options)
    assert not result.ok and result.devices[0].action == "failed"
    assert bindings(host) == before


class SimulatedCrash(BaseException):
    """Stands for kill -9: nothing catches it, no rollback runs."""


class CrashingWriter(FakeKernelWriter):
    crash_at: int = 0

    def write(self, path: str, value: str) -> None:
        if len(self.writes) == self.crash_at:
            raise SimulatedCrash
        super().write(path, value)


@pytest.mark.parametrize(
    "crash_at",
    range(6),
    ids=[
        "before-override-1",
        "before-unbind-1",
        "before-probe-1",
        "before-override-2",
        "before-unbind-2",
        "before-probe-2",
    ],
)
def test_crash_between_writes_then_restore_all(host, options, state_file, crash_at):
    before = bindings(host)
    writer = CrashingWriter(host)
    writer.crash_at = crash_at
    with pytest.raises(SimulatedCrash):
        bind_devices(host.fs, writer, addrs(E1000), options)
    assert set(records(state_file)) == {E1000, RTL}  # recorded before the first write
    result = restore_devices(host.fs, FakeKernelWriter(host), None, options)
    assert result.ok, result.to_json()
    assert bindings(host) == before
    assert records(state_file) == {}


def test_restore_returns_drivers_and_drops_records(host, kernel, options, state_file):
    before = bindings(host)
    bind_devices(host.fs, kernel, addrs(GPU), options)
    result = restore_devices(host.fs, kernel, addrs(GPU), options)
    assert [(d.address, d.action, d.to_driver) for d in result.devices] == [
        (GPU, "restored", "nouveau"),
        (GPU_AUDIO, "restored", "snd_hda_intel"),  # companions come back with their target
    ]
    assert bindings(host) == before
    assert records(state_file) == {}
    assert not (host.root / "dev/vfio/51").exists()


@pytest.mark.parametrize(
    ("bound", "restored", "along"),
    [
        ((E1000,), RTL, E1000),  # the companion alone: its target comes back too
        ((E1000,), E1000, RTL),  # the target: its companion comes back too
        ((E1000, RTL), RTL, E1000),  # both named at bind: the same IOMMU group still
    ],
    ids=["companion-brings-target", "target-brings-companion", "group-member"],
)
def test_restoring_one_member_restores_the_whole_group(
    host, kernel, options, state_file, bound, restored, along
):
    before = bindings(host)
    assert bind_devices(host.fs, kernel, addrs(*bound), options).ok
    result = restore_devices(host.fs, kernel, addrs(restored), options)
    assert result.ok
    assert [(d.address, d.action) for d in result.devices] == [
        (restored, "restored"),
        (along, "restored"),
    ]
    assert result.notes == [
        f"restoring {restored} restores {along} too: an IOMMU group is handed to VFIO whole, "
        "so its recorded members come back together"
    ]
    assert bindings(host) == before
    assert records(state_file) == {}


def test_restore_twice_is_harmless(host, kernel, options):
    bind_devices(host.fs, kernel, addrs(E1000), options)
    restore_devices(host.fs, kernel, addrs(E1000, RTL), options)
    again = restore_devices(host.fs, kernel, addrs(E1000, RTL), options)
    assert again.ok
    assert [d.action for d in again.devices] == ["not-recorded", "not-recorded"]


def test_restore_with_driver_unloaded_falls_back_to_probe_and_reports(
    host, kernel, options, state_file
):
    bind_devices(host.fs, kernel, addrs(NVME), options)
    (host.root / "sys/bus/pci/drivers/nvme/bind").unlink()
    for name in list((host.root / "sys/bus/pci/drivers/nvme").iterdir()):
        name.unlink()
    (host.root / "sys/bus/pci/drivers/nvme").rmdir()
    result = restore_devices(host.fs, kernel, addrs(NVME), options)
    assert [d.action for d in result.devices] == ["failed"]
    assert "nvme is not loaded" in result.devices[0].reason
    assert kernel.writes[-1][0].endswith("drivers_probe")
    assert NVME in records(state_file)  # kept for a later restore


@pytest.mark.parametrize(
    ("named", "dry_run", "action", "reason", "kept"),
    [
        (True, False, "forgotten", "not on this host any more: record dropped", False),
        (True, True, "planned", "not on this host any more: record to drop", True),
        (
            False,
            False,
            "failed",
            f"not on this host; record kept: `hostdev restore {NVME}` drops it",
            True,
        ),
    ],
    ids=["named-drops-the-record", "named-dry-run", "all-keeps-it-and-says-how"],
)
def test_restore_of_a_removed_device(
    host, kernel, options, state_file, named, dry_run, action, reason, kept
):
    bind_devices(host.fs, kernel, addrs(NVME), options)
    host.remove_device(NVME)
    options = replace(options, dry_run=dry_run)
    result = restore_devices(host.fs, kernel, addrs(NVME) if named else None, options)
    assert [(d.action, d.reason) for d in result.devices] == [(action, reason)]
    assert result.ok == (action != "failed")
    assert (NVME in records(state_file)) == kept


def test_unbind_leaves_no_driver_and_restore_brings_it_back(host, kernel, options):
    before = bindings(host)
    result = unbind_devices(host.fs, kernel, addrs(NVME), options)
    assert [(d.action, d.to_driver) for d in result.devices] == [("unbound", None)]
    assert host.driver_of(NVME) is None
    again = unbind_devices(host.fs, kernel, addrs(NVME), options)
    assert [d.action for d in again.devices] == ["already-unbound"]
    restore_devices(host.fs, kernel, addrs(NVME), options)
    assert bindings(host) == before


def test_unbind_clears_driver_override(host, kernel, options):
    bind_devices(host.fs, kernel, addrs(NVME), options)
    unbind_devices(host.fs, kernel, addrs(NVME), options)
    assert host.driver_of(NVME) is None
    assert (host.device_dir(NVME) / "driver_override").read_text().strip() == "(null)"


def test_dry_run_writes_nothing_and_lists_the_exact_writes(host, kernel, options, state_file):
    before = bindings(host)
    recorder = RecordingWriter()
    result = bind_devices(host.fs, recorder, addrs(E1000), replace(options, dry_run=True))
    sys = str(host.root / "sys")
    assert [(w.path, w.value) for w in result.writes] == [
        (f"{sys}/bus/pci/devices/{E1000}/driver_override", "vfio-pci"),
        (f"{sys}/bus/pci/drivers/e1000/unbind", E1000),
        (f"{sys}/bus/pci/drivers_probe", E1000),
        (f"{sys}/bus/pci/devices/{RTL}/driver_override", "vfio-pci"),
        (f"{sys}/bus/pci/drivers/8139cp/unbind", RTL),
        (f"{sys}/bus/pci/drivers_probe", RTL),
    ]
    assert recorder.writes == [(w.path, w.value) for w in result.writes]
    assert [d.action for d in result.devices] == ["planned", "planned"]
    assert bindings(host) == before
    assert not state_file.exists()


def test_vfio_pci_is_loaded_when_missing(tmp_path, options, state_file):
    host = FakeHost(tmp_path / "bare").add_iommu()
    host.add_driver("nouveau")
    host.add_device(GPU, "10de", "1eb8", "030200", driver="nouveau", iommu_group=3)
    loaded: list[tuple[str, tuple[str, ...]]] = []

    def load(module: str, params: object) -> None:
        loaded.append((module, tuple(params)))  # type: ignore[arg-type]
        host.load_vfio()

    result = bind_devices(
        host.fs, FakeKernelWriter(host), addrs(GPU), replace(options, loader=load)
    )
    assert result.ok
    assert loaded == [("vfio-pci", ())]
    assert result.commands == ["modprobe vfio-pci"]
    assert host.driver_of(GPU) == "vfio-pci"


def test_loader_that_does_not_load_fails_the_run_and_drops_its_records(
    tmp_path, options, state_file
):
    host = FakeHost(tmp_path / "bare").add_iommu()
    host.add_driver("nouveau")
    host.add_device(GPU, "10de", "1eb8", "030200", driver="nouveau", iommu_group=3)
    result = bind_devices(
        host.fs,
        FakeKernelWriter(host),
        addrs(GPU),
        replace(options, loader=lambda module, params: None),
    )
    assert [d.action for d in result.devices] == ["failed"]
    assert "vfio-pci is missing" in result.devices[0].reason
    assert host.driver_of(GPU) == "nouveau"
    assert records(state_file) == {}


def test_progress_reports_each_device(host, kernel, options):
    seen: list[tuple[str, int, int]] = []
    bind_devices(
        host.fs,
        kernel,
        addrs(E1000, NVME),
        replace(options, progress=lambda item, i, n: seen.append((item.address, i, n))),
    )
    assert seen == [(E1000, 1, 3), (RTL, 2, 3), (NVME, 3, 3)]


@pytest.mark.parametrize("present", [True, False], ids=["reset-file", "no-reset-file"])
def test_reset_device(host, kernel, present):
    if not present:
        (host.device_dir(NVME) / "reset").unlink()
        with pytest.raises(HostdevError, match="cannot be reset"):
            reset_device(host.fs, kernel, PciAddress.parse(NVME))
        return
    reset_device(host.fs, kernel, PciAddress.parse(NVME))
    assert kernel.writes == [(str(host.root / f"sys/bus/pci/devices/{NVME}/reset"), "1")]


def test_api_default_options_refuse_without_iommu(tmp_path):
    host = FakeHost(tmp_path / "h").load_vfio()
    host.add_driver("nouveau")
    host.add_device(GPU, "10de", "1eb8", "030200", driver="nouveau")
    result = bind_devices(
        host.fs, FakeKernelWriter(host), addrs(GPU), BindOptions(state_file=tmp_path / "s.json")
    )
    assert [d.action for d in result.devices] == ["refused"]
    assert "--noiommu" in result.devices[0].reason
    assert host.driver_of(GPU) == "nouveau"
