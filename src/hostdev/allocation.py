"""IOMMU-group-safe allocation: which served devices may be handed out, and to whom.

Pure (no I/O). The IOMMU group is the unit of isolation: whoever holds one device of a group
holds the whole group (companion functions included), so every other served device of that
group is blocked until the holder lets go. SR-IOV adds a second relation: a PF and its VFs
never go to different holders. Both rules are expressed as locks on keys:

- every device takes ("group", N) exclusively (N = its IOMMU group);
- every PCI function takes ("function", its address) exclusively;
- a VF takes ("function", its PF) shared, and an mdev ("function", its parent) shared,

so two VFs of one PF can go to two pods, but a PF and one of its VFs cannot. Devices held
stay Healthy; blocked devices are reported Unhealthy (docs/allocation.md explains why).
"""

from __future__ import annotations

from bisect import insort
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from enum import Enum
from typing import Self

from hostdev.errors import HostdevError
from hostdev.host.model import PciAddress

GROUP = "group"
FUNCTION = "function"


class Mode(Enum):
    """How a device takes a lock key."""

    EXCLUSIVE = "exclusive"
    SHARED = "shared"


class State(Enum):
    """What a served device is right now."""

    AVAILABLE = "available"
    IN_USE = "in-use"
    BLOCKED = "blocked"


@dataclass(frozen=True, slots=True)
class Lock:
    """One key a device takes when it is allocated, and how."""

    kind: str  # GROUP or FUNCTION
    name: str  # the group number or the PCI address
    mode: Mode

    @property
    def key(self) -> tuple[str, str]:
        """The key two devices compete for."""
        return (self.kind, self.name)


@dataclass(frozen=True, slots=True, order=True)
class Holder:
    """Who holds a device: a pod's container, or an allocation the kubelet has not named yet."""

    namespace: str = ""
    pod: str = ""
    container: str = ""
    allocation: int = 0  # serial of an Allocate container request, 0 once the pod is known

    def __str__(self) -> str:
        if self.allocation:
            return f"allocation #{self.allocation}, pod not known yet"
        return f"pod {self.namespace}/{self.pod}, container {self.container}"


@dataclass(frozen=True, slots=True)
class ServedDevice:
    """A device some resource advertises, with what allocation needs to know about it."""

    id: str  # the Device ID sent to the kubelet: a PCI address or an mdev UUID
    resource: str
    address: PciAddress | None  # the PCI function; None for an mdev
    iommu_group: int | None
    numa_node: int | None = None
    pci_path: tuple[str, ...] = ()  # upstream bridges, root first, then the function itself
    physfn: PciAddress | None = None  # the PF of a VF
    parent: PciAddress | None = None  # the parent of an mdev
    is_pf: bool = False
    unusable: str = ""  # why it is never handed out (group not viable, no IOMMU group ...)

    @property
    def locks(self) -> tuple[Lock, ...]:
        """The keys this device takes when allocated."""
        locks: list[Lock] = []
        if self.iommu_group is not None:
            locks.append(Lock(GROUP, str(self.iommu_group), Mode.EXCLUSIVE))
        if self.address is not None:
            locks.append(Lock(FUNCTION, str(self.address), Mode.EXCLUSIVE))
        for owner in (self.physfn, self.parent):
            if owner is not None:
                locks.append(Lock(FUNCTION, str(owner), Mode.SHARED))
        return tuple(locks)


@dataclass(frozen=True)
class Inventory:
    """Every served device by ID, with the lock index that relates them."""

    devices: Mapping[str, ServedDevice]
    locks: Mapping[str, tuple[Lock, ...]]
    rivals: Mapping[str, frozenset[str]]  # only devices that have some
    by_resource: Mapping[str, tuple[str, ...]]
    places: Mapping[str, tuple[int | None, tuple[str, ...]]]  # NUMA node, bridges above

    @property
    def related(self) -> Set[str]:
        """Devices that conflict with at least one other served device."""
        return self.rivals.keys()

    def resource_ids(self, resource: str) -> tuple[str, ...]:
        """The IDs a resource advertises, sorted."""
        return self.by_resource.get(resource, ())

    @property
    def resources(self) -> list[str]:
        """Every served resource name, sorted."""
        return sorted(self.by_resource)


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """The state of one served device, who holds it, and why it is blocked."""

    device_id: str
    state: State
    holder: Holder | None = None
    reason: str = ""

    @property
    def healthy(self) -> bool:
        """What ListAndWatch reports: blocked devices are Unhealthy, held ones stay Healthy."""
        return self.state is not State.BLOCKED


@dataclass(frozen=True)
class Availability:
    """Per device status, plus any conflict found among the holders themselves.

    The blocked subset is kept alongside, so that asking for it after each Allocate costs
    nothing on a node serving thousands of devices.
    """

    statuses: Mapping[str, DeviceStatus]
    violations: tuple[str, ...]
    blocked_reasons: Mapping[str, str]

    @classmethod
    def of(cls, statuses: Mapping[str, DeviceStatus], violations: tuple[str, ...] = ()) -> Self:
        """Availability from every device's status."""
        blocked = {i: s.reason for i, s in statuses.items() if s.state is State.BLOCKED}
        return cls(statuses, violations, blocked)

    def with_changes(self, changed: Iterable[DeviceStatus], violations: tuple[str, ...]) -> Self:
        """A copy with some devices' statuses replaced: a dict copy, no pass over the rest."""
        statuses, blocked = dict(self.statuses), dict(self.blocked_reasons)
        for status in changed:
            statuses[status.device_id] = status
            if status.state is State.BLOCKED:
                blocked[status.device_id] = status.reason
            else:
                blocked.pop(status.device_id, None)
        return type(self)(statuses, violations, blocked)

    def blocked(self) -> Mapping[str, str]:
        """Blocked device ID → reason."""
        return self.blocked_reasons

    def count(self, ids: Iterable[str], state: State) -> int:
        """How many of these devices are in this state."""
        return sum(1 for i in ids if self.statuses[i].state is state)


class AllocationRefused(HostdevError):
    """An Allocate request that would break IOMMU-group or PF/VF isolation."""


Entry = tuple[Holder, Mode, str]  # who takes a key, how, through which device
LockIndex = Mapping[tuple[str, str], list[Entry]]


def rivals(inventory: Inventory, device_id: str) -> frozenset[str]:
    """Other served devices that allocating this one would block (or that would block it)."""
    return inventory.rivals.get(device_id, frozenset())


def index_holdings(
    inventory: Inventory, holdings: Mapping[str, Holder]
) -> dict[tuple[str, str], list[Entry]]:
    """Lock key → who takes it, for every held device we serve (others are ignored)."""
    index: dict[tuple[str, str], list[Entry]] = {}
    for device_id, holder in holdings.items():
        index_device(inventory, index, device_id, holder)
    return index


def index_device(
    inventory: Inventory,
    index: dict[tuple[str, str], list[Entry]],
    device_id: str,
    holder: Holder,
) -> None:
    """File a held device under each of its lock keys, in a fixed order: exclusive takers
    first, so a check for a shared lock stops at the first shared entry instead of walking
    every VF held on a PF; then by device ID, so a conflict names the same device however the
    index was built. A device we do not serve takes no keys."""
    for lock in inventory.locks.get(device_id, ()):
        insort(index.setdefault(lock.key, []), (holder, lock.mode, device_id), key=_entry_order)


def _entry_order(entry: Entry) -> tuple[bool, str]:
    return entry[1] is Mode.SHARED, entry[2]


def reindex(
    inventory: Inventory,
    index: dict[tuple[str, str], list[Entry]],
    holdings: Mapping[str, Holder],
    device_ids: Set[str],
) -> None:
    """Update the index in place for devices whose holder changed (cost: their keys only)."""
    keys = {lock.key for i in device_ids for lock in inventory.locks.get(i, ())}
    for key in keys:  # one pass per key, however many of its takers changed
        kept = [entry for entry in index.get(key, ()) if entry[2] not in device_ids]
        if kept:
            index[key] = kept
        else:
            index.pop(key, None)
    for device_id in device_ids:
        holder = holdings.get(device_id)
        if holder is not None:
            index_device(inventory, index, device_id, holder)


def compute_availability(
    inventory: Inventory, holdings: Mapping[str, Holder], *, in_use_known: bool = True
) -> Availability:
    """Status of every served device given who holds what.

    With in_use_known False (PodResources never answered), a device related to another served
    device is blocked too: it may share a group with a device the kubelet gave out earlier.
    """
    index = index_holdings(inventory, holdings)
    statuses = {
        device_id: device_status(inventory, index, holdings, device_id, in_use_known)
        for device_id in inventory.devices
    }
    return Availability.of(statuses, find_violations(inventory, index))


def device_status(
    inventory: Inventory,
    index: LockIndex,
    holdings: Mapping[str, Holder],
    device_id: str,
    in_use_known: bool = True,
) -> DeviceStatus:
    """The status of one served device (cost: its own locks only)."""
    device = inventory.devices[device_id]
    holder = holdings.get(device_id)
    if device.unusable:
        return DeviceStatus(device_id, State.BLOCKED, holder, device.unusable)
    if holder is not None:
        return DeviceStatus(device_id, State.IN_USE, holder)
    conflict = first_conflict(inventory, index, device_id)
    if conflict:
        return DeviceStatus(device_id, State.BLOCKED, None, conflict)
    if not in_use_known and device_id in inventory.related:
        reason = "in-use state unknown (PodResources not reached yet) and it shares a lock"
        return DeviceStatus(device_id, State.BLOCKED, None, f"{reason} with another device")
    return DeviceStatus(device_id, State.AVAILABLE)


def first_conflict(inventory: Inventory, index: LockIndex, device_id: str) -> str:
    """Why this device cannot be handed out because of a held one; "" when nothing stops it."""
    for lock in inventory.locks[device_id]:
        for holder, mode, other in index.get(lock.key, ()):
            if mode is Mode.SHARED and lock.mode is Mode.SHARED:
                break  # exclusive takers come first (index_device): the rest are shared too
            if other != device_id:
                return describe_conflict(inventory, lock, other, holder)
    return ""


def describe_conflict(inventory: Inventory, lock: Lock, other: str, holder: Holder) -> str:
    """One line naming the key, the device that holds it and its holder."""
    if lock.kind == GROUP:
        return f"group {lock.name} held by {other} ({holder})"
    other_device = inventory.devices[other]
    if str(other_device.address) == lock.name:
        kind = "PF" if other_device.is_pf else "device"
        return f"{kind} {lock.name} allocated ({holder})"
    kind = "VF" if other_device.physfn is not None else "mdev"
    return f"{kind} {other} of {lock.name} allocated ({holder})"


def find_violations(inventory: Inventory, index: LockIndex) -> tuple[str, ...]:
    """Keys taken by two holders in conflicting modes (must never happen; logged if it does)."""
    # a conflict needs two takers, one of them exclusive, and exclusive takers come first
    suspects = sorted(
        (key, entries)
        for key, entries in index.items()
        if len(entries) > 1 and entries[0][1] is Mode.EXCLUSIVE
    )
    found: list[str] = []
    for (kind, name), entries in suspects:
        if len({holder for holder, _, _ in entries}) > 1:
            who = ", ".join(f"{dev} ({holder})" for holder, _, dev in sorted(entries))
            found.append(f"{kind} {name} held by several holders: {who}")
    return tuple(found)


@dataclass(frozen=True)
class Grant:
    """The holdings after an accepted Allocate, and the holders the kubelet overruled."""

    holdings: dict[str, Holder]
    superseded: tuple[Holder, ...]


def check_allocation(
    inventory: Inventory,
    holdings: Mapping[str, Holder],
    resource: str,
    containers: Sequence[Sequence[str]],
    new_holders: Sequence[Holder],
    *,
    in_use_known: bool = True,
    index: LockIndex | None = None,
) -> Grant:
    """Accept an Allocate request (one device list per container) or raise AllocationRefused.

    The kubelet never hands out a device it still counts as allocated, so a requested device
    we think is held means its holder is gone: that holder is dropped (superseded). Anything
    else that conflicts (a sibling held by another pod, two containers of the request in one
    group, a PF and its VF) refuses the whole request. `index` (of holdings) saves a rebuild.
    """
    requested = [device_id for ids in containers for device_id in ids]
    _check_known(inventory, resource, requested)
    superseded = tuple(sorted({holdings[i] for i in requested if i in holdings}))
    base: Mapping[str, Holder] = holdings
    if superseded or index is None:
        base = {i: h for i, h in holdings.items() if h not in superseded}
        index = index_holdings(inventory, base)
    for device_id in requested:
        status = device_status(inventory, index, base, device_id, in_use_known)
        if status.state is State.BLOCKED:
            raise AllocationRefused(
                f"{resource}: device {device_id} is unavailable: {status.reason}"
            )
    _check_within_request(inventory, containers)
    granted = dict(base)
    for holder, ids in zip(new_holders, containers, strict=True):
        granted.update(dict.fromkeys(ids, holder))
    return Grant(granted, superseded)


def _check_known(inventory: Inventory, resource: str, requested: Sequence[str]) -> None:
    seen: set[str] = set()
    for device_id in requested:
        device = inventory.devices.get(device_id)
        if device is None or device.resource != resource:
            raise AllocationRefused(f"{resource}: unknown device {device_id!r}")
        if device_id in seen:
            raise AllocationRefused(f"{resource}: device {device_id} requested twice")
        seen.add(device_id)


def _check_within_request(inventory: Inventory, containers: Sequence[Sequence[str]]) -> None:
    taken: dict[tuple[str, str], tuple[int, Mode, str]] = {}
    for number, ids in enumerate(containers, start=1):
        for device_id in ids:
            for lock in inventory.locks[device_id]:
                previous = taken.setdefault(lock.key, (number, lock.mode, device_id))
                if previous[0] != number and Mode.EXCLUSIVE in (previous[1], lock.mode):
                    raise AllocationRefused(
                        f"{device_id} (container {number}) and {previous[2]} (container "
                        f"{previous[0]}) share {lock.kind} {lock.name}: one holder only"
                    )
