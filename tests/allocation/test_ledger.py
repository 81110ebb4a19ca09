"""The ledger: pending allocations, reconciles with PodResources, conservative mode."""

from __future__ import annotations

import pytest

from hostdev.allocation import AllocationRefused, Holder, Inventory, State
from hostdev.inventory import make_inventory
from hostdev.ledger import AllocationLedger

from .conftest import AUDIO_GROUP_15, GPU_GROUP_15, PF, T4_NUMA0, VFS

POD_A = Holder("ns", "a", "gpu")
GPU = "example.com/gpu"


def reconciled(inventory: Inventory, listed: dict[str, Holder] | None = None) -> AllocationLedger:
    """A ledger that has had one successful (empty unless told) reconcile at t=0."""
    ledger = AllocationLedger(inventory, grace_s=5.0)
    ledger.reconcile(listed or {}, started_at=0.0)
    return ledger


def test_before_any_reconcile_related_devices_are_blocked(shared: Inventory) -> None:
    ledger = AllocationLedger(shared)
    assert ledger.podresources_reachable is None
    assert ledger.availability().statuses[GPU_GROUP_15].state is State.BLOCKED
    assert ledger.availability().statuses[T4_NUMA0].state is State.AVAILABLE
    ledger.reconcile({}, started_at=0.0)
    assert ledger.availability().blocked() == {}


def test_allocate_blocks_the_rest_of_the_group_until_released(shared: Inventory) -> None:
    ledger = reconciled(shared)
    holders, superseded = ledger.allocate(GPU, [[GPU_GROUP_15]], now=10.0)
    assert (holders, superseded) == ([Holder(allocation=1)], ())
    audio = ledger.availability().statuses[AUDIO_GROUP_15]
    assert audio.reason == "group 15 held by 0000:17:00.0 (allocation #1, pod not known yet)"
    ledger.reconcile({GPU_GROUP_15: POD_A}, started_at=11.0)  # the kubelet names the pod
    assert ledger.pending == ()
    assert (
        ledger.availability().statuses[AUDIO_GROUP_15].reason.endswith("(pod ns/a, container gpu)")
    )
    ledger.reconcile({}, started_at=20.0)  # the pod is gone
    assert ledger.availability().blocked() == {}


@pytest.mark.parametrize(
    ("started_at", "still_held"),
    [(10.5, True), (14.9, True), (15.0, False), (60.0, False)],
    ids=["just-after", "inside-grace", "grace-over", "long-after"],
)
def test_pending_allocation_survives_reconciles_inside_the_grace(
    shared: Inventory, started_at: float, still_held: bool
) -> None:
    ledger = reconciled(shared)
    ledger.allocate(GPU, [[GPU_GROUP_15]], now=10.0)
    dropped = ledger.reconcile({}, started_at=started_at)
    assert (GPU_GROUP_15 in ledger.holdings) is still_held
    assert len(dropped) == (0 if still_held else 1)


def test_unreachable_podresources_keeps_everything(shared: Inventory) -> None:
    ledger = reconciled(shared, {VFS[0]: POD_A})
    ledger.allocate(GPU, [[GPU_GROUP_15]], now=10.0)
    before = dict(ledger.holdings)
    ledger.reconcile_failed("connection refused")
    assert ledger.podresources_reachable is False
    assert ledger.last_error == "connection refused"
    assert ledger.holdings == before
    assert ledger.in_use_known
    assert set(ledger.availability().blocked()) == {AUDIO_GROUP_15, PF}
    ledger.reconcile({}, started_at=100.0)
    assert ledger.podresources_reachable is True
    assert ledger.availability().blocked() == {}


def test_refused_allocation_changes_nothing(shared: Inventory) -> None:
    ledger = reconciled(shared, {GPU_GROUP_15: POD_A})
    with pytest.raises(AllocationRefused, match="group 15 held by"):
        ledger.allocate("example.com/gpu-audio", [[AUDIO_GROUP_15]], now=1.0)
    assert ledger.pending == ()
    assert ledger.holdings == {GPU_GROUP_15: POD_A}


def test_reassigned_device_drops_the_old_holder(shared: Inventory) -> None:
    ledger = reconciled(shared, {GPU_GROUP_15: POD_A})
    _, superseded = ledger.allocate(GPU, [[GPU_GROUP_15]], now=1.0)
    assert superseded == (POD_A,)
    assert ledger.holdings == {GPU_GROUP_15: Holder(allocation=1)}


def test_serials_keep_growing(shared: Inventory) -> None:
    ledger = reconciled(shared)
    first, _ = ledger.allocate(GPU, [[T4_NUMA0], [GPU_GROUP_15]], now=1.0)
    second, _ = ledger.allocate("example.com/vf", [[VFS[0]]], now=2.0)
    assert [h.allocation for h in [*first, *second]] == [1, 2, 3]


def test_counts_and_inventory_replacement(shared: Inventory) -> None:
    ledger = reconciled(shared, {GPU_GROUP_15: POD_A})
    assert ledger.counts(GPU) == {State.AVAILABLE: 2, State.IN_USE: 1, State.BLOCKED: 0}
    assert ledger.counts("example.com/gpu-audio")[State.BLOCKED] == 1
    smaller = make_inventory(d for d in shared.devices.values() if d.id != AUDIO_GROUP_15)
    ledger.replace_inventory(smaller)
    assert ledger.inventory is smaller
    assert ledger.holdings == {GPU_GROUP_15: POD_A}
    assert AUDIO_GROUP_15 not in ledger.availability().statuses


def test_allocate_changes_the_device_and_its_group_companion(shared: Inventory) -> None:
    ledger = reconciled(shared)
    before = ledger.availability()
    ledger.allocate(GPU, [[GPU_GROUP_15]], now=1.0)
    after = ledger.availability().statuses
    changed = {i: (s.state, s.reason) for i, s in after.items() if before.statuses[i] != s}
    assert changed == {
        GPU_GROUP_15: (State.IN_USE, ""),
        AUDIO_GROUP_15: (
            State.BLOCKED,
            f"group 15 held by {GPU_GROUP_15} (allocation #1, pod not known yet)",
        ),
    }


def test_unchanged_reconcile_keeps_the_availability(shared: Inventory) -> None:
    ledger = reconciled(shared, {GPU_GROUP_15: POD_A})
    generation, availability = ledger.generation, ledger.availability()
    ledger.reconcile({GPU_GROUP_15: POD_A}, started_at=1.0)
    assert (ledger.generation, ledger.availability()) == (generation, availability)
    ledger.reconcile({}, started_at=2.0)
    assert ledger.generation == generation + 1
    assert ledger.availability().blocked() == {}
