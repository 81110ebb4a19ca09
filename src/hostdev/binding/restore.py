"""Restore: return devices to the drivers recorded in the state file and drop their records.

For each device: driver_override back to its recorded value (normally cleared), unbind from
the current driver, then bind to the recorded driver (its `bind` file, or drivers_probe when
that driver is not loaded). Restoring a device also restores every recorded member of its
IOMMU group and the companions bound along with it (or that it was bound along with), as bind
moves a group to vfio-pci whole: restoring one member alone would leave the others on vfio-pci
in a group VFIO cannot use. Devices are independent: a failure keeps that device's record and
the run goes on; exit status 1 tells the caller to look.
"""

from __future__ import annotations

from collections.abc import Sequence

from hostdev.binding.execute import (
    BindOptions,
    BindResult,
    DeviceResult,
    Run,
    finish_run,
    locked_run,
    restore_to,
    undo_noiommu,
)
from hostdev.binding.plan import Binding
from hostdev.binding.state import DeviceRecord, StateFile
from hostdev.errors import HostdevError
from hostdev.host.fs import HostFS
from hostdev.host.model import Host, PciAddress
from hostdev.host.writer import HostWriter


def restore_devices(
    fs: HostFS,
    writer: HostWriter,
    addresses: Sequence[PciAddress] | None,
    options: BindOptions | None = None,
) -> BindResult:
    """Restore the given devices (None: every recorded device) to their recorded drivers."""
    with locked_run(fs, writer, "restore", options or BindOptions()) as run:
        state = run.state or StateFile.read(run.options.state_file)
        restored = _restore(run, state, addresses)
        noiommu_off = _noiommu_unneeded(run, state, restored)
        if run.state is not None:
            run.state.drop(restored, noiommu=noiommu_off)
    return finish_run(run)


def _noiommu_unneeded(run: Run, state: StateFile, restored: list[str]) -> bool:
    """Put vfio's no-IOMMU mode back once no record that needed it is left; whether it was."""
    journal = state.noiommu
    if journal is None or state.noiommu_needed(leaving=restored):
        return False
    problem = undo_noiommu(run, journal)
    if problem:
        run.result.errors.append(f"{problem}; the state file keeps its previous value")
        return False
    back = "would go back" if run.options.dry_run else "back"
    run.result.notes.append(
        f"vfio's enable_unsafe_noiommu_mode {back} to {journal.previous or 'N'}: no recorded "
        "device bound with --noiommu is left"
    )
    return True


def _restore(run: Run, state: StateFile, addresses: Sequence[PciAddress] | None) -> list[str]:
    """Restore each wanted device; returns the addresses whose records can go."""
    wanted = _wanted(run.host, state.records, addresses)
    named = {str(a) for a in addresses or ()}
    _say_what_comes_along(run, wanted)
    done = []
    for address, joined in wanted.items():
        item = _restore_one(run, address, state.records.get(address), address in named)
        if joined is not None:
            item.reason = item.reason or f"restored with {joined} (same IOMMU group)"
        run.report(item, len(wanted))
        if item.action in _RECORD_DONE:
            done.append(address)
    return done


_RECORD_DONE = frozenset({"restored", "already-restored", "planned", "forgotten"})


def _wanted(
    host: Host, records: dict[str, DeviceRecord], addresses: Sequence[PciAddress] | None
) -> dict[str, str | None]:
    """The addresses to restore, each with the named device it comes back with (None: named):
    the named ones, then every recorded device bound together with one of them."""
    if addresses is None:
        return dict.fromkeys(sorted(records))
    wanted: dict[str, str | None] = dict.fromkeys(str(a) for a in addresses)
    for named in list(wanted):
        for other in _bound_together(host, records, named):
            wanted.setdefault(other, named)
    return wanted


def _bound_together(host: Host, records: dict[str, DeviceRecord], address: str) -> list[str]:
    """The other recorded devices that come back with a recorded one: its IOMMU group's
    recorded members, and the devices a bind brought along with it (or it with), in turn."""
    seen, todo = {address}, [address]
    while todo:
        for other in _linked(host, records, todo.pop()) - seen:
            seen.add(other)
            todo.append(other)
    return sorted(seen - {address})


def _linked(host: Host, records: dict[str, DeviceRecord], address: str) -> set[str]:
    record = records.get(address)
    if record is None:
        return set()
    linked = {a for a, r in records.items() if r.companion_of == address}
    if record.companion_of in records:
        linked.add(record.companion_of)
    group = host.group_of(PciAddress.parse(address))
    return linked | {str(m) for m in (group.members if group else ()) if str(m) in records}


def _say_what_comes_along(run: Run, wanted: dict[str, str | None]) -> None:
    for named in (a for a, joined in wanted.items() if joined is None):
        along = [a for a, joined in wanted.items() if joined == named]
        if along:
            run.result.notes.append(
                f"restoring {named} restores {', '.join(along)} too: an IOMMU group is handed "
                "to VFIO whole, so its recorded members come back together"
            )


def _restore_one(run: Run, address: str, record: DeviceRecord | None, named: bool) -> DeviceResult:
    pci = PciAddress.parse(address)
    device = run.host.device(pci)
    driver = device.driver if device else None
    if record is None:
        return DeviceResult(
            address,
            driver,
            driver,
            "not-recorded",
            reason="no original driver recorded in the state file; left alone",
        )
    item = DeviceResult(address, driver, record.driver, "", (), record.companion_of)
    if device is None:
        return _absent(run, item, named)
    try:
        writes = restore_to(run, pci, Binding(record.driver, record.driver_override))
    except HostdevError as err:
        item.action, item.reason = "failed", f"{err}; record kept"
        return item
    item.action = (
        ("planned" if run.options.dry_run else "restored") if writes else "already-restored"
    )
    return item


def _absent(run: Run, item: DeviceResult, named: bool) -> DeviceResult:
    """A recorded device the scan did not find: unreadable (record kept), gone and named by
    address (its record is dropped: a device that comes back is probed afresh), or gone."""
    unreadable = run.host.skip_reason(item.address)
    item.to_driver = None
    if unreadable is not None:
        item.action = "failed"
        item.reason = f"on this host but cannot be read ({unreadable}); record kept"
    elif named and run.options.dry_run:
        item.action, item.reason = "planned", "not on this host any more: record to drop"
    elif named:
        item.action, item.reason = "forgotten", "not on this host any more: record dropped"
    else:
        item.action = "failed"
        item.reason = f"not on this host; record kept: `hostdev restore {item.address}` drops it"
    return item
