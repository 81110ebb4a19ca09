"""The default preferred-allocation policy: must_include first, then the same NUMA node."""

from __future__ import annotations

import pytest

from hostdev.host.model import PciAddress
from hostdev.kubelet.preferred import NumaPolicy
from hostdev.selection import ServedDevice

NUMA = {
    "0000:01:00.0": 0,
    "0000:02:00.0": 1,
    "0000:03:00.0": 0,
    "0000:04:00.0": 1,
    "0000:05:00.0": None,
}
DEVICES = {i: ServedDevice(i, PciAddress.parse(i), 1, n) for i, n in NUMA.items()}
ALL = list(NUMA)


@pytest.mark.parametrize(
    "available,must,size,expected",
    [
        (ALL, [], 1, ["0000:01:00.0"]),
        (ALL, [], 2, ["0000:01:00.0", "0000:03:00.0"]),  # node 0 and 1 tie: the first found wins
        (ALL, ["0000:02:00.0"], 2, ["0000:02:00.0", "0000:04:00.0"]),
        (ALL, ["0000:02:00.0"], 3, ["0000:02:00.0", "0000:04:00.0", "0000:01:00.0"]),
        (["0000:02:00.0", "0000:04:00.0", "0000:03:00.0"], [], 2, ["0000:02:00.0", "0000:04:00.0"]),
        (ALL, ["0000:03:00.0", "0000:01:00.0"], 2, ["0000:03:00.0", "0000:01:00.0"]),
        (["0000:01:00.0", "0000:99:00.0"], [], 2, ["0000:01:00.0"]),  # unknown IDs dropped
        ([], [], 1, []),
        (ALL, [], 0, []),
    ],
    ids=[
        "one",
        "same-node",
        "follow-must-include",
        "spill-over",
        "busiest-node",
        "must-include-only",
        "unknown",
        "empty",
        "zero",
    ],
)
def test_numa_policy(available: list[str], must: list[str], size: int, expected: list[str]) -> None:
    assert NumaPolicy().choose(DEVICES, available, must, size) == expected
