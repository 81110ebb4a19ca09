"""Plans of sysfs writes: pure functions from a device's current binding to the writes needed.

The sequences (the same ones the kernel documents for driver_override, never new_id):

- bind:    driver_override ← vfio-pci (or a VFIO variant); drivers/<current>/unbind ← ADDR;
           drivers_probe ← ADDR
- unbind:  driver_override ← "\\n" (clears it); drivers/<current>/unbind ← ADDR
- restore: driver_override ← original (or "\\n"); drivers/<current>/unbind ← ADDR;
           drivers/<original>/bind ← ADDR (drivers_probe ← ADDR when that driver is not loaded)

A write of an empty string never reaches a sysfs store function, so clearing writes "\\n".
"""

from __future__ import annotations

from dataclasses import dataclass

from hostdev.host.fs import HostFS, exists, link_name, read_text
from hostdev.host.model import VFIO_PCI, Host, PciAddress, is_vfio_driver

CLEAR = "\n"


@dataclass(frozen=True, slots=True)
class Binding:
    """A device's driver and driver_override (None when unset)."""

    driver: str | None
    override: str | None


@dataclass(frozen=True, slots=True)
class Write:
    """One sysfs write: an absolute path and the exact value."""

    path: str
    value: str


def current_binding(fs: HostFS, address: PciAddress) -> Binding:
    """Read a device's binding now (not from a snapshot): the driver link and driver_override."""
    base = fs.sys("bus", "pci", "devices", str(address))
    override = read_text(f"{base}/driver_override")
    return Binding(
        link_name(f"{base}/driver"), None if override in (None, "", "(null)") else override
    )


def _override(fs: HostFS, address: PciAddress, value: str | None) -> Write:
    return Write(
        fs.sys("bus", "pci", "devices", str(address), "driver_override"), value if value else CLEAR
    )


def _unbind(fs: HostFS, address: PciAddress, driver: str) -> Write:
    return Write(fs.sys("bus", "pci", "drivers", driver, "unbind"), str(address))


def _probe(fs: HostFS, address: PciAddress) -> Write:
    return Write(fs.sys("bus", "pci", "drivers_probe"), str(address))


def bound_already(driver: str | None, target: str) -> bool:
    """Whether a device on driver needs no move for a bind to target: it is there, or on a
    vendor's VFIO variant when plain vfio-pci is asked for (the variant adds what the device
    needs: live migration, a GPU's coherent memory)."""
    return driver == target or (target == VFIO_PCI and is_vfio_driver(driver))


def plan_bind(
    fs: HostFS, address: PciAddress, current: Binding, target: str = VFIO_PCI
) -> list[Write]:
    """Writes that move a device to target (vfio-pci or a VFIO variant); none when it is
    bound already in the sense of `bound_already`."""
    if bound_already(current.driver, target):
        return []
    writes = [] if current.override == target else [_override(fs, address, target)]
    if current.driver is not None:
        writes.append(_unbind(fs, address, current.driver))
    writes.append(_probe(fs, address))
    return writes


def plan_unbind(fs: HostFS, address: PciAddress, current: Binding) -> list[Write]:
    """Writes that leave a device with no driver and no driver_override."""
    writes = [_override(fs, address, None)] if current.override is not None else []
    if current.driver is not None:
        writes.append(_unbind(fs, address, current.driver))
    return writes


def plan_restore(
    fs: HostFS, address: PciAddress, current: Binding, target: Binding, *, target_loaded: bool
) -> list[Write]:
    """Writes that return a device from its current binding to a recorded one."""
    writes = []
    if current.override != target.override:
        writes.append(_override(fs, address, target.override))
    if current.driver == target.driver:
        return writes
    if current.driver is not None:
        writes.append(_unbind(fs, address, current.driver))
    if target.driver is not None:
        writes.append(
            Write(fs.sys("bus", "pci", "drivers", target.driver, "bind"), str(address))
            if target_loaded
            else _probe(fs, address)
        )
    return writes


def driver_loaded(fs: HostFS, driver: str) -> bool:
    """Whether /sys/bus/pci/drivers/<driver> exists."""
    return exists(fs.sys("bus", "pci", "drivers", driver))


def companions(host: Host, address: PciAddress, excluded: set[PciAddress]) -> list[PciAddress]:
    """Other members of the device's IOMMU group that keep it from being viable; a bridge among
    them is listed too, for the guards to refuse."""
    group = host.group_of(address)
    if group is None:
        return []
    return [
        member
        for member, _ in host.group_viability(group.number).blockers
        if member != address and member not in excluded
    ]
