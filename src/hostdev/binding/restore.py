"""Restore: return devices to the drivers recorded in the state file and drop their records.

For each device: driver_override back to its recorded value (normally cleared), unbind from
the current driver, then bind to the recorded driver (its `bind` file, or drivers_probe when
that driver is not loaded). Restoring a device also restores the group companions that were
bound along with it. Devices are independent: a failure keeps that device's record and the
run goes on; exit status 1 tells the caller to look.
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
from hostdev.host.model import PciAddress
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
    run.result.notes.append(
        f"vfio's enable_unsafe_noiommu_mode back to {journal.previous or 'N'}: no recorded "
        "device bound with --noiommu is left"
    )
    return True


def _wanted(records: dict[str, DeviceRecord], addresses: Sequence[PciAddress] | None) -> list[str]:
    """The addresses to restore: the given ones plus the companions recorded with them."""
    if addresses is None:
        return sorted(records)
    wanted = [str(a) for a in addresses]
    for address, record in sorted(records.items()):
        if record.companion_of in wanted and address not in wanted:
            wanted.append(address)
    return wanted


def _restore(run: Run, state: StateFile, addresses: Sequence[PciAddress] | None) -> list[str]:
    wanted = _wanted(state.records, addresses)
    restored = []
    for address in wanted:
        item = _restore_one(run, address, state.records.get(address))
        run.report(item, len(wanted))
        if item.action in ("restored", "already-restored"):
            restored.append(address)
    return restored


def _restore_one(run: Run, address: str, record: DeviceRecord | None) -> DeviceResult:
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
        item.action, item.reason = "failed", "not present on this host; record kept"
        return item
    try:
        writes = restore_to(run, pci, Binding(record.driver, record.driver_override))
    except HostdevError as err:
        item.action, item.reason = "failed", f"{err}; record kept"
        return item
    item.action = (
        ("planned" if run.options.dry_run else "restored") if writes else "already-restored"
    )
    return item
