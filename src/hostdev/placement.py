"""GetPreferredAllocation policies: which of the offered devices a container should get.

Pure. A policy receives what the kubelet offers (available IDs, must-include IDs, a size)
together with the allocation view, and returns the IDs it prefers. Policies are looked up by
name in POLICIES. The greedy search works on units (the offered devices of one IOMMU group,
so that a group is taken whole when it fits) and on buckets of interchangeable units, so a
request costs O(offered) plus O(size × buckets), not a scan per step over every device.

Criteria, each counted on the whole selection:
- numa: devices off the chosen NUMA node (every node with offered devices is tried);
- groups: collateral, the served devices that are free now and this choice would block
  (siblings in a group, a PF of a chosen VF, the VFs of a chosen PF);
- fill: larger units first (a group taken whole now cannot cost collateral later);
- pcie: the largest distance between two chosen devices in the PCIe tree (hops through
  bridges: 2 under one port, 4 under two ports of one switch or root complex).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from hostdev.allocation import Availability, Inventory, State, rivals
from hostdev.errors import BadInputError

Cost = tuple[int, ...]
Criteria = tuple[str, ...]


@dataclass(frozen=True)
class PreferenceRequest:
    """One ContainerPreferredAllocationRequest with the allocation view around it."""

    inventory: Inventory
    availability: Availability
    available: Sequence[str]
    must_include: Sequence[str]
    size: int


Policy = Callable[[PreferenceRequest], list[str]]


@dataclass
class _Selection:
    """A partial answer while the greedy search grows it."""

    home: int | None
    ids: list[str] = field(default_factory=list)
    chosen: set[str] = field(default_factory=set)
    nodes: set[int] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)  # free rivals of the chosen devices
    off_home: int = 0
    diameter: int = 0

    @property
    def collateral(self) -> int:
        """Free served devices this selection would block."""
        return len(self.blocked - self.chosen)


Unit = tuple[str, ...]


class _Search:
    """The data one request needs: NUMA nodes, PCIe paths and free rivals of devices."""

    def __init__(self, request: PreferenceRequest, criteria: Criteria) -> None:
        self.request = request
        self.criteria = criteria
        self.devices = request.inventory.devices
        self._rivals: dict[str, frozenset[str]] = {}

    def rivals_of(self, device_id: str) -> frozenset[str]:
        """Free served devices that choosing this one would block (cached per request)."""
        found = self._rivals.get(device_id)
        if found is None:
            statuses = self.request.availability.statuses
            found = frozenset(
                other
                for other in rivals(self.request.inventory, device_id)
                if statuses[other].state is State.AVAILABLE
            )
            self._rivals[device_id] = found
        return found

    def numa(self, device_id: str) -> int | None:
        """The NUMA node of a device, None when unknown."""
        return self.devices[device_id].numa_node

    def distance(self, a: str, b: str) -> int:
        """Hops between two devices through the bridges above them."""
        path_a, path_b = self.devices[a].pci_path or (a,), self.devices[b].pci_path or (b,)
        common = 0
        for x, y in zip(path_a, path_b, strict=False):
            if x != y:
                break
            common += 1
        return len(path_a) + len(path_b) - 2 * common

    def cost(self, selection: _Selection, unit: Unit) -> Cost:
        """The cost of selection once unit is added (selection is left unchanged)."""
        off_home = selection.off_home
        diameter = selection.diameter
        new_rivals: set[str] = set()
        for position, device_id in enumerate(unit):
            node = self.numa(device_id)
            off_home += node is not None and node != selection.home
            for other in (*selection.ids, *unit[:position]):
                diameter = max(diameter, self.distance(device_id, other))
            new_rivals.update(self.rivals_of(device_id))
        collateral = selection.collateral - len(selection.blocked.intersection(unit))
        if new_rivals:
            gone = selection.blocked | selection.chosen
            collateral += len(new_rivals.difference(gone, unit))
        values = {"numa": off_home, "groups": collateral, "fill": -len(unit), "pcie": diameter}
        return tuple(values[name] for name in self.criteria)

    def add(self, selection: _Selection, unit: Unit) -> None:
        """Grow selection by unit."""
        for device_id in unit:
            node = self.numa(device_id)
            if node is not None:
                selection.nodes.add(node)
                selection.off_home += node != selection.home
            for other in selection.ids:
                selection.diameter = max(selection.diameter, self.distance(device_id, other))
            selection.ids.append(device_id)
            selection.chosen.add(device_id)
            selection.blocked.update(self.rivals_of(device_id))

    def final(self, selection: _Selection) -> Cost:
        """A complete answer's cost: more devices first, then the criteria (NUMA as a span)."""
        values = {
            "numa": len(selection.nodes),
            "groups": selection.collateral,
            "fill": 0,
            "pcie": selection.diameter,
        }
        return (-len(selection.ids), *(values[name] for name in self.criteria))


def _buckets(search: _Search, candidates: Sequence[str]) -> list[list[Unit]]:
    """Buckets of interchangeable units, each sorted by ID (popped from the end).

    A unit is the offered devices of one IOMMU group (taken whole when it fits). Units are
    interchangeable when they have the same size, NUMA nodes, bridges above them and rivals
    (their free rivals then match too): every criterion rates them alike, so only a
    bucket's first unit needs to be rated at each step. Devices without rivals are single
    units that only differ by their NUMA node and bridges, so thousands of VFs fall into a
    few buckets.
    """
    inventory = search.request.inventory
    buckets: dict[object, list[Unit]] = {}
    groups: dict[object, list[str]] = {}
    for device_id in sorted(candidates):
        if device_id not in inventory.rivals:  # shares no group: a unit of its own
            buckets.setdefault(inventory.places[device_id], []).append((device_id,))
            continue
        device = search.devices[device_id]
        unit_key = device_id if device.iommu_group is None else device.iommu_group
        groups.setdefault(unit_key, []).append(device_id)
    for members in groups.values():
        unit = tuple(members)
        if len(unit) == 1:  # e.g. a VF whose PF is served: its rivals are static and shared
            outside = inventory.rivals[unit[0]]
        else:
            outside = frozenset().union(*(inventory.rivals[i] for i in unit)).difference(unit)
        places = tuple(inventory.places[i] for i in unit)
        buckets.setdefault((places, outside), []).append(unit)
    return [bucket[::-1] for bucket in buckets.values()]


def _grow(
    search: _Search, home: int | None, start: Sequence[str], buckets: list[list[Unit]], size: int
) -> _Selection:
    """Greedy: add the unit whose addition costs least (ties: lower ID)."""
    selection = _Selection(home)
    search.add(selection, tuple(start))
    while len(selection.ids) < size:
        room = size - len(selection.ids)
        best: tuple[Cost, str, int] | None = None
        for number, bucket in enumerate(buckets):
            if bucket:
                unit = bucket[-1][:room]
                key = (search.cost(selection, unit), unit[0], number)
                if best is None or key < best:
                    best = key
        if best is None:
            break
        unit = buckets[best[2]].pop()[:room]
        search.add(selection, unit)
    return selection


def _candidates(search: _Search, exclude: Sequence[str]) -> list[str]:
    statuses = search.request.availability.statuses
    skip = set(exclude)
    return [
        i
        for i in dict.fromkeys(search.request.available)
        if i in statuses and statuses[i].state is State.AVAILABLE and i not in skip
    ]


def greedy_policy(criteria: Criteria) -> Policy:
    """A policy that tries each NUMA node as home and keeps the cheapest full answer."""

    def policy(request: PreferenceRequest) -> list[str]:
        search = _Search(request, criteria)
        start = [i for i in dict.fromkeys(request.must_include) if i in search.devices]
        if len(start) >= request.size:
            return start
        candidates = _candidates(search, start)
        buckets = _buckets(search, candidates)
        homes = {search.numa(i) for i in start} - {None} or {search.numa(i) for i in candidates}
        best: tuple[Cost, list[str]] | None = None
        for home in sorted(homes, key=lambda n: -1 if n is None else n):
            copies = [list(bucket) for bucket in buckets]
            selection = _grow(search, home, start, copies, request.size)
            key = search.final(selection)
            if best is None or key < best[0]:
                best = (key, selection.ids)
        return best[1] if best else start

    return policy


def kubelet_order(request: PreferenceRequest) -> list[str]:
    """must_include, then the free offered devices in the kubelet's order."""
    statuses = request.availability.statuses
    chosen = list(dict.fromkeys(request.must_include))
    for device_id in request.available:
        if len(chosen) >= request.size:
            break
        status = statuses.get(device_id)
        if device_id not in chosen and status and status.state is State.AVAILABLE:
            chosen.append(device_id)
    return chosen


POLICIES: dict[str, Policy] = {
    "default": greedy_policy(("numa", "groups", "fill", "pcie")),
    "topology": greedy_policy(("numa", "pcie", "groups", "fill")),
    "kubelet-order": kubelet_order,
}
DEFAULT_POLICY = "default"


def get_policy(name: str) -> Policy:
    """The policy registered under name; BadInputError listing the known ones otherwise."""
    try:
        return POLICIES[name]
    except KeyError as err:
        known = ", ".join(sorted(POLICIES))
        raise BadInputError(f"unknown allocation policy {name!r} (known: {known})") from err


def preferred_allocation(request: PreferenceRequest, policy: str = DEFAULT_POLICY) -> list[str]:
    """The device IDs the named policy prefers for one container."""
    if request.size <= 0:
        return []
    return get_policy(policy)(request)
