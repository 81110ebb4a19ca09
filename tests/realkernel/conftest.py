"""Guest-only tests skip themselves unless the real-kernel harness runs them.

The harness (harness/run-in-guest) sets HOSTDEV_REALKERNEL_GUEST=1 inside the guest; everywhere
else the tests marked `guest` are reported as skipped, so `make test` stays hardware-free.
"""

from __future__ import annotations

import os

import pytest

IN_GUEST = os.environ.get("HOSTDEV_REALKERNEL_GUEST") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every `guest` test outside the guest."""
    if IN_GUEST:
        return
    skip = pytest.mark.skip(reason="runs only in the real-kernel guest: make test-realkernel")
    for item in items:
        if item.get_closest_marker("guest"):
            item.add_marker(skip)
