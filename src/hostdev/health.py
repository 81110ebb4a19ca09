"""Device health: a pure decision from host snapshots and AER counters, never from usage.

A served device is Healthy unless one of these holds (checked in this order, first reason wins):

- PCI function: removed from the bus; bound to another driver than a VFIO one (or to none);
  its ``/dev/vfio/<group>`` node vanished; its AER fatal counter rose above the baseline.
- mdev: removed; its parent function removed; its ``/dev/vfio/<group>`` node vanished; the
  parent's AER fatal counter rose.

AER baselines: the fatal count seen when a device is first served healthy is its baseline, so
errors from before the daemon started do not condemn a device that has since recovered. A rise
makes the device Unhealthy until it leaves (removed, or unbound from VFIO) and comes back; the
kernel re-initialises it then, and the count at that moment becomes the new baseline.

Whether a pod holds the device plays no part: the kubelet keeps allocations of unhealthy
devices and only stops handing them out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace

from hostdev.errors import BadInputError
from hostdev.host.model import VFIO_PCI, Host, PciAddress, is_vfio_driver
from hostdev.selection import Resource

HEALTHY = "Healthy"  # the only string the kubelet counts as healthy
UNHEALTHY = "Unhealthy"


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """A device's health and, when unhealthy, the reason in a few words."""

    healthy: bool
    reason: str = ""

    @property
    def state(self) -> str:
        """The kubelet's string: "Healthy" or "Unhealthy"."""
        return HEALTHY if self.healthy else UNHEALTHY


OK = DeviceHealth(True)


@dataclass(frozen=True, slots=True)
class Transition:
    """One device whose health changed between two assessments."""

    device_id: str
    before: DeviceHealth
    after: DeviceHealth


@dataclass(frozen=True)
class HealthView:
    """The health of every served device plus the AER baselines carried to the next round."""

    states: Mapping[str, DeviceHealth] = field(default_factory=dict)
    aer_baseline: Mapping[PciAddress, int] = field(default_factory=dict)

    def of(self, device_id: str) -> DeviceHealth:
        """A device's health; an unknown device counts as healthy (it was never judged)."""
        return self.states.get(device_id, OK)


@dataclass(frozen=True)
class Signals:
    """Facts read beside the scan: AER fatal totals and the /dev/vfio/<group> nodes present."""

    aer_fatal: Mapping[PciAddress, int] = field(default_factory=dict)
    vfio_nodes: AbstractSet[int] = frozenset()


def pci_health(
    address: PciAddress, host: Host, signals: Signals, baseline: int | None
) -> DeviceHealth:
    """The health of one PCI function in a snapshot, given its AER baseline."""
    dev = host.device(address)
    if dev is None:
        return DeviceHealth(False, "removed from the bus")
    if dev.driver is None:
        return DeviceHealth(False, "unbound (no driver)")
    if not is_vfio_driver(dev.driver):
        return DeviceHealth(False, f"bound to {dev.driver}, not {VFIO_PCI}")
    if dev.iommu_group is None:
        return DeviceHealth(False, "no IOMMU group")
    if dev.iommu_group not in signals.vfio_nodes:
        return DeviceHealth(False, f"/dev/vfio/{dev.iommu_group} vanished")
    return _aer_health(signals.aer_fatal.get(address), baseline)


def mdev_health(
    uuid: str, host: Host, signals: Signals, parent_baseline: int | None
) -> DeviceHealth:
    """The health of one mdev, given the AER baseline of its parent function."""
    mdev = host.mdevs_by_uuid.get(uuid)
    if mdev is None:
        return DeviceHealth(False, "mdev removed")
    if host.device(mdev.parent) is None:
        return DeviceHealth(False, f"parent {mdev.parent} removed from the bus")
    if mdev.iommu_group is None or mdev.iommu_group not in signals.vfio_nodes:
        return DeviceHealth(False, f"/dev/vfio/{mdev.iommu_group} vanished")
    parent = _aer_health(signals.aer_fatal.get(mdev.parent), parent_baseline)
    return (
        parent if parent.healthy else DeviceHealth(False, f"parent {mdev.parent}: {parent.reason}")
    )


def _aer_health(count: int | None, baseline: int | None) -> DeviceHealth:
    if count is not None and baseline is not None and count > baseline:
        return DeviceHealth(False, f"AER fatal errors rose from {baseline} to {count}")
    return OK


def assess(previous: HealthView, host: Host, served: Iterable[str], signals: Signals) -> HealthView:
    """Judge every served ID (PCI addresses or mdev UUIDs) against a new snapshot."""
    baselines: dict[PciAddress, int] = {}
    states: dict[str, DeviceHealth] = {}
    for device_id in served:
        address = _address_or_none(device_id)
        if address is not None:
            baseline = _baseline(address, previous, signals)
            states[device_id] = pci_health(address, host, signals, baseline)
            dev = host.device(address)
            keep = dev is not None and is_vfio_driver(dev.driver)
        else:
            mdev = host.mdevs_by_uuid.get(device_id)
            address = mdev.parent if mdev is not None else None
            baseline = _baseline(address, previous, signals) if address else None
            states[device_id] = mdev_health(device_id, host, signals, baseline)
            keep = address is not None and host.device(address) is not None
        if keep and address is not None and baseline is not None:
            baselines[address] = baseline
    return HealthView(states, baselines)


def _baseline(address: PciAddress, previous: HealthView, signals: Signals) -> int | None:
    """The carried baseline, or today's count for a device seen (again) for the first time."""
    return previous.aer_baseline.get(address, signals.aer_fatal.get(address))


def aer_watch_list(host: Host, served: Iterable[str]) -> list[PciAddress]:
    """The functions whose AER counters matter: served PCI IDs and the parents of served mdevs."""
    wanted: set[PciAddress] = set()
    for device_id in served:
        address = _address_or_none(device_id)
        mdev = host.mdevs_by_uuid.get(device_id) if address is None else None
        if address is not None:
            wanted.add(address)
        elif mdev is not None:
            wanted.add(mdev.parent)
    return sorted(wanted)


def transitions(before: HealthView, after: HealthView) -> list[Transition]:
    """Devices judged in both views whose health differs, in ID order."""
    changed = []
    for device_id in sorted(after.states):
        if device_id not in before.states:
            continue
        old, new = before.states[device_id], after.states[device_id]
        if old.healthy != new.healthy:
            changed.append(Transition(device_id, old, new))
    return changed


def _address_or_none(device_id: str) -> PciAddress | None:
    if ":" not in device_id:
        return None
    try:
        return PciAddress.parse(device_id)
    except BadInputError:
        return None


def retain_vanished(
    previous: Mapping[str, Resource], selected: Sequence[Resource], problems: Mapping[str, str]
) -> tuple[Resource, ...]:
    """Keep in each resource the devices it served before that no resource selects now and
    that are judged unhealthy (removed, unbound): the kubelet then sees them Unhealthy. A
    resource left with only such devices (the no-config naming) stays served for them."""
    now = {d.id for r in selected for d in r.devices}
    names = {r.name for r in selected}
    empty = [replace(r, devices=()) for r in previous.values() if r.name not in names]
    result = []
    for resource in (*selected, *empty):
        old = previous.get(resource.name)
        kept = [d for d in old.devices if d.id not in now and d.id in problems] if old else []
        if kept:
            devices = sorted((*resource.devices, *kept), key=lambda d: (d.address, d.id))
            resource = replace(resource, devices=tuple(devices))
        if resource.devices or resource.name in names:
            result.append(resource)
    return tuple(result)
