"""The allocation rules: locks, availability with reasons, violations and the Allocate check."""

from __future__ import annotations

import re

import pytest

from hostdev.allocation import (
    AllocationRefused,
    Holder,
    Inventory,
    Lock,
    Mode,
    State,
    check_allocation,
    compute_availability,
    index_holdings,
    reindex,
    rivals,
)
from hostdev.host.model import Host
from hostdev.inventory import build_inventory

from .conftest import (
    AUDIO_GROUP_15,
    GPU_GROUP_15,
    MDEV,
    NIC_A,
    NIC_B,
    PF,
    QAT,
    T4_NUMA0,
    T4_NUMA1,
    VFS,
)

POD_A = Holder("ns", "a", "c")
POD_B = Holder("ns", "b", "c")
E, S = Mode.EXCLUSIVE, Mode.SHARED


@pytest.mark.parametrize(
    ("device_id", "takes", "contested"),
    [
        (GPU_GROUP_15, [("group", "15", E), ("function", GPU_GROUP_15, E)], [("group", "15", E)]),
        (PF, [("group", "22", E), ("function", PF, E)], [("function", PF, E)]),
        (
            VFS[0],
            [("group", "40", E), ("function", VFS[0], E), ("function", PF, S)],
            [("function", PF, S)],
        ),
        (MDEV, [("group", "47", E), ("function", "0000:3b:00.0", S)], []),  # parent not served
    ],
    ids=["gpu", "pf", "vf", "mdev"],
)
def test_locks(
    shared: Inventory,
    device_id: str,
    takes: list[tuple[str, str, Mode]],
    contested: list[tuple[str, str, Mode]],
) -> None:
    """A device takes every key; the inventory keeps those another served device contests."""
    assert shared.devices[device_id].locks == tuple(Lock(*lock) for lock in takes)
    assert shared.locks[device_id] == tuple(Lock(*lock) for lock in contested)


def test_shared_only_keys_are_not_kept(shared_host: Host) -> None:
    """Two VFs of a PF that is not served share its key: nothing to refuse, nothing kept."""
    inventory = build_inventory(shared_host, {"example.com/vf": VFS[:2]})
    assert inventory.locks == dict.fromkeys(VFS[:2], ())
    assert compute_availability(inventory, {VFS[0]: POD_A}).blocked() == {}


def test_related_are_the_devices_that_share_a_lock(shared: Inventory) -> None:
    assert shared.related == {GPU_GROUP_15, AUDIO_GROUP_15, NIC_A, NIC_B, PF, *VFS}


@pytest.mark.parametrize(
    ("device_id", "expected"),
    [
        (GPU_GROUP_15, {AUDIO_GROUP_15}),
        (PF, set(VFS)),
        (VFS[3], {PF}),
        (T4_NUMA0, set()),
    ],
    ids=["group-sibling", "pf-vfs", "vf-pf", "alone"],
)
def test_rivals(shared: Inventory, device_id: str, expected: set[str]) -> None:
    assert rivals(shared, device_id) == expected


@pytest.mark.parametrize(
    ("device_id", "reason"),
    [
        (NIC_A, "group not viable: 0000:06:01.0 on e1000, 0000:06:02.0 on 8139cp"),
        ("0000:05:00.0", "a PCI bridge is never handed out"),
        ("0000:08:00.0", "no IOMMU group"),
        ("0000:99:00.0", "not on this host"),
        ("not-an-id", "not on this host"),
        (T4_NUMA0, ""),
    ],
    ids=["not-viable", "bridge", "no-group", "absent", "garbage", "fine"],
)
def test_unusable_devices_are_blocked_with_the_reason(
    kitchen_host: Host, device_id: str, reason: str
) -> None:
    inventory = build_inventory(kitchen_host, {"example.com/x": [device_id]})
    status = compute_availability(inventory, {}).statuses[device_id]
    assert (status.state, status.reason) == (
        (State.BLOCKED, reason) if reason else (State.AVAILABLE, "")
    )


HELD = "group 15 held by 0000:17:00.0 (pod ns/a, container c)"


@pytest.mark.parametrize(
    ("holdings", "expected"),
    [
        ({GPU_GROUP_15: POD_A}, {AUDIO_GROUP_15: HELD}),
        ({AUDIO_GROUP_15: POD_A}, {GPU_GROUP_15: HELD.replace("0000:17:00.0", AUDIO_GROUP_15)}),
        ({NIC_A: POD_A}, {NIC_B: "group 32 held by 0000:06:01.0 (pod ns/a, container c)"}),
        ({PF: POD_A}, dict.fromkeys(VFS, "PF 0000:04:00.1 allocated (pod ns/a, container c)")),
        ({VFS[0]: POD_A}, {PF: f"VF {VFS[0]} of {PF} allocated (pod ns/a, container c)"}),
        (
            {VFS[0]: POD_A, VFS[1]: POD_B},
            {PF: f"VF {VFS[0]} of {PF} allocated (pod ns/a, container c)"},
        ),
        (
            {VFS[1]: POD_B, VFS[0]: POD_A},
            {PF: f"VF {VFS[0]} of {PF} allocated (pod ns/a, container c)"},
        ),
        (
            {VFS[0]: POD_A, VFS[1]: POD_A, PF: POD_A},
            dict.fromkeys(VFS[2:], "PF 0000:04:00.1 allocated (pod ns/a, container c)"),
        ),
        ({GPU_GROUP_15: POD_A, AUDIO_GROUP_15: POD_A}, {}),
        ({T4_NUMA0: POD_A, QAT: POD_B, MDEV: POD_A}, {}),
        ({}, {}),
    ],
    ids=[
        "gpu-blocks-audio",
        "audio-blocks-gpu",
        "nic-blocks-nic",
        "pf-blocks-vfs",
        "vf-blocks-pf",
        "two-vfs-two-pods",
        "two-vfs-listed-the-other-way",
        "pf-held-after-its-vfs",
        "whole-group-one-pod",
        "unrelated",
        "nothing",
    ],
)
def test_blocked_devices_and_reasons(
    shared: Inventory, holdings: dict[str, Holder], expected: dict[str, str]
) -> None:
    availability = compute_availability(shared, holdings)
    assert availability.blocked() == expected
    assert not availability.violations
    for device_id, holder in holdings.items():
        assert availability.statuses[device_id].state is State.IN_USE
        assert availability.statuses[device_id].holder == holder
        assert availability.statuses[device_id].healthy
    assert not any(availability.statuses[i].healthy for i in expected)


PENDING = Holder(allocation=7)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ({VFS[0]: POD_A, VFS[1]: POD_B}, {VFS[1]: POD_B}),
        ({VFS[0]: POD_A, VFS[1]: POD_A}, {VFS[0]: POD_A, VFS[1]: POD_A, PF: POD_A}),
        ({VFS[0]: PENDING, T4_NUMA0: POD_B}, {VFS[0]: POD_A, T4_NUMA0: POD_B}),
        ({GPU_GROUP_15: POD_A, AUDIO_GROUP_15: POD_A, MDEV: POD_B}, {}),
        ({NIC_A: POD_A}, {NIC_A: POD_A}),
    ],
    ids=["vf-released", "pf-taken-after-vfs", "pending-named", "all-released", "unchanged"],
)
def test_reindex_matches_a_fresh_index(
    shared: Inventory, before: dict[str, Holder], after: dict[str, Holder]
) -> None:
    index = index_holdings(shared, before)
    changed = {i for i in before.keys() | after.keys() if before.get(i) != after.get(i)}
    reindex(shared, index, after, changed)
    assert index == index_holdings(shared, after)


def test_unknown_in_use_blocks_only_related_devices(shared: Inventory) -> None:
    availability = compute_availability(shared, {}, in_use_known=False)
    assert set(availability.blocked()) == shared.related
    assert all("PodResources" in reason for reason in availability.blocked().values())
    assert availability.statuses[T4_NUMA1].state is State.AVAILABLE


@pytest.mark.parametrize(
    ("holdings", "key"),
    [
        ({GPU_GROUP_15: POD_A, AUDIO_GROUP_15: POD_B}, "group 15"),
        ({PF: POD_A, VFS[2]: POD_B}, f"function {PF}"),
    ],
    ids=["group", "pf-vf"],
)
def test_violations_are_reported(shared: Inventory, holdings: dict[str, Holder], key: str) -> None:
    violations = compute_availability(shared, holdings).violations
    assert len(violations) == 1
    assert violations[0].startswith(f"{key} held by several holders")


def new(n: int) -> list[Holder]:
    """n fresh pending holders."""
    return [Holder(allocation=i) for i in range(1, n + 1)]


@pytest.mark.parametrize(
    ("resource", "containers", "holdings", "message"),
    [
        ("example.com/gpu", [["0000:99:00.0"]], {}, "unknown device '0000:99:00.0'"),
        ("example.com/gpu", [[AUDIO_GROUP_15]], {}, f"unknown device '{AUDIO_GROUP_15}'"),
        ("example.com/gpu", [[T4_NUMA0], [T4_NUMA0]], {}, "requested twice"),
        (
            "example.com/gpu-audio",
            [[AUDIO_GROUP_15]],
            {GPU_GROUP_15: POD_A},
            f"device {AUDIO_GROUP_15} is unavailable: {HELD}",
        ),
        ("example.com/pf", [[PF]], {VFS[4]: POD_A}, f"VF {VFS[4]} of {PF} allocated"),
        ("example.com/vf", [[VFS[0]], [VFS[1]]], {PF: POD_A}, "PF 0000:04:00.1 allocated"),
    ],
    ids=["unknown", "other-resource", "twice", "sibling-held", "vf-held", "pf-held"],
)
def test_refused_requests(
    shared: Inventory,
    resource: str,
    containers: list[list[str]],
    holdings: dict[str, Holder],
    message: str,
) -> None:
    with pytest.raises(AllocationRefused, match=re.escape(message)):
        check_allocation(shared, holdings, resource, containers, new(len(containers)))


@pytest.mark.parametrize(
    ("containers", "message"),
    [
        ([[NIC_A], [NIC_B]], f"{NIC_B} (container 2) and {NIC_A} (container 1) share group 32"),
        ([[PF], [VFS[0]]], f"{VFS[0]} (container 2) and {PF} (container 1) share function {PF}"),
        ([[VFS[0]], [PF]], f"{PF} (container 2) and {VFS[0]} (container 1) share function {PF}"),
    ],
    ids=["group", "pf-then-vf", "vf-then-pf"],
)
def test_containers_of_one_request_never_share(
    shared_host: Host, containers: list[list[str]], message: str
) -> None:
    inventory = build_inventory(shared_host, {"example.com/nic": [NIC_A, NIC_B, PF, *VFS]})
    with pytest.raises(AllocationRefused, match=re.escape(message)):
        check_allocation(inventory, {}, "example.com/nic", containers, new(len(containers)))


def test_one_container_may_take_a_whole_group(shared_host: Host) -> None:
    inventory = build_inventory(shared_host, {"example.com/nic": [NIC_A, NIC_B]})
    grant = check_allocation(inventory, {}, "example.com/nic", [[NIC_A, NIC_B]], new(1))
    assert grant.holdings == {NIC_A: Holder(allocation=1), NIC_B: Holder(allocation=1)}


def test_not_viable_group_is_refused(kitchen_host: Host) -> None:
    inventory = build_inventory(kitchen_host, {"example.com/nic": [NIC_A]})
    with pytest.raises(
        AllocationRefused, match=re.escape("group not viable: 0000:06:01.0 on e1000")
    ):
        check_allocation(inventory, {}, "example.com/nic", [[NIC_A]], new(1))


def test_unknown_in_use_refuses_related_devices(shared: Inventory) -> None:
    with pytest.raises(AllocationRefused, match="in-use state unknown"):
        check_allocation(
            shared, {}, "example.com/gpu", [[GPU_GROUP_15]], new(1), in_use_known=False
        )
    grant = check_allocation(
        shared, {}, "example.com/gpu", [[T4_NUMA0]], new(1), in_use_known=False
    )
    assert grant.holdings == {T4_NUMA0: Holder(allocation=1)}


def test_kubelet_reassigning_a_held_device_supersedes_its_holder(shared: Inventory) -> None:
    holdings = {GPU_GROUP_15: POD_A, AUDIO_GROUP_15: POD_A, T4_NUMA0: POD_B}
    grant = check_allocation(shared, holdings, "example.com/gpu", [[GPU_GROUP_15]], new(1))
    assert grant.superseded == (POD_A,)
    assert grant.holdings == {GPU_GROUP_15: Holder(allocation=1), T4_NUMA0: POD_B}
    availability = compute_availability(shared, grant.holdings)
    assert availability.statuses[AUDIO_GROUP_15].reason.startswith("group 15 held by")


def test_holder_names_itself() -> None:
    assert str(POD_A) == "pod ns/a, container c"
    assert str(Holder(allocation=3)) == "allocation #3, pod not known yet"


def test_inventory_lists_resources(shared: Inventory) -> None:
    assert shared.resources[0] == "example.com/gpu"
    assert shared.resource_ids("example.com/gpu") == (GPU_GROUP_15, T4_NUMA0, T4_NUMA1)


def test_inventory_shares_equal_parts(shared: Inventory, shared_host: Host) -> None:
    """Thousands of VFs of one PF must not each hold a copy of the same lock and place."""
    assert len({id(shared.locks[v]) for v in VFS}) == 1  # one tuple: the lock on their PF
    assert shared.locks[VFS[0]][-1].mode is Mode.SHARED
    assert len({id(shared.places[v]) for v in VFS}) == 1
    (own,) = shared.locks[PF]  # a function's lock is named by its device ID object
    assert own.kind == "function" and own.name is next(i for i in shared.devices if i == PF)
    device = shared.devices[VFS[0]]
    assert device.address is shared_host.devices[device.address].address  # not a parsed copy
