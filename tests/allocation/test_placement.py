"""GetPreferredAllocation policies: NUMA first, whole groups, PCIe proximity, must_include."""

from __future__ import annotations

import pytest

from hostdev.allocation import Holder, Inventory, ServedDevice, compute_availability
from hostdev.errors import BadInputError
from hostdev.inventory import make_inventory
from hostdev.placement import POLICIES, PreferenceRequest, preferred_allocation

from .conftest import AUDIO_GROUP_15, GPU_GROUP_15, T4_NUMA0, T4_NUMA1, VFS


def dev(
    device_id: str, group: int, numa: int | None, *path: str, resource: str = "r"
) -> ServedDevice:
    """A served device with no PCI address (no function lock): only its group relates it."""
    return ServedDevice(device_id, resource, None, group, numa, (*path, device_id))


# rp = root port, sw = switch. g1/g2 share group 9; x shares group 10 with y of resource r2,
# q shares group 12 with z of resource r2.
LAYOUT = make_inventory(
    [
        dev("a0", 1, 0, "rp1"),
        dev("a1", 2, 0, "rp1"),
        dev("b0", 3, 0, "rp2"),
        dev("c0", 4, 1, "rp3"),
        dev("c1", 5, 1, "rp3"),
        dev("g1", 9, 0, "rp4", "sw"),
        dev("g2", 9, 0, "rp4", "sw"),
        dev("x", 10, 0, "rp5"),
        dev("y", 10, 0, "rp5", resource="r2"),
        dev("p", 11, 2, "rp6"),
        dev("q", 12, 2, "rp6"),
        dev("z", 12, 2, "rp6", resource="r2"),
        dev("r", 13, 2, "rp7"),
    ]
)
ALL = ["a0", "a1", "b0", "c0", "c1", "g1", "g2", "x"]


def ask(
    inventory: Inventory,
    available: list[str],
    size: int,
    must: list[str] | None = None,
    held: dict[str, Holder] | None = None,
    policy: str = "default",
) -> list[str]:
    """Run one policy on one container request."""
    request = PreferenceRequest(
        inventory, compute_availability(inventory, held or {}), available, must or [], size
    )
    return preferred_allocation(request, policy)


@pytest.mark.parametrize(
    ("available", "size", "must", "held", "expected"),
    [
        (ALL, 1, [], {}, ["a0"]),
        (ALL, 2, [], {}, ["g1", "g2"]),
        (["c0", "a0", "c1", "g1"], 2, [], {}, ["c0", "c1"]),
        (ALL, 2, ["c1"], {}, ["c1", "c0"]),
        (["x", "c0"], 1, [], {}, ["c0"]),
        (["x", "c0"], 1, [], {"y": Holder("ns", "p", "c")}, ["c0"]),
        (["a0", "g1", "x"], 1, [], {}, ["a0"]),
        (["p", "q", "r"], 2, [], {}, ["p", "r"]),
        (["a1", "b0", "a0"], 2, [], {}, ["a0", "a1"]),
        (["a0", "a1"], 3, [], {}, ["a0", "a1"]),
        (ALL, 1, ["b0", "c0"], {}, ["b0", "c0"]),
        (["a0", "a1", "g1"], 1, [], {"g2": Holder("ns", "p", "c")}, ["a0"]),
    ],
    ids=[
        "one-no-collateral",
        "whole-group-first",
        "same-numa-beats-breaking-a-group",
        "must-include-numa",
        "no-collateral-across-resources",
        "sibling-held",
        "avoid-splitting-groups",
        "groups-before-pcie",
        "same-root-port",
        "short-of-devices",
        "must-include-over-size",
        "blocked-device-never-offered",
    ],
)
def test_default_policy(
    available: list[str],
    size: int,
    must: list[str],
    held: dict[str, Holder],
    expected: list[str],
) -> None:
    assert ask(LAYOUT, available, size, must, held) == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [("default", ["p", "r"]), ("topology", ["p", "q"]), ("kubelet-order", ["q", "p"])],
    ids=["default", "topology", "kubelet-order"],
)
def test_policies_differ_in_what_comes_first(policy: str, expected: list[str]) -> None:
    assert ask(LAYOUT, ["q", "p", "r"], 2, policy=policy) == expected


def test_kubelet_order_keeps_must_include_and_skips_blocked() -> None:
    held = {"g2": Holder("ns", "p", "c")}
    assert ask(LAYOUT, ["g1", "b0", "a0"], 2, ["c0"], held, policy="kubelet-order") == ["c0", "b0"]


def test_size_zero_and_unknown_policy() -> None:
    assert ask(LAYOUT, ALL, 0) == []
    with pytest.raises(BadInputError, match="unknown allocation policy 'best' \\(known: default"):
        ask(LAYOUT, ALL, 1, policy="best")
    assert sorted(POLICIES) == ["default", "kubelet-order", "topology"]


def test_unknown_ids_are_ignored() -> None:
    assert ask(LAYOUT, ["nope", "a0"], 2, ["gone"]) == ["a0"]


def test_gpu_without_companion_preferred(shared: Inventory) -> None:
    assert ask(shared, [GPU_GROUP_15, T4_NUMA0, T4_NUMA1], 1) == [T4_NUMA0]
    assert ask(shared, [GPU_GROUP_15, T4_NUMA1], 1) == [T4_NUMA1]
    held = {AUDIO_GROUP_15: Holder("ns", "p", "c")}
    assert ask(shared, [T4_NUMA1, GPU_GROUP_15], 1, held=held) == [T4_NUMA1]


def test_vfs_of_one_pf_stay_together(shared: Inventory) -> None:
    chosen = ask(shared, list(VFS), 3)
    assert len(chosen) == 3
    assert set(chosen) <= set(VFS)
