"""IOMMU-group-safe accounting for the device table, and the group-aware preferred policy.

`GroupAccounting` is the table's AvailabilityPolicy: it keeps an AllocationLedger in step
with the served devices (host + selection), answers which devices are blocked (reported
Unhealthy), and checks and records each Allocate call. `GroupPreferred` answers
GetPreferredAllocation with a policy from hostdev.placement.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from hostdev.allocation import AllocationRefused, Inventory
from hostdev.host.model import Host
from hostdev.inventory import build_inventory
from hostdev.kubelet.state import AllocationError
from hostdev.ledger import DEFAULT_GRACE_S, AllocationLedger
from hostdev.placement import DEFAULT_POLICY, PreferenceRequest, get_policy, preferred_allocation
from hostdev.selection import Resource, ServedDevice

log = logging.getLogger(__name__)


class GroupAccounting:
    """Blocks group siblings and PF/VF relatives of held devices; refuses conflicting claims."""

    def __init__(
        self,
        *,
        grace_s: float = DEFAULT_GRACE_S,
        clock: Callable[[], float] = time.monotonic,
        on_claim: Callable[[], None] = lambda: None,
    ) -> None:
        self.ledger = AllocationLedger(build_inventory(Host({}, {}), {}), grace_s=grace_s)
        self.on_claim = on_claim
        self._clock = clock
        self._served: Served | None = None

    @property
    def podresources_reachable(self) -> bool:
        """False while PodResources cannot be read (the ledger is then conservative)."""
        return self.ledger.podresources_reachable is not False

    def blocked(
        self, host: Host, resources: Sequence[Resource], in_use: frozenset[str]
    ) -> Mapping[str, str]:
        """Device ID → why it may not be handed out now (in_use is read from the ledger)."""
        self._follow(host, resources)
        availability = self.ledger.availability()
        for violation in availability.violations:
            log.error("isolation violated: %s", violation)
        return availability.blocked()

    def claim(self, resource: Resource, requests: Sequence[Sequence[str]]) -> None:
        """Record the Allocate call as pending, or raise AllocationError("unusable")."""
        try:
            holders, superseded = self.ledger.allocate(resource.name, requests, self._clock())
        except AllocationRefused as err:
            raise AllocationError("unusable", str(err)) from err
        for holder in superseded:
            log.info(
                "%s: the kubelet reassigned a device of %s, so it was released",
                resource.name,
                holder,
            )
        log.debug("%s: pending %s", resource.name, ", ".join(map(str, holders)))
        self.on_claim()

    def _follow(self, host: Host, resources: Sequence[Resource]) -> None:
        served = (host, tuple(resources))
        if self._served is not None and _same(self._served, served):
            return
        self._served = served
        ids = {r.name: [d.id for d in r.devices] for r in resources}
        self.ledger.replace_inventory(build_inventory(host, ids))


Served = tuple[Host, tuple[Resource, ...]]


def _same(a: Served, b: Served) -> bool:
    """Same host snapshot and the same Resource objects (identity: cheap, and enough)."""
    if a[0] is not b[0] or len(a[1]) != len(b[1]):
        return False
    return all(x is y for x, y in zip(a[1], b[1], strict=True))


class GroupPreferred:
    """GetPreferredAllocation through a named placement policy over the ledger's view."""

    def __init__(self, accounting: GroupAccounting, policy: str = DEFAULT_POLICY) -> None:
        get_policy(policy)  # unknown names fail at start, not at the first request
        self.accounting = accounting
        self.policy = policy

    @property
    def inventory(self) -> Inventory:
        """The served devices as the ledger sees them."""
        return self.accounting.ledger.inventory

    def choose(
        self,
        devices: Mapping[str, ServedDevice],
        available: Sequence[str],
        must_include: Sequence[str],
        size: int,
    ) -> list[str]:
        """The policy's preferred IDs for one container request."""
        ledger = self.accounting.ledger
        request = PreferenceRequest(
            ledger.inventory, ledger.availability(), available, must_include, size
        )
        return preferred_allocation(request, self.policy)
