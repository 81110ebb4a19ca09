"""The allocation inventory: the served devices' view for allocation, built from the host.

Pure (no I/O). Each served ID (a PCI address or an mdev UUID) becomes a `ServedDevice` with
its group, PF or parent, NUMA node and the locks it takes (hostdev.allocation explains the
locks), or is served as unusable with the reason why. `make_inventory` keeps only the lock
keys two served devices contend for, and one object for each equal value, so the thousands
of VFs of a passthrough node hold few locks and few distinct objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Set
from typing import TypeVar

from hostdev.allocation import Inventory, Lock, Mode, ServedDevice
from hostdev.errors import HostdevError
from hostdev.host.model import Host, PciAddress, PciDevice

_T = TypeVar("_T")


def build_inventory(host: Host, resources: Mapping[str, Iterable[str]]) -> Inventory:
    """Describe the served devices (resource → PCI addresses or mdev UUIDs) for allocation."""
    devices: dict[str, ServedDevice] = {}
    for resource, ids in resources.items():
        for device_id in ids:
            devices[device_id] = served_device(host, resource, device_id)
    return make_inventory(devices.values())


def make_inventory(devices: Iterable[ServedDevice]) -> Inventory:
    """Index served devices by ID and find those whose locks overlap another's.

    Only contested keys are kept in the inventory's locks: a key no other served device
    takes, or that every taker shares, can never refuse an allocation (a VF's own group and
    address, its PF's address when the PF is not served), and thousands of VFs then hold no
    locks at all.
    """
    by_id = {d.id: d for d in devices}
    takers: dict[tuple[str, str], tuple[list[str], list[str]]] = {}  # exclusive, shared
    for device_id, device in by_id.items():
        for lock in device.locks:
            exclusive, shared = takers.setdefault(lock.key, ([], []))
            (exclusive if lock.mode is Mode.EXCLUSIVE else shared).append(device_id)
    contested = {k for k, (ex, sh) in takers.items() if ex and len(ex) + len(sh) > 1}
    rivals: dict[str, set[str]] = {}
    for exclusive, shared in (takers[key] for key in contested):
        everyone = exclusive + shared
        for device_id in exclusive:
            rivals.setdefault(device_id, set()).update(everyone)
        for device_id in shared:
            rivals.setdefault(device_id, set()).update(exclusive)
    by_resource: dict[str, list[str]] = {}
    for device in by_id.values():
        by_resource.setdefault(device.resource, []).append(device.id)
    common = _Shared(by_id)
    return Inventory(
        by_id,
        {i: common.locks(d.locks, contested) for i, d in by_id.items()},
        {i: frozenset(r - {i}) for i, r in rivals.items() if r - {i}},
        {name: tuple(sorted(ids)) for name, ids in sorted(by_resource.items())},
        {i: common.one((d.numa_node, d.pci_path[:-1])) for i, d in by_id.items()},
    )


class _Shared:
    """One object for equal values (lock names, locks, places) across an inventory: a VF's
    lock on its PF and its place are the same for every VF of the PF, and a function's lock
    name is its device ID. Thousands of served devices then hold few distinct objects."""

    def __init__(self, by_id: Mapping[str, ServedDevice]) -> None:
        self._values: dict[object, object] = dict(zip(by_id, by_id, strict=True))

    def one(self, value: _T) -> _T:
        """The first value seen equal to this one."""
        return self._values.setdefault(value, value)  # type: ignore[return-value]

    def locks(self, locks: tuple[Lock, ...], keep: Set[tuple[str, str]]) -> tuple[Lock, ...]:
        """The locks whose keys are kept, each made of shared parts, in a shared tuple."""
        return self.one(
            tuple(self.one(Lock(k.kind, self.one(k.name), k.mode)) for k in locks if k.key in keep)
        )


def served_device(host: Host, resource: str, device_id: str) -> ServedDevice:
    """The allocation view of one served ID; unknown IDs are served as unusable."""
    mdev = host.mdevs_by_uuid.get(device_id)
    if mdev is not None:
        return ServedDevice(
            device_id,
            resource,
            None,
            mdev.iommu_group,
            parent=mdev.parent,
            numa_node=_numa(host.device(mdev.parent)),
            unusable="" if mdev.iommu_group is not None else "no IOMMU group",
        )
    try:
        address = PciAddress.parse(device_id)
    except HostdevError:
        return ServedDevice(device_id, resource, None, None, unusable="not on this host")
    dev = host.device(address)
    if dev is None:
        return ServedDevice(device_id, resource, address, None, unusable="not on this host")
    return ServedDevice(
        device_id,
        resource,
        dev.address,  # the host's object: the parsed copy is dropped
        dev.iommu_group,
        dev.numa_node,
        (*dev.pci_path, device_id),
        dev.physfn,
        None,
        dev.is_pf,
        _unusable(host, dev),
    )


def _numa(dev: PciDevice | None) -> int | None:
    return dev.numa_node if dev is not None else None


def _unusable(host: Host, dev: PciDevice) -> str:
    if dev.is_bridge:
        return "a PCI bridge is never handed out"
    if dev.iommu_group is None:
        return "no IOMMU group"
    viability = host.group_viability(dev.iommu_group)
    if viability.viable:
        return ""
    blockers = ", ".join(f"{address} on {driver}" for address, driver in viability.blockers)
    return f"group not viable: {blockers}"
