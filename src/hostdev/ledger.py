"""The allocation ledger: who holds which served device, as the plugin believes right now.

In memory and free of I/O (time is passed in), owned by the plugin's event loop. It merges
two sources: the kubelet's PodResources `List` (the truth, learned at each reconcile) and
the Allocate calls answered since (pending: the kubelet records a container's devices only
after Allocate returns, and PodResources names the pod only then). A pending allocation is
dropped once a reconcile shows its devices, or once a reconcile that started `grace`
seconds after it still does not (the pod was deleted or its admission failed).

When PodResources cannot be reached the ledger keeps everything it knew and everything
allocated since, and says so (`podresources_reachable`); until the first successful
reconcile, devices that share a group or a PF with another served device stay blocked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hostdev.allocation import (
    Availability,
    Entry,
    Holder,
    Inventory,
    State,
    check_allocation,
    compute_availability,
    device_status,
    find_violations,
    index_device,
    index_holdings,
    reindex,
)

DEFAULT_GRACE_S = 5.0


@dataclass(frozen=True, slots=True)
class Pending:
    """One container's devices granted by Allocate, not yet seen in PodResources."""

    holder: Holder
    device_ids: tuple[str, ...]
    granted_at: float


class AllocationLedger:
    """Holdings, pending allocations and the availability computed from them."""

    def __init__(self, inventory: Inventory, *, grace_s: float = DEFAULT_GRACE_S) -> None:
        self._inventory = inventory
        self._grace_s = grace_s
        self._listed: dict[str, Holder] = {}
        self._pending: dict[int, Pending] = {}
        self._holdings: dict[str, Holder] = {}
        self._serial = 0
        self._cached: Availability | None = None
        self._index: dict[tuple[str, str], list[Entry]] | None = None
        self.in_use_known = False
        self.generation = 0  # bumped whenever holdings or served devices change
        self.podresources_reachable: bool | None = None  # None until the first attempt
        self.last_error = ""

    @property
    def inventory(self) -> Inventory:
        """The served devices the ledger accounts for."""
        return self._inventory

    @property
    def holdings(self) -> Mapping[str, Holder]:
        """Device ID → holder, listed and pending together."""
        return self._holdings

    @property
    def pending(self) -> tuple[Pending, ...]:
        """Allocations granted since they were last confirmed, oldest first."""
        return tuple(self._pending.values())

    def replace_inventory(self, inventory: Inventory) -> None:
        """Serve a new set of devices (rescan, config reload); holdings are kept by ID."""
        self._inventory = inventory
        self._changed()

    def _changed(self) -> None:
        self.generation += 1
        self._cached = None
        self._index = None

    def availability(self) -> Availability:
        """Per device status, recomputed only after a change."""
        if self._cached is None:
            self._cached = compute_availability(
                self._inventory, self._holdings, in_use_known=self.in_use_known
            )
        return self._cached

    def allocate(
        self, resource: str, containers: Sequence[Sequence[str]], now: float
    ) -> tuple[list[Holder], tuple[Holder, ...]]:
        """Grant an Allocate request or raise AllocationRefused; returns (new, superseded)."""
        new_holders = [Holder(allocation=self._serial + n) for n in range(1, len(containers) + 1)]
        if self._index is None:
            self._index = index_holdings(self._inventory, self._holdings)
        grant = check_allocation(
            self._inventory,
            self._holdings,
            resource,
            containers,
            new_holders,
            in_use_known=self.in_use_known,
            index=self._index,
        )
        self._serial += len(containers)
        self._drop(grant.superseded)
        for holder, ids in zip(new_holders, containers, strict=True):
            self._pending[holder.allocation] = Pending(holder, tuple(ids), now)
        self._holdings = grant.holdings
        if grant.superseded:
            self._changed()
        else:
            self._add_to_index(new_holders, containers)
        return new_holders, grant.superseded

    def _add_to_index(self, holders: Sequence[Holder], containers: Sequence[Sequence[str]]) -> None:
        """Cheap update after a grant: only the new devices and their rivals change state."""
        assert self._index is not None
        granted: set[str] = set()
        for holder, ids in zip(holders, containers, strict=True):
            for device_id in ids:
                index_device(self._inventory, self._index, device_id, holder)
                granted.add(device_id)
        if self._cached is not None:
            self._cached = self._restated(granted, self._cached.violations)

    def _restated(self, changed: set[str], violations: tuple[str, ...]) -> Availability:
        """The cached availability with the changed devices and their rivals recomputed."""
        assert self._cached is not None and self._index is not None
        affected = set(changed)
        for device_id in changed:
            affected.update(self._inventory.rivals.get(device_id, ()))
        devices, index, holdings = self._inventory.devices, self._index, self._holdings
        return self._cached.with_changes(
            (
                device_status(self._inventory, index, holdings, i, self.in_use_known)
                for i in affected
                if i in devices
            ),
            violations,
        )

    def _adopt_holdings(self, holdings: dict[str, Holder]) -> None:
        """New holdings from a reconcile: recompute only the devices whose holder changed."""
        if self._cached is None or not self.in_use_known:
            self._holdings, self.in_use_known = holdings, True
            self._changed()
            return
        before = self._holdings
        changed = {i for i in before.keys() | holdings.keys() if before.get(i) != holdings.get(i)}
        self._holdings = holdings
        if self._index is None:
            self._index = index_holdings(self._inventory, holdings)
        else:
            reindex(self._inventory, self._index, holdings, changed)
        self._cached = self._restated(changed, find_violations(self._inventory, self._index))
        self.generation += 1

    def _drop(self, holders: Sequence[Holder]) -> None:
        for holder in holders:
            self._pending.pop(holder.allocation, None)
            self._listed = {i: h for i, h in self._listed.items() if h != holder}

    def reconcile(self, listed: Mapping[str, Holder], started_at: float) -> list[Pending]:
        """Adopt a successful PodResources List begun at started_at; returns dropped pending."""
        kept: dict[int, Pending] = {}
        dropped: list[Pending] = []
        for serial, pending in self._pending.items():
            seen = any(i in listed for i in pending.device_ids)
            settled = started_at - pending.granted_at >= self._grace_s
            if seen or settled:
                dropped.append(pending)
            else:
                kept[serial] = pending
        self._pending = kept
        self._listed = dict(listed)
        holdings = dict(listed)
        for pending in kept.values():
            holdings.update(dict.fromkeys(pending.device_ids, pending.holder))
        if holdings != self._holdings or not self.in_use_known:
            self._adopt_holdings(holdings)
        self.podresources_reachable = True
        self.last_error = ""
        return dropped

    def reconcile_failed(self, error: str) -> None:
        """PodResources could not be read: keep every holding, remember why."""
        self.podresources_reachable = False
        self.last_error = error

    def counts(self, resource: str) -> dict[State, int]:
        """How many devices of a resource are in each state."""
        statuses = self.availability().statuses
        found = dict.fromkeys(State, 0)
        for device_id in self._inventory.resource_ids(resource):
            found[statuses[device_id].state] += 1
        return found
