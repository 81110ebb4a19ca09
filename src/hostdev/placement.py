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
    nodes: set[int] = field(default_factory=set)
    blocked: set[str] = field(default_factory=set)  # rivals of the chosen devices
    off_home: int = 0
    diameter: int = 0


class _Search:
    """The data one request needs: numa nodes, PCIe paths and rivals of offered devices."""

    def __init__(self, request: PreferenceRequest, criteria: Criteria) -> None:
        self.request = request
        self.criteria = criteria
        self.devices = request.inventory.devices
        self._rivals: dict[str, set[str]] = {}

    def rivals_of(self, device_id: str) -> set[str]:
        """Free served devices that choosing this one would block (cached per request)."""
        found = self._rivals.get(device_id)
        if found is None:
            statuses = self.request.availability.statuses
            found = {
                other
                for other in rivals(self.request.inventory, device_id)
                if statuses[other].state is State.AVAILABLE
            }
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

    def cost(self, selection: _Selection, unit: Sequence[str]) -> tuple[Cost, _Selection]:
        """The cost after adding unit to selection, and the grown selection."""
        grown = _Selection(
            selection.home,
            [*selection.ids, *unit],
            set(selection.nodes),
            set(selection.blocked),
            selection.off_home,
            selection.diameter,
        )
        for device_id in unit:
            for other in grown.ids:
                grown.diameter = max(grown.diameter, self.distance(device_id, other))
            node = self.numa(device_id)
            if node is not None:
                grown.nodes.add(node)
                grown.off_home += node != selection.home
            grown.blocked |= self.rivals_of(device_id)
        return self.score(grown, grown.off_home, -len(unit)), grown

    def score(self, selection: _Selection, numa: int, fill: int) -> Cost:
        """The selection's cost in the policy's criteria order."""
        collateral = len(selection.blocked.difference(selection.ids))
        values = {"numa": numa, "groups": collateral, "fill": fill, "pcie": selection.diameter}
        return tuple(values[name] for name in self.criteria)


def _units(search: _Search, candidates: Sequence[str]) -> list[list[tuple[str, ...]]]:
    """Buckets of interchangeable units, each bucket sorted by ID.

    A device that shares no lock with another served device is its own unit and is
    interchangeable with any other such device on the same NUMA node under the same bridge.
    Devices that do share (a group of several served devices, a PF with served VFs) form
    one unit per IOMMU group and a bucket each.
    """
    related = search.request.inventory.related
    buckets: dict[object, list[tuple[str, ...]]] = {}
    groups: dict[str | int, list[str]] = {}
    for device_id in sorted(candidates):
        device = search.devices[device_id]
        if device_id in related:
            unit_key = device_id if device.iommu_group is None else device.iommu_group
            groups.setdefault(unit_key, []).append(device_id)
        else:
            key = (device.numa_node, device.pci_path[:-1])
            buckets.setdefault(key, []).append((device_id,))
    for unit_key, members in groups.items():
        buckets[("group", unit_key)] = [tuple(members)]
    return [bucket[::-1] for bucket in buckets.values()]  # popped from the end


def _grow(search: _Search, home: int | None, start: list[str], size: int) -> _Selection:
    """Greedy: add the unit whose addition costs least (ties: lower ID)."""
    _, selection = search.cost(_Selection(home), start)
    taken = set(start)
    buckets = _units(search, [i for i in _candidates(search) if i not in taken])
    while len(selection.ids) < size and any(buckets):
        room = size - len(selection.ids)
        best: tuple[Cost, str, int, _Selection] | None = None
        for number, bucket in enumerate(buckets):
            if not bucket:
                continue
            unit = bucket[-1][:room]
            cost, grown = search.cost(selection, unit)
            key = (cost, unit[0], number, grown)
            if best is None or key[:2] < best[:2]:
                best = key
        assert best is not None
        buckets[best[2]].pop()
        selection = best[3]
    return selection


def _candidates(search: _Search) -> list[str]:
    statuses = search.request.availability.statuses
    return [
        i
        for i in dict.fromkeys(search.request.available)
        if i in statuses and statuses[i].state is State.AVAILABLE
    ]


def greedy_policy(criteria: Criteria) -> Policy:
    """A policy that tries each NUMA node as home and keeps the cheapest full answer."""

    def policy(request: PreferenceRequest) -> list[str]:
        search = _Search(request, criteria)
        start = [i for i in dict.fromkeys(request.must_include) if i in search.devices]
        if len(start) >= request.size:
            return start
        homes = {search.numa(i) for i in start} - {None} or {
            search.numa(i) for i in _candidates(search)
        }
        best: tuple[Cost, list[str]] | None = None
        for home in sorted(homes, key=lambda n: -1 if n is None else n):
            selection = _grow(search, home, start, request.size)
            size = len(selection.ids)
            key = (-size, *search.score(selection, len(selection.nodes), -size))
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
