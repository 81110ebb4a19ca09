"""Guest-only tests skip themselves unless the real-kernel harness runs them.

The harness (harness/run-in-guest) sets HOSTDEV_REALKERNEL_GUEST=1 inside the guest; everywhere
else the tests marked `guest` are reported as skipped, so `make test` stays hardware-free.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from .guest import restore_drivers, snapshot_drivers

IN_GUEST = os.environ.get("HOSTDEV_REALKERNEL_GUEST") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip every `guest` test outside the guest."""
    if IN_GUEST:
        return
    skip = pytest.mark.skip(reason="runs only in the real-kernel guest: make test-realkernel")
    for item in items:
        if item.get_closest_marker("guest"):
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def pristine_guest(request: pytest.FixtureRequest) -> Iterator[None]:
    """Each guest test leaves the devices and their drivers as it found them."""
    if not (IN_GUEST and request.node.get_closest_marker("guest")):
        yield
        return
    saved = snapshot_drivers()
    yield
    restore_drivers(saved)
