"""Declarative mediated devices with KubeVirt's semantics: which types, on which cards, how many.

`mediatedDevicesTypes` applies to every node; `nodeMediatedDeviceTypes` entries whose
nodeSelector matches the node's labels replace it. One type per card: the wanted types
supported by at least one free card form a ring (in configuration order); walking the ring,
each type takes the next free card (address order) that supports it, until no free card or
no type is left. So several cards share the types round-robin, and a single card takes the
first wanted type it supports. Each assigned card gets mdevs up to available_instances.
Mdevs of types no longer wanted are removed unless in use. The full rules: docs/mdev.md.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hostdev.errors import ConfigError, HostdevError
from hostdev.host.fs import HostFS
from hostdev.host.model import Host, Mdev, MdevType, PciAddress, PciDevice
from hostdev.host.scan import scan_host
from hostdev.host.writer import HostWriter
from hostdev.mdev import (
    CreateMdev,
    InUse,
    MdevAction,
    RemoveMdev,
    UuidFactory,
    execute,
    never_in_use,
    new_uuid,
    parents,
    type_matches,
    unreadable_instances,
)

_TYPE_KEYS = ("mediatedDevicesTypes", "mediatedDeviceTypes")  # KubeVirt's old and new spelling
_WRAPPERS = ("mediatedDevicesConfiguration",)


# -- configuration ----------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NodeMdevTypes:
    """A `nodeMediatedDeviceTypes` entry: types for nodes whose labels match the selector."""

    types: tuple[str, ...]
    node_selector: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class MdevConfig:
    """The declarative mediated-device configuration."""

    types: tuple[str, ...] = ()
    node_types: tuple[NodeMdevTypes, ...] = ()


def parse_mdev_config(data: object, file: str = "config") -> MdevConfig:
    """Validate the block as KubeVirt writes it (also inside a HyperConverged spec)."""
    block = _unwrap(data, file)
    if block is None or block == {}:  # an empty file too: removing every mdev must be said
        raise ConfigError(
            file,
            "mediatedDevicesConfiguration",
            "empty: give mediatedDevicesTypes: [] to remove every mdev",
        )
    if not isinstance(block, Mapping):
        raise ConfigError(file, "mediatedDevicesConfiguration", "must be a mapping")
    unknown = sorted(set(map(str, block)) - {*_TYPE_KEYS, "nodeMediatedDeviceTypes"})
    if unknown:
        raise ConfigError(
            file,
            unknown[0],
            "unknown key; expected mediatedDevicesTypes and nodeMediatedDeviceTypes",
        )
    types = _types(block, file, "")
    entries = block.get("nodeMediatedDeviceTypes")
    entries = [] if entries is None else entries
    if not isinstance(entries, list):
        raise ConfigError(file, "nodeMediatedDeviceTypes", "must be a list")
    nodes = tuple(
        _node_entry(e, file, f"nodeMediatedDeviceTypes[{i}]") for i, e in enumerate(entries)
    )
    return MdevConfig(types, nodes)


def _unwrap(data: object, file: str) -> object:
    path = ""
    if isinstance(data, Mapping) and isinstance(data.get("spec"), Mapping):
        data, path = data["spec"], "spec."  # a HyperConverged CR
    if isinstance(data, Mapping) and isinstance(data.get("configuration"), Mapping):
        data, path = data["configuration"], path + "configuration."  # a KubeVirt CR
    for key in _WRAPPERS:
        if isinstance(data, Mapping) and key in data:
            return data[key]
    if path:  # its other keys (permittedHostDevices, featureGates ...) are no mdev keys
        raise ConfigError(file, path + _WRAPPERS[0], "missing: the resource configures no mdevs")
    return data


def _types(block: Mapping[str, Any], file: str, where: str) -> tuple[str, ...]:
    old, new = (block.get(k) for k in _TYPE_KEYS)
    if old is not None and new is not None and old != new:
        raise ConfigError(
            file,
            where + "mediatedDeviceTypes",
            "differs from mediatedDevicesTypes; give only one of them",
        )
    value = new if new is not None else old
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(t, str) and t for t in value):
        raise ConfigError(file, where + _TYPE_KEYS[0], "must be a list of type ids or names")
    return tuple(dict.fromkeys(value))


def _node_entry(entry: object, file: str, where: str) -> NodeMdevTypes:
    if not isinstance(entry, Mapping):
        raise ConfigError(
            file, where, "must be a mapping with mediatedDevicesTypes and nodeSelector"
        )
    selector = entry.get("nodeSelector")
    if (
        not isinstance(selector, Mapping)
        or not selector
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in selector.items())
    ):
        raise ConfigError(
            file, f"{where}.nodeSelector", "must be a non-empty map of label: value strings"
        )
    types = _types(entry, file, f"{where}.")
    if not types:
        raise ConfigError(file, f"{where}.mediatedDevicesTypes", "must list at least one type")
    return NodeMdevTypes(types, dict(selector))


def desired_types(config: MdevConfig, labels: Mapping[str, str]) -> tuple[str, ...]:
    """The node's wanted types: those of every matching node entry, else the global list."""
    matched: list[str] = []
    for entry in config.node_types:
        if all(labels.get(k) == v for k, v in entry.node_selector.items()):
            matched.extend(entry.types)
    return tuple(dict.fromkeys(matched)) if matched else config.types


# -- planning (pure) --------------------------------------------------------------------
@dataclass
class MdevPlan:
    """Removals, creations and what was left alone (with the reason)."""

    removes: list[RemoveMdev] = field(default_factory=list)
    creates: list[CreateMdev] = field(default_factory=list)
    assignments: dict[PciAddress, str] = field(default_factory=dict)  # card → type id
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # assigned cards that get nothing, why

    @property
    def actions(self) -> list[MdevAction]:
        """Removals first (they free instances), then creations."""
        return [*self.removes, *self.creates]


def plan_mdevs(
    host: Host,
    wanted: Sequence[str],
    in_use: InUse = never_in_use,
    uuid_factory: UuidFactory = new_uuid,
) -> MdevPlan:
    """What to remove and create so the host carries the wanted types (KubeVirt rules)."""
    plan = MdevPlan()
    removed = _plan_removals(host, wanted, in_use, plan)
    free: list[PciDevice] = []
    for card in parents(host):
        left = [m for m in host.mdevs if m.parent == card.address and m.uuid not in removed]
        if not left:
            free.append(card)
        else:
            _top_up(card, left, wanted, plan, uuid_factory)
    for card, mdev_type in _round_robin(free, wanted):
        back = sum(
            1
            for m in host.mdevs
            if m.uuid in removed and m.parent == card.address and m.type_id == mdev_type.type_id
        )
        plan.assignments[card.address] = mdev_type.type_id
        count = _instances(card, mdev_type, plan) + back
        plan.creates.extend(
            CreateMdev(card.address, mdev_type.type_id, uuid_factory()) for _ in range(count)
        )
    return plan


def _plan_removals(host: Host, wanted: Sequence[str], in_use: InUse, plan: MdevPlan) -> set[str]:
    removed: set[str] = set()
    for mdev in host.mdevs:
        if _still_wanted(host, mdev, wanted):
            continue
        if in_use(mdev.uuid):
            plan.notes.append(
                f"kept {mdev.uuid} ({mdev.type_id}) on {mdev.parent}: no longer wanted but in use"
            )
            continue
        plan.removes.append(RemoveMdev(mdev.uuid, mdev.parent, mdev.type_id))
        removed.add(mdev.uuid)
    return removed


def _still_wanted(host: Host, mdev: Mdev, wanted: Sequence[str]) -> bool:
    parent = host.device(mdev.parent)
    types = {t.type_id: t for t in parent.mdev_types} if parent else {}
    mdev_type = types.get(mdev.type_id, MdevType(mdev.type_id, mdev.type_name, 0, "", ""))
    return any(type_matches(mdev_type, w) for w in wanted)


def _top_up(
    card: PciDevice,
    left: list[Mdev],
    wanted: Sequence[str],
    plan: MdevPlan,
    uuid_factory: UuidFactory,
) -> None:
    """A card already carrying one wanted type keeps it and is filled up."""
    kinds = Counter(m.type_id for m in left)
    type_id = next(iter(kinds))
    mdev_type = next((t for t in card.mdev_types if t.type_id == type_id), None)
    if len(kinds) > 1 or mdev_type is None or not any(type_matches(mdev_type, w) for w in wanted):
        plan.notes.append(
            f"left {card.address} alone: it still carries {', '.join(sorted(kinds))} (in use)"
        )
        return
    plan.assignments[card.address] = type_id
    plan.creates.extend(
        CreateMdev(card.address, type_id, uuid_factory())
        for _ in range(_instances(card, mdev_type, plan))
    )


def _instances(card: PciDevice, mdev_type: MdevType, plan: MdevPlan) -> int:
    """The type's free instances on the card; 0, as a problem, when sysfs held no number."""
    unknown = unreadable_instances(card, mdev_type)
    if unknown is None:
        return mdev_type.available_instances
    plan.problems.append(f"{card.address}: no {mdev_type.type_id} mdevs created: {unknown}")
    return 0


def _round_robin(
    free: Sequence[PciDevice], wanted: Sequence[str]
) -> list[tuple[PciDevice, MdevType]]:
    """Assign one type per free card, walking the wanted types as a ring."""
    supporters: dict[str, list[PciDevice]] = {}
    for want in dict.fromkeys(wanted):
        cards = [c for c in free if _offered(c, want) is not None]
        if cards:
            supporters[want] = cards
    ring = list(supporters)
    unassigned = {c.address for c in free}
    result: list[tuple[PciDevice, MdevType]] = []
    while ring and unassigned:
        for want in list(ring):
            card = next((c for c in supporters[want] if c.address in unassigned), None)
            if card is None:
                ring.remove(want)
                continue
            unassigned.discard(card.address)
            mdev_type = _offered(card, want)
            assert mdev_type is not None
            result.append((card, mdev_type))
    return result


def _offered(card: PciDevice, want: str) -> MdevType | None:
    return next((t for t in card.mdev_types if type_matches(t, want)), None)


# -- execution --------------------------------------------------------------------------
@dataclass
class MdevReport:
    """What apply_mdevs did, what it left alone and what failed."""

    done: list[MdevAction] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def apply_mdevs(
    fs: HostFS,
    writer: HostWriter,
    wanted: Sequence[str],
    in_use: InUse = never_in_use,
    uuid_factory: UuidFactory = new_uuid,
) -> MdevReport:
    """Remove unwanted mdevs, rescan (freed instances), then create the planned ones."""
    report = MdevReport()
    plan = plan_mdevs(scan_host(fs), wanted, in_use, uuid_factory)
    report.notes.extend(plan.notes)
    failed: set[PciAddress] = set()  # cards that still carry mdevs we could not remove
    for action in plan.removes:
        if not _run(fs, writer, action, report):
            failed.add(action.parent)
    if plan.removes:
        plan = plan_mdevs(scan_host(fs), wanted, in_use, uuid_factory)
    report.problems.extend(plan.problems)
    for create in plan.creates:
        if create.parent not in failed and not _run(fs, writer, create, report):
            failed.add(create.parent)
    return report


def _run(fs: HostFS, writer: HostWriter, action: MdevAction, report: MdevReport) -> bool:
    try:
        execute(fs, writer, [action])
    except HostdevError as err:
        report.problems.append(str(err))
        return False
    report.done.append(action)
    return True
