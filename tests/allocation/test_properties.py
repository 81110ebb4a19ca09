"""Property tests: random pod life cycles on hosts with shared groups and SR-IOV.

A small model of the kubelet drives the pure allocation layer: it admits pods from the
devices it believes healthy (a possibly stale copy of what ListAndWatch last said), asks the
preferred policy, fills any shortfall in an arbitrary order, and calls Allocate; pods are
deleted, PodResources is read (or is down), the plugin restarts. Whatever happens, no two
live containers hold one IOMMU group or a PF and one of its VFs, and once every pod is gone
every device is available again.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from hostdev.allocation import AllocationRefused, Holder, Inventory, State, compute_availability
from hostdev.host.model import Host
from hostdev.inventory import build_inventory
from hostdev.ledger import AllocationLedger
from hostdev.placement import POLICIES, PreferenceRequest, preferred_allocation

from .conftest import NIC_A, NIC_B, SHARED_RESOURCES

GRACE_S = 5.0
# The same host with group 32's two NICs in one resource, so one request can span a group.
MERGED = {
    **{k: v for k, v in SHARED_RESOURCES.items() if not k.startswith("example.com/nic")},
    "example.com/nic": (NIC_A, NIC_B),
}


@dataclass
class Kubelet:
    """Just enough of the kubelet's device manager: allocations and a view of health."""

    inventory: Inventory
    ledger: AllocationLedger
    now: float = 0.0
    healthy: set[str] = field(default_factory=set)
    pods: dict[str, dict[Holder, dict[str, list[str]]]] = field(default_factory=dict)
    serial: int = 0

    def allocated(self) -> set[str]:
        """Every device a live pod holds."""
        return {
            i for pod in self.pods.values() for c in pod.values() for ids in c.values() for i in ids
        }

    def live_holdings(self) -> dict[str, Holder]:
        """Device ID → the live container holding it."""
        return {
            i: holder
            for pod in self.pods.values()
            for holder, c in pod.items()
            for ids in c.values()
            for i in ids
        }

    def refresh(self) -> None:
        """ListAndWatch delivered: the kubelet now sees the plugin's current health."""
        statuses = self.ledger.availability().statuses
        self.healthy = {i for i, s in statuses.items() if s.healthy}

    def reconcile(self) -> None:
        """PodResources List, answered from the live pods."""
        self.ledger.reconcile(self.live_holdings(), started_at=self.now)

    def restart_plugin(self, reachable: bool) -> None:
        """A new plugin process: empty ledger, then its first reconcile."""
        self.ledger = AllocationLedger(self.inventory, grace_s=GRACE_S)
        if reachable:
            self.reconcile()
        else:
            self.ledger.reconcile_failed("connection refused")

    def admit(self, data: st.DataObject, requests: dict[str, dict[str, int]]) -> bool:
        """Admit a pod container by container, resource by resource, like the kubelet."""
        self.serial += 1
        name = f"pod{self.serial}"
        granted: dict[Holder, dict[str, list[str]]] = {}
        for container, wants in requests.items():
            holder = Holder("ns", name, container)
            for resource, count in wants.items():
                chosen = self.choose(data, resource, count, granted)
                if chosen is None:
                    return False
                try:
                    self.ledger.allocate(resource, [chosen], self.now)
                except AllocationRefused:
                    return False
                granted.setdefault(holder, {})[resource] = chosen
        self.pods[name] = granted
        return True

    def choose(
        self, data: st.DataObject, resource: str, count: int, granted: dict
    ) -> list[str] | None:
        """Preferred devices first, then the kubelet's own arbitrary fill."""
        taken = self.allocated() | {i for c in granted.values() for ids in c.values() for i in ids}
        free = [
            i for i in self.inventory.resource_ids(resource) if i in self.healthy and i not in taken
        ]
        if len(free) < count:
            return None
        policy = data.draw(st.sampled_from(sorted(POLICIES)), label="policy")
        request = PreferenceRequest(self.inventory, self.ledger.availability(), free, [], count)
        chosen = [i for i in preferred_allocation(request, policy) if i in free][:count]
        rest = data.draw(st.permutations([i for i in free if i not in chosen]), label="fill")
        return chosen + rest[: count - len(chosen)]

    def check(self) -> None:
        """No two live containers share a group or a PF/VF pair; the ledger forgets none."""
        live = self.live_holdings()
        assert compute_availability(self.inventory, live).violations == ()
        if self.ledger.in_use_known:
            assert set(live) <= set(self.ledger.holdings)
        # the ledger updates availability in place after grants and reconciles: never drift
        kept = self.ledger.availability()
        fresh = compute_availability(
            self.ledger.inventory, self.ledger.holdings, in_use_known=self.ledger.in_use_known
        )
        assert (kept.statuses, kept.blocked(), kept.violations) == (
            fresh.statuses,
            fresh.blocked(),
            fresh.violations,
        )


REQUEST = st.dictionaries(
    st.sampled_from(["c1", "c2"]),
    st.dictionaries(
        st.sampled_from(sorted(SHARED_RESOURCES)), st.integers(1, 2), min_size=1, max_size=2
    ),
    min_size=1,
    max_size=2,
)
STEPS = [
    "create",
    "create",
    "create",
    "delete",
    "delete",
    "reconcile",
    "tick",
    "refresh",
    "restart",
    "unreachable",
]


def run_life_cycle(host: Host, resources: dict[str, tuple[str, ...]], data: st.DataObject) -> None:
    """Random steps, the invariants after each, then every pod deleted."""
    inventory = build_inventory(host, resources)
    kubelet = Kubelet(inventory, AllocationLedger(inventory, grace_s=GRACE_S))
    request = REQUEST.map(
        lambda r: {c: {_fit(k, resources): n for k, n in w.items()} for c, w in r.items()}
    )
    if data.draw(st.booleans(), label="first reconcile"):
        kubelet.reconcile()
    kubelet.refresh()
    for _ in range(data.draw(st.integers(1, 30), label="steps")):
        step = data.draw(st.sampled_from(STEPS), label="step")
        if step == "create":
            kubelet.admit(data, data.draw(request, label="pod"))
        elif step == "delete" and kubelet.pods:
            del kubelet.pods[data.draw(st.sampled_from(sorted(kubelet.pods)), label="victim")]
        elif step == "reconcile":
            kubelet.reconcile()
        elif step == "tick":
            kubelet.now += data.draw(st.sampled_from([0.1, 1.0, GRACE_S]), label="dt")
        elif step == "restart":
            kubelet.restart_plugin(data.draw(st.booleans(), label="reachable"))
        elif step == "unreachable":
            kubelet.ledger.reconcile_failed("connection refused")
        if step == "refresh" or data.draw(st.booleans(), label="listandwatch"):
            kubelet.refresh()
        kubelet.check()
    kubelet.pods.clear()
    kubelet.now += GRACE_S + 1.0
    kubelet.reconcile()
    availability = kubelet.ledger.availability()
    assert {
        i: s.state for i, s in availability.statuses.items() if s.state is not State.AVAILABLE
    } == {}


def _fit(resource: str, resources: dict[str, tuple[str, ...]]) -> str:
    """Map a SHARED_RESOURCES name onto the resource set under test."""
    return resource if resource in resources else "example.com/nic"


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_shared_groups_never_go_to_two_pods(shared_host: Host, data: st.DataObject) -> None:
    run_life_cycle(shared_host, SHARED_RESOURCES, data)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_one_resource_spanning_a_group(shared_host: Host, data: st.DataObject) -> None:
    run_life_cycle(shared_host, MERGED, data)
