"""The guest is what the other real-kernel tests assume: a VT-d IOMMU and the reference topology."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.guest


def test_iommu_groups_exist() -> None:
    groups = list(Path("/sys/kernel/iommu_groups").iterdir())
    assert len(groups) >= 15
