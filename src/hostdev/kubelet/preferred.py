"""GetPreferredAllocation policies: given the devices the kubelet may pick from, which to prefer.

The kubelet treats the answer as a hint: it keeps the IDs that are available and fills any
shortfall itself. A policy is any object with `choose(...)`; `NumaPolicy` is the default.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Protocol

from hostdev.selection import ServedDevice


class PreferredPolicy(Protocol):
    """Chooses `size` device IDs from `available`, always keeping `must_include`."""

    def choose(
        self,
        devices: Mapping[str, ServedDevice],
        available: Sequence[str],
        must_include: Sequence[str],
        size: int,
    ) -> list[str]:
        """The preferred IDs, at most `size` (must_include first)."""
        ...


class NumaPolicy:
    """must_include first, then devices on the NUMA node the choice already leans to."""

    def choose(
        self,
        devices: Mapping[str, ServedDevice],
        available: Sequence[str],
        must_include: Sequence[str],
        size: int,
    ) -> list[str]:
        """must_include, then the best NUMA node's devices, then the rest in address order."""
        chosen = list(dict.fromkeys(must_include))[: max(size, 0)]
        rest = sorted(i for i in dict.fromkeys(available) if i not in chosen and i in devices)
        node = self._favourite_node(devices, chosen, rest)
        rest.sort(key=lambda i: devices[i].numa_node != node)  # stable: address order kept
        return chosen + rest[: max(size - len(chosen), 0)]

    @staticmethod
    def _favourite_node(
        devices: Mapping[str, ServedDevice], chosen: Sequence[str], rest: Sequence[str]
    ) -> int | None:
        """The NUMA node of the already chosen devices, else the one with most free devices."""
        pool = [i for i in chosen if i in devices] or list(rest)
        counts = Counter(devices[i].numa_node for i in pool)
        return counts.most_common(1)[0][0] if counts else None
