"""SR-IOV writes against the fake kernel: VFs and groups come and go, errors read plainly."""

import errno
import shutil
from pathlib import Path

import pytest

from hostdev.errors import BadInputError, HostdevError, HostWriteError
from hostdev.host.model import VFIO_PCI, PciAddress
from hostdev.host.scan import scan_host
from hostdev.host.writer import SysfsWriter
from hostdev.sriov import (
    BindVf,
    SetNumVfs,
    VfProgress,
    Waiter,
    execute,
    explain_write_error,
    plan_bind,
    plan_numvfs,
    read_vfs,
)
from hostdev.sriov_apply import SriovSpec, apply_sriov
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

NVME_PF = "0000:06:00.0"  # the NVMe PF of the nvme fixture

PF0 = PciAddress.parse("0000:04:00.0")
PF1 = PciAddress.parse("0000:04:00.1")


def test_vfs_and_their_groups_appear_and_vanish(nic: FakeHost, kernel: FakeKernelWriter) -> None:
    before = scan_host(nic.fs)
    execute(nic.fs, kernel, plan_numvfs(before.devices[PF0], 3))
    host = scan_host(nic.fs)
    vfs = host.devices[PF0].sriov.vfs  # type: ignore[union-attr]
    assert [str(v) for v in vfs] == ["0000:04:10.0", "0000:04:10.2", "0000:04:10.4"]
    groups = {host.devices[v].iommu_group for v in vfs}
    assert len(groups) == 3 and not groups & set(before.groups)
    assert all(host.devices[v].physfn == PF0 for v in vfs)
    execute(nic.fs, kernel, plan_numvfs(host.devices[PF0], 0))
    after = scan_host(nic.fs)
    assert after.devices[PF0].sriov.num_vfs == 0  # type: ignore[union-attr]
    assert not any(v in after.devices for v in vfs)
    assert set(after.groups) == set(before.groups)


def test_changing_a_count_goes_through_zero_on_the_kernel(
    nic: FakeHost, kernel: FakeKernelWriter
) -> None:
    execute(nic.fs, kernel, plan_numvfs(scan_host(nic.fs).devices[PF1], 2))
    assert [v for p, v in kernel.writes if p.endswith("sriov_numvfs")] == ["0", "2"]
    assert scan_host(nic.fs).devices[PF1].sriov.num_vfs == 2  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("action", "prepare", "error", "text"),
    [
        (SetNumVfs(PF1, 3), None, HostdevError, "refused sriov_numvfs=3: device or resource busy"),
        (SetNumVfs(PF0, 9), None, BadInputError, "refused 9 VFs: more than sriov_totalvfs"),
        (
            SetNumVfs(PF0, 2, "020000"),
            "unbind",
            HostdevError,
            "PF 0000:04:00.0 has no driver: bind it to its driver (e.g. igb",
        ),
    ],
    ids=["EBUSY", "ERANGE", "ENOENT"],
)
def test_kernel_refusals_read_plainly(
    nic: FakeHost,
    kernel: FakeKernelWriter,
    action: SetNumVfs,
    prepare: str | None,
    error: type,
    text: str,
) -> None:
    if prepare == "unbind":
        nic.unbind(str(PF0))
    with pytest.raises(error) as err:
        execute(nic.fs, kernel, [action])
    assert text in str(err.value)
    assert isinstance(err.value.__cause__, HostWriteError)


def test_enoent_on_an_nvme_pf_names_nvme(nvme: FakeHost) -> None:
    nvme.unbind(NVME_PF)
    with pytest.raises(HostdevError, match=r"has no driver: bind it to its driver \(e.g. nvme\)"):
        execute(
            nvme.fs, FakeKernelWriter(nvme), [SetNumVfs(PciAddress.parse(NVME_PF), 2, "010802")]
        )


@pytest.mark.parametrize("fake_kernel", [False, True], ids=["sysfs-writer", "fake-kernel"])
def test_a_pf_gone_before_the_write_is_not_called_driverless(
    nic: FakeHost, fake_kernel: bool
) -> None:
    action = plan_numvfs(scan_host(nic.fs).devices[PF0], 2)
    nic.remove_device(str(PF0))  # hot-removed after the plan: open() fails with ENOENT
    with pytest.raises(HostdevError) as err:
        execute(nic.fs, FakeKernelWriter(nic) if fake_kernel else SysfsWriter(), action)
    assert str(err.value).startswith("PF 0000:04:00.0 has left the host (")
    assert "has no driver" not in str(err.value)
    assert isinstance(err.value.__cause__, HostWriteError)
    assert err.value.__cause__.errno == errno.ENOENT


@pytest.mark.parametrize(
    ("code", "text"),
    [(errno.EINVAL, "Invalid argument"), (errno.EIO, "Input/output error")],
    ids=["EINVAL", "EIO"],
)
def test_other_errors_keep_the_kernel_reason(
    nic: FakeHost, kernel: FakeKernelWriter, code: int, text: str
) -> None:
    kernel.fail_on["sriov_numvfs"] = code
    with pytest.raises(HostdevError, match=text):
        execute(nic.fs, kernel, [SetNumVfs(PF0, 1)])


def test_bind_failure_names_the_vf(nic: FakeHost, kernel: FakeKernelWriter) -> None:
    kernel.fail_on["drivers_probe"] = errno.ENODEV
    vf = PciAddress.parse("0000:04:10.1")
    with pytest.raises(HostdevError, match=r"binding VF 0000:04:10\.1 to igbvf failed"):
        execute(nic.fs, kernel, [BindVf(vf, "igbvf", VFIO_PCI)])


def test_explain_unknown_action_error() -> None:
    err = HostWriteError("/sys/x", "1", errno.EPERM, "Operation not permitted")
    assert "Operation not permitted" in str(explain_write_error(SetNumVfs(PF0, 1), err))


def test_bind_new_vfs_to_vfio(nic: FakeHost, kernel: FakeKernelWriter) -> None:
    execute(nic.fs, kernel, plan_numvfs(scan_host(nic.fs).devices[PF0], 2))
    host = scan_host(nic.fs)
    assert {host.devices[v].driver for v in host.devices[PF0].sriov.vfs} == {"igbvf"}  # type: ignore[union-attr]
    execute(nic.fs, kernel, plan_bind(host, PF0, VFIO_PCI))
    host = scan_host(nic.fs)
    for vf in host.devices[PF0].sriov.vfs:  # type: ignore[union-attr]
        assert host.devices[vf].driver == VFIO_PCI
        assert host.groups[host.devices[vf].iommu_group].vfio_node  # type: ignore[index]


def test_autoprobe_off_leaves_new_vfs_driverless(nic: FakeHost, kernel: FakeKernelWriter) -> None:
    execute(nic.fs, kernel, plan_numvfs(scan_host(nic.fs).devices[PF0], 2, autoprobe=False))
    assert [d for _, d in read_vfs(nic.fs, PF0)] == [None, None]


def test_read_vfs_passes_over_a_link_name_the_kernel_never_writes(
    nic: FakeHost, kernel: FakeKernelWriter
) -> None:
    execute(nic.fs, kernel, plan_numvfs(scan_host(nic.fs).devices[PF0], 2, autoprobe=False))
    (nic.device_dir(str(PF0)) / "virtfn\u00b2").symlink_to("../0000:04:10.2")
    assert [vf for vf, _ in read_vfs(nic.fs, PF0)] == ["0000:04:10.0", "0000:04:10.2"]


# -- waiting ------------------------------------------------------------------------------
class SlowDrivers:
    """A clock and a sleep in which one VF's driver binds per poll (like ~0.3 s per VF)."""

    def __init__(self, host: FakeHost, vfs: list[str], driver: str | None) -> None:
        self.host, self.pending, self.driver, self.now = host, list(vfs), driver, 0.0

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += 0.3
        if self.pending and self.driver:
            self.host.bind(self.pending.pop(0), self.driver)


def test_wait_reports_progress_as_drivers_bind(nic: FakeHost) -> None:
    vfs = nic.create_vfs(str(PF0), 3)
    slow = SlowDrivers(nic, vfs, "igbvf")
    seen: list[VfProgress] = []
    waiter = Waiter(timeout=10, clock=slow.clock, sleep=slow.sleep)
    final = waiter.wait(nic.fs, PF0, 3, expect_drivers=True, on_progress=seen.append)
    assert final == VfProgress(3, 3, 3)
    assert [p.bound for p in seen] == [0, 1, 2, 3]


def test_wait_settles_when_no_driver_comes(nic: FakeHost) -> None:
    nic.create_vfs(str(PF0), 2)
    slow = SlowDrivers(nic, [], None)
    waiter = Waiter(timeout=10, settle=1.0, clock=slow.clock, sleep=slow.sleep)
    assert waiter.wait(nic.fs, PF0, 2, expect_drivers=True) == VfProgress(2, 0, 2)
    assert 1.0 <= slow.now < 2.0


class FailingProbe(SlowDrivers):
    """A VF's driver binds on the first poll and gives it up two polls later (its probe
    failed, as nvme's does on the real-kernel guest's VFs)."""

    polls = 0

    def sleep(self, seconds: float) -> None:
        self.now += 0.3
        self.polls += 1
        if self.polls == 1:
            self.host.bind(self.pending[0], "nvme")
        elif self.polls == 3:
            self.host.unbind(self.pending[0])


def test_wait_outlasts_a_driver_that_gives_the_vf_up(nic: FakeHost) -> None:
    vfs = nic.create_vfs(str(PF0), 1)
    slow = FailingProbe(nic, vfs, None)
    seen: list[VfProgress] = []
    waiter = Waiter(timeout=10, settle=1.0, clock=slow.clock, sleep=slow.sleep)
    final = waiter.wait(nic.fs, PF0, 1, expect_drivers=True, on_progress=seen.append)
    assert [p.bound for p in seen] == [0, 1, 0]
    assert final == VfProgress(1, 0, 1)


def test_wait_times_out_with_counts(nic: FakeHost) -> None:
    slow = SlowDrivers(nic, [], None)
    waiter = Waiter(timeout=2, clock=slow.clock, sleep=slow.sleep)
    with pytest.raises(HostdevError, match=r"timed out after 2s .* 0/4 present, 0 with a driver"):
        waiter.wait(nic.fs, PF0, 4, expect_drivers=False)


# -- declarative apply --------------------------------------------------------------------
def test_apply_creates_and_binds_then_is_idempotent(
    nic: FakeHost, kernel: FakeKernelWriter
) -> None:
    specs = [SriovSpec("enp4s0f0", 3, VFIO_PCI), SriovSpec("enp4s0f1", 7, VFIO_PCI)]
    report = apply_sriov(nic.fs, kernel, specs)
    assert report.problems == []
    assert sum(isinstance(a, BindVf) for a in report.done) == 3
    host = scan_host(nic.fs)
    assert [host.devices[v].driver for v in host.devices[PF0].sriov.vfs] == [VFIO_PCI] * 3  # type: ignore[union-attr]
    writes = len(kernel.writes)
    assert apply_sriov(nic.fs, kernel, specs).done == []
    assert len(kernel.writes) == writes


def test_apply_restores_a_reset_pf(nic: FakeHost, kernel: FakeKernelWriter) -> None:
    nic.destroy_vfs(str(PF1))  # a driver reload drops the VFs
    report = apply_sriov(nic.fs, kernel, [SriovSpec("enp4s0f1", 7, VFIO_PCI)])
    assert report.problems == []
    host = scan_host(nic.fs)
    assert host.devices[PF1].sriov.num_vfs == 7  # type: ignore[union-attr]
    assert {host.devices[v].driver for v in host.devices[PF1].sriov.vfs} == {VFIO_PCI}  # type: ignore[union-attr]


def test_apply_isolates_failures_per_pf(
    nic: FakeHost, kernel: FakeKernelWriter, tmp_path: Path
) -> None:
    nic.unbind(str(PF0))
    report = apply_sriov(
        nic.fs, kernel, [SriovSpec("enp4s0f0", 2), SriovSpec("eth9", 1), SriovSpec("enp4s0f1", 4)]
    )
    reasons = " | ".join(p.reason for p in report.problems)
    assert "has no driver" in reasons and "eth9" in reasons
    assert scan_host(nic.fs).devices[PF1].sriov.num_vfs == 4  # type: ignore[union-attr]


def test_apply_reports_a_write_the_kernel_refuses(nic: FakeHost, kernel: FakeKernelWriter) -> None:
    kernel.fail_on["0000:04:00.0/sriov_numvfs"] = errno.EIO
    report = apply_sriov(nic.fs, kernel, [SriovSpec("enp4s0f0", 2)])
    assert report.done == [] and "Input/output error" in report.problems[0].reason


def test_apply_tries_a_failing_bind_once(nic: FakeHost, kernel: FakeKernelWriter) -> None:
    kernel.fail_on["0000:04:10.1/driver_override"] = errno.EIO
    specs = [SriovSpec("enp4s0f1", 7, "igbvf"), SriovSpec("enp4s0f0", 2, VFIO_PCI)]
    report = apply_sriov(nic.fs, kernel, specs)
    assert [p.pf for p in report.problems] == ["0000:04:10.1"]
    assert sum(p.endswith("0000:04:10.1/driver_override") for p, _ in kernel.writes) == 1
    assert sum(isinstance(a, BindVf) for a in report.done) == 6 + 2


class ProbesInFlight(FakeKernelWriter):
    """Autoprobe as it runs on a real kernel, after the write that creates the VFs: each new
    VF gets its host driver at a later poll of the wait, or, racing a bind, just before that
    bind's driver_override write (the probe had matched before the override was set)."""

    in_flight: list[str]

    def write(self, path: str, value: str) -> None:
        for vf in [v for v in getattr(self, "in_flight", []) if f"/{v}/" in path]:
            self.finish_probe(vf)
        super().write(path, value)
        if path.endswith("sriov_numvfs") and value != "0":
            vfs = [vf for vf, driver in read_vfs(self.host.fs, PF0) if driver]
            for vf in vfs:
                self.host.unbind(vf)
            self.in_flight = vfs

    def finish_probe(self, vf: str) -> None:
        self.in_flight.remove(vf)
        self.host.bind(vf, "igbvf")

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        if self.in_flight:
            self.finish_probe(self.in_flight[0])

    now = 0.0


def test_apply_binds_after_the_host_drivers_probe_settles(nic: FakeHost) -> None:
    kernel = ProbesInFlight(nic)
    waiter = Waiter(timeout=10, settle=1.0, clock=lambda: kernel.now, sleep=kernel.sleep)
    report = apply_sriov(nic.fs, kernel, [SriovSpec("enp4s0f0", 3, VFIO_PCI)], waiter=waiter)
    assert report.problems == []
    host = scan_host(nic.fs)
    assert [host.devices[v].driver for v in host.devices[PF0].sriov.vfs] == [VFIO_PCI] * 3  # type: ignore[union-attr]


def test_apply_reports_a_vf_the_bind_left_on_another_driver(
    nic: FakeHost, kernel: FakeKernelWriter
) -> None:
    nic.create_vfs(str(PF0), 2)
    shutil.rmtree(nic.root / "sys/bus/pci/drivers" / VFIO_PCI)  # not loaded: the probe binds none
    report = apply_sriov(nic.fs, kernel, [SriovSpec("enp4s0f0", 2, VFIO_PCI)])
    assert [p.reason for p in report.problems] == [
        f"VF {vf} is on no driver after the writes, not vfio-pci"
        for vf in ("0000:04:10.0", "0000:04:10.2")
    ]
