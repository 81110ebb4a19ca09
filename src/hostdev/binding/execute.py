"""Running bind, unbind and restore: guards, state records, writes, verification, rollback.

A bind run is all-or-nothing. Guards are checked for every device (targets and the IOMMU
group companions that must join them) before anything is written; one refusal refuses the
run. Each device's original binding is recorded in the state file before its first write. If
a write fails, every device this run changed is put back (newest first) and the records this
run added are dropped; if that rollback fails too, the records stay so that `hostdev restore`
can finish the job. Restore handles devices one by one: one failure does not stop the others.
"""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hostdev.binding import guards
from hostdev.binding.modules import (
    ModuleLoader,
    ensure_vfio,
    modprobe,
    noiommu_on,
    noiommu_value,
    put_back_noiommu,
)
from hostdev.binding.plan import (
    Binding,
    Write,
    bound_already,
    companions,
    current_binding,
    driver_loaded,
    plan_bind,
    plan_restore,
    plan_unbind,
)
from hostdev.binding.state import (
    DEFAULT_STATE_FILE,
    DeviceRecord,
    NoiommuRecord,
    StateFile,
    now_utc,
)
from hostdev.errors import BadInputError, DeviceNotFoundError, HostdevError, HostWriteError
from hostdev.host.fs import HostFS, exists
from hostdev.host.model import VFIO_PCI, Host, PciAddress, is_vfio_driver
from hostdev.host.scan import scan_host
from hostdev.host.writer import HostWriter, RecordingWriter

FAILED_ACTIONS = frozenset({"refused", "failed", "rolled-back", "rollback-failed", "skipped"})
Step = tuple[PciAddress, PciAddress | None]  # (device, the target it joins as a companion)


@dataclass(frozen=True)
class BindOptions:
    """How a run behaves; the defaults are the safe ones."""

    force: bool = False
    noiommu: bool = False
    dry_run: bool = False
    state_file: Path = DEFAULT_STATE_FILE
    loader: ModuleLoader = modprobe
    ipv4_probe: guards.Ipv4Probe | None = None  # None: guards.default_ipv4_probe(fs)
    progress: Callable[[DeviceResult, int, int], None] | None = None
    lock_wait: Callable[[Path], None] | None = None  # told when another run holds the lock
    # what bind moves the named devices to; their group companions always go to vfio-pci (a
    # variant's probe expects its own hardware)
    driver: str = VFIO_PCI

    def __post_init__(self) -> None:
        if not is_vfio_driver(self.driver):
            raise BadInputError(
                f"cannot bind to {self.driver!r}: hostdev binds to vfio-pci or a vendor's VFIO "
                "variant of it (a driver named *_vfio_pci, such as mlx5_vfio_pci)"
            )


@dataclass
class DeviceResult:
    """What happened to one device."""

    address: str
    from_driver: str | None
    to_driver: str | None
    action: str
    companions: tuple[str, ...] = ()
    companion_of: str | None = None
    reason: str = ""
    forceable: bool = False  # refused only for reasons --force overrides

    def to_json(self) -> dict[str, Any]:
        """The -o json form of one device."""
        return {
            "address": self.address,
            "from": self.from_driver,
            "to": self.to_driver,
            "action": self.action,
            "companions": list(self.companions),
            "companion_of": self.companion_of,
            "reason": self.reason,
        }


@dataclass
class BindResult:
    """The outcome of one bind, unbind or restore run."""

    command: str
    dry_run: bool
    devices: list[DeviceResult] = field(default_factory=list)
    writes: list[Write] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what the run did besides the devices
    errors: list[str] = field(default_factory=list)  # what failed besides the devices

    @property
    def ok(self) -> bool:
        """True when no device was refused, failed or rolled back, and nothing else failed."""
        return not self.errors and not any(d.action in FAILED_ACTIONS for d in self.devices)

    def to_json(self) -> dict[str, Any]:
        """The -o json document."""
        return {
            "command": self.command,
            "dry_run": self.dry_run,
            "ok": self.ok,
            "devices": [d.to_json() for d in self.devices],
            "writes": [{"path": w.path, "value": w.value} for w in self.writes],
            "commands": self.commands,
            "warnings": self.warnings,
            "notes": self.notes,
            "errors": self.errors,
        }


@dataclass
class Run:
    """Working state of one run: the snapshot, the recording writer, the locked state file
    (None in a dry run, which records nothing), what was changed."""

    fs: HostFS
    host: Host
    writer: RecordingWriter
    options: BindOptions
    result: BindResult
    state: StateFile | None
    touched: list[PciAddress] = field(default_factory=list)
    noiommu_journal: NoiommuRecord | None = None  # no-IOMMU mode's value this run recorded

    def write_all(self, writes: Sequence[Write]) -> None:
        for w in writes:
            try:
                self.writer.write(w.path, w.value)
            except HostWriteError as err:
                if not _driver_let_go(self.fs, w, err):
                    raise

    def original(self, address: PciAddress) -> Binding:
        device = self.host.device(address)  # None: a group member the scan could not read
        return Binding(device.driver, device.driver_override) if device else Binding(None, None)

    def report(self, item: DeviceResult, total: int) -> None:
        self.result.devices.append(item)
        if self.options.progress is not None:
            self.options.progress(item, len(self.result.devices), total)


def _driver_let_go(fs: HostFS, write: Write, err: HostWriteError) -> bool:
    """Whether the kernel refused an unbind (ENODEV) because that driver had already let go
    of the device, e.g. a new VF whose probe failed meanwhile: what the write was for is done."""
    path = Path(write.path)
    if err.errno != errno.ENODEV or path.name != "unbind" or path.parent.parent.name != "drivers":
        return False
    return current_binding(fs, PciAddress.parse(write.value)).driver != path.parent.name


@contextlib.contextmanager
def locked_run(fs: HostFS, writer: HostWriter, command: str, options: BindOptions) -> Iterator[Run]:
    """A run that holds the state file's lock (a dry run takes none) and only then scans the
    host: its guards, records and rollback targets see what no other hostdev run is changing."""
    state = None if options.dry_run else StateFile(options.state_file)
    with state.locked(options.lock_wait) if state else contextlib.nullcontext():
        result = BindResult(command, options.dry_run)
        yield Run(fs, scan_host(fs), RecordingWriter(inner=writer), options, result, state)


def finish_run(run: Run) -> BindResult:
    run.result.writes = [Write(p, v) for p, v in run.writer.writes]
    return run.result


def check_present(host: Host, addresses: Sequence[PciAddress]) -> None:
    for address in addresses:
        if address not in host.devices:
            raise DeviceNotFoundError(f"no PCI function {address} on this host")


def bind_devices(
    fs: HostFS,
    writer: HostWriter,
    addresses: Sequence[PciAddress],
    options: BindOptions | None = None,
) -> BindResult:
    """Bind devices (and the IOMMU group companions they need) to vfio-pci, all or nothing."""
    with locked_run(fs, writer, "bind", options or BindOptions()) as run:
        check_present(run.host, addresses)
        plan = _with_companions(run.host, addresses)
        if _bind_allowed(run, addresses, plan):
            _apply(run, plan, "bind")
    return finish_run(run)


def unbind_devices(
    fs: HostFS,
    writer: HostWriter,
    addresses: Sequence[PciAddress],
    options: BindOptions | None = None,
) -> BindResult:
    """Leave devices with no driver and no driver_override, all or nothing."""
    with locked_run(fs, writer, "unbind", options or BindOptions()) as run:
        check_present(run.host, addresses)
        plan: list[Step] = [(a, None) for a in addresses]
        if _guards_pass(run, plan):
            _apply(run, plan, "unbind")
    return finish_run(run)


def _with_companions(host: Host, addresses: Sequence[PciAddress]) -> list[Step]:
    """Targets, each followed by the group members that must join it: (address, companion_of)."""
    plan: list[Step] = []
    seen = set(addresses)
    for address in addresses:
        plan.append((address, None))
        if host.devices[address].is_bridge:
            continue  # refused anyway; its group members are not its companions
        for member in companions(host, address, seen):
            plan.append((member, address))
            seen.add(member)
    return plan


def _bind_allowed(run: Run, addresses: Sequence[PciAddress], plan: list[Step]) -> bool:
    if not guards.iommu_enabled(run.fs) and not run.options.noiommu:
        refusals = [guards.Refusal(a, guards.NOIOMMU_EXPLANATION, False) for a in addresses]
        _refuse_all(run, plan, refusals)
        return False
    return _guards_pass(run, plan)


def _guards_pass(run: Run, plan: list[Step]) -> bool:
    probe = run.options.ipv4_probe or guards.default_ipv4_probe(run.fs)
    refusals = guards.check_all(run.fs, run.host, [a for a, _ in plan], probe)
    blocking = [r for r in refusals if not (r.forceable and run.options.force)]
    if blocking:
        _refuse_all(run, plan, blocking)
        return False
    run.result.warnings += [f"forced: {r.reason}" for r in refusals]
    return True


def _refuse_all(run: Run, plan: list[Step], refusals: list[guards.Refusal]) -> None:
    by_device: dict[PciAddress, list[guards.Refusal]] = {}
    for refusal in refusals:
        by_device.setdefault(refusal.address, []).append(refusal)
    for step in plan:
        own = by_device.get(step[0], [])
        if own:
            item = _unchanged(run, step, "refused", "; ".join(r.reason for r in own))
            item.forceable = all(r.forceable for r in own)
        else:
            item = _unchanged(run, step, "skipped", "not changed: another device was refused")
        run.report(item, len(plan))


def _apply(run: Run, plan: list[Step], command: str) -> None:
    fresh = _record(run, plan, command)
    done: list[DeviceResult] = []
    try:
        if command == "bind":
            _load_vfio(run)
        for address, companion_of in plan:
            item = _change(run, address, companion_of, command, plan)
            done.append(item)
            run.report(item, len(plan))
    except (HostdevError, KeyboardInterrupt) as err:
        _rollback(run, plan, done, err, fresh)
        if isinstance(err, KeyboardInterrupt):
            raise


def _load_vfio(run: Run) -> None:
    """Load vfio-pci when missing and turn no-IOMMU mode on for --noiommu (recorded first)."""
    options = run.options
    run.result.commands = ensure_vfio(
        run.fs,
        run.writer,
        options.loader,
        noiommu=options.noiommu,
        dry_run=options.dry_run,
        variant=None if options.driver == VFIO_PCI else options.driver,
    )


def _record(run: Run, plan: list[Step], command: str) -> list[str]:
    """Record every device's original binding (and the no-IOMMU mode's value, when this run
    turns it on) before the first write; returns the addresses recorded now."""
    if run.state is None:
        return []
    noiommu = command == "bind" and run.options.noiommu
    records = {}
    for address, companion_of in plan:
        device = run.host.devices[address]
        if command == "bind" and bound_already(device.driver, _target(run, companion_of)):
            continue
        records[str(address)] = DeviceRecord(
            device.driver,
            device.driver_override,
            device.vendor_device,
            _opt(companion_of),
            command,
            now_utc(),
            noiommu,
        )
    run.noiommu_journal = _noiommu_journal(run.fs, run.state) if noiommu else None
    return run.state.add(records, run.noiommu_journal)


def _noiommu_journal(fs: HostFS, state: StateFile) -> NoiommuRecord | None:
    """The no-IOMMU mode's value to record before turning it on: none when it is on already
    or when the state file keeps the value from before an earlier run turned it on."""
    value = noiommu_value(fs)
    if state.noiommu is not None or noiommu_on(value):
        return None
    return NoiommuRecord(value, now_utc())


def _change(
    run: Run, address: PciAddress, companion_of: PciAddress | None, command: str, plan: list[Step]
) -> DeviceResult:
    current = current_binding(run.fs, address)
    wanted = _target(run, companion_of) if command == "bind" else None
    writes = (
        plan_bind(run.fs, address, current, wanted)
        if wanted is not None
        else plan_unbind(run.fs, address, current)
    )
    joined = tuple(str(a) for a, c in plan if c == address)
    item = DeviceResult(str(address), current.driver, wanted, "", joined, _opt(companion_of))
    if not writes:
        item.to_driver = current.driver
        item.action = "already-bound" if command == "bind" else "already-unbound"
        return item
    run.touched.append(address)
    run.write_all(writes)
    if run.options.dry_run:
        item.action = "planned"
        return item
    now = current_binding(run.fs, address).driver
    if now != wanted:
        raise HostdevError(
            f"{address} is on {now or 'no driver'} after the writes, not {wanted or 'no driver'}"
        )
    item.action = "bound" if command == "bind" else "unbound"
    return item


def _target(run: Run, companion_of: PciAddress | None) -> str:
    """The driver a bind moves a device to: the asked one, vfio-pci for a companion."""
    return run.options.driver if companion_of is None else VFIO_PCI


def _opt(address: PciAddress | None) -> str | None:
    return str(address) if address else None


def _unchanged(run: Run, step: Step, action: str, reason: str) -> DeviceResult:
    """The result of a device this run did not change (refused, skipped, failed)."""
    driver = run.original(step[0]).driver
    return DeviceResult(str(step[0]), driver, driver, action, (), _opt(step[1]), reason)


def _rollback(
    run: Run,
    plan: list[Step],
    done: list[DeviceResult],
    err: BaseException,
    fresh: list[str],
) -> None:
    """Put back every device this run changed, newest first, and report what really happened."""
    failures = _undo(run)
    for item in done:
        _report_undo(run, item, failures)
    for index, step in enumerate(plan[len(done) :]):
        if index == 0:
            item = _unchanged(run, step, "failed", str(err))
            _report_undo(run, item, failures)
        else:
            item = _unchanged(run, step, "skipped", "not changed: an earlier device failed")
        run.report(item, len(plan))
    if failures:
        run.result.warnings.append(
            f"rollback incomplete: {len(failures)} device(s) could not be put back; the state "
            "file keeps their original drivers: run hostdev restore"
        )
    elif run.state is not None:
        _forget_run(run, run.state, fresh)


def _forget_run(run: Run, state: StateFile, fresh: list[str]) -> None:
    """After a complete rollback: put no-IOMMU mode back if this run turned it on, and drop
    the records this run made (the mode's previous value too, unless putting it back failed)."""
    journal = run.noiommu_journal
    problem = journal and undo_noiommu(run, journal)
    if problem:
        run.result.warnings.append(f"{problem}; run hostdev restore --all")
    state.drop(fresh, noiommu=journal is not None and not problem)


def undo_noiommu(run: Run, journal: NoiommuRecord) -> str | None:
    """Put vfio's no-IOMMU mode back as it was before hostdev turned it on; the error, if any."""
    try:
        put_back_noiommu(run.fs, run.writer, journal.previous)
    except HostdevError as err:
        return f"vfio's enable_unsafe_noiommu_mode stays on: {err}"
    return None


def _report_undo(run: Run, item: DeviceResult, failures: dict[PciAddress, str]) -> None:
    """Say where a device this run changed really is after the rollback, and why."""
    address = PciAddress.parse(item.address)
    if address not in run.touched:
        return
    item.to_driver = current_binding(run.fs, address).driver
    problem = failures.get(address)
    if item.action == "failed":  # the device whose write failed: its reason says why
        if problem is not None:
            item.reason += f"; {problem}"
        return
    item.action = "rolled-back" if problem is None else "rollback-failed"
    item.reason = problem or "put back after a later failure"


def _undo(run: Run) -> dict[PciAddress, str]:
    """Restore every touched device to its binding at the start of the run; the failures."""
    failures = {}
    for address in reversed(run.touched):
        try:
            restore_to(run, address, run.original(address))
        except HostdevError as err:
            failures[address] = (
                f"{address} could not be put back: {err}; its record is kept: run hostdev restore"
            )
    return failures


def restore_to(run: Run, address: PciAddress, target: Binding) -> list[Write]:
    """Return one device to a binding now, verify it, and give the writes issued."""
    current = current_binding(run.fs, address)
    loaded = target.driver is None or driver_loaded(run.fs, target.driver)
    writes = plan_restore(run.fs, address, current, target, target_loaded=loaded)
    run.write_all(writes)
    if writes and not run.options.dry_run:
        now = current_binding(run.fs, address).driver
        if now != target.driver:
            hint = "" if loaded else f" ({target.driver} is not loaded: load its module first)"
            raise HostdevError(
                f"{address} is on {now or 'no driver'} after the writes, not "
                f"{target.driver or 'no driver'}{hint}"
            )
    return writes


def reset_device(fs: HostFS, writer: HostWriter, address: PciAddress) -> None:
    """Reset a function through sysfs `reset` (function-level or the kernel's best method)."""
    path = fs.sys("bus", "pci", "devices", str(address), "reset")
    if not exists(path):
        raise HostdevError(
            f"{address} cannot be reset: the kernel offers no reset method for it (no {path})"
        )
    writer.write(path, "1")
