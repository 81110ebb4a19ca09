"""GroupAccounting in the device table: Unhealthy siblings, refused claims, preferred choice."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from hostdev.allocation import Holder
from hostdev.config import DEFAULT_CONFIG
from hostdev.errors import BadInputError
from hostdev.host.model import VFIO_PCI, Host
from hostdev.host.scan import scan_host
from hostdev.kubelet.accounting import GroupAccounting, GroupPreferred
from hostdev.kubelet.state import AllocationError, DeviceTable
from hostdev.testing.examples import build_example

from .conftest import AUDIO_GROUP_15, GPU_GROUP_15, T4_NUMA0, T4_NUMA1

GPU = "devices.kubevirt.io/10de_2184"
AUDIO = "devices.kubevirt.io/10de_1aeb"
T4 = "devices.kubevirt.io/10de_1eb8"


def table_on(host: Host) -> tuple[DeviceTable, GroupAccounting]:
    """A device table with group accounting that has seen an empty PodResources list."""
    claims: list[int] = []
    accounting = GroupAccounting(clock=lambda: 1.0, on_claim=lambda: claims.append(1))
    table = DeviceTable(DEFAULT_CONFIG, host, accounting)
    accounting.ledger.reconcile({}, started_at=0.0)
    table.set_in_use(())
    return table, accounting


async def test_claim_turns_the_sibling_unhealthy_after_the_answer(shared_host: Host) -> None:
    table, accounting = table_on(shared_host)
    stream = table.watch(AUDIO)
    first = await anext(stream)
    assert first.by_id[AUDIO_GROUP_15].healthy
    table.claim(GPU, [[GPU_GROUP_15]])
    assert [p.device_ids for p in accounting.ledger.pending] == [(GPU_GROUP_15,)]
    assert table.snapshot(AUDIO) is first  # published right after, not inside, Allocate
    second = await anext(stream)
    assert second.by_id[AUDIO_GROUP_15].problem == (
        "group 15 held by 0000:17:00.0 (allocation #1, pod not known yet)"
    )
    await stream.aclose()
    with pytest.raises(AllocationError) as caught:
        table.claim(AUDIO, [[AUDIO_GROUP_15]])
    assert caught.value.code == "unusable"
    assert "group 15 held by 0000:17:00.0" in str(caught.value)


async def test_podresources_release_brings_the_sibling_back(shared_host: Host) -> None:
    table, accounting = table_on(shared_host)
    accounting.ledger.reconcile({GPU_GROUP_15: Holder("ns", "a", "c")}, started_at=1.0)
    table.set_in_use(accounting.ledger.holdings)
    assert not table.snapshot(AUDIO).by_id[AUDIO_GROUP_15].healthy  # type: ignore[union-attr]
    accounting.ledger.reconcile({}, started_at=2.0)
    table.set_in_use(accounting.ledger.holdings)
    assert table.snapshot(AUDIO).by_id[AUDIO_GROUP_15].healthy  # type: ignore[union-attr]
    assert accounting.podresources_reachable


async def test_preferred_avoids_the_gpu_with_a_companion(shared_host: Host) -> None:
    table, accounting = table_on(shared_host)
    preferred = GroupPreferred(accounting)
    snapshot = table.snapshot(T4)
    assert snapshot is not None
    devices = {v.device.id: v.device for v in snapshot.views}
    assert preferred.choose(devices, [T4_NUMA1, T4_NUMA0], [], 1) == [T4_NUMA0]
    assert preferred.inventory.devices[GPU_GROUP_15].iommu_group == 15


def test_unknown_policy_fails_at_start() -> None:
    with pytest.raises(BadInputError, match="unknown allocation policy"):
        GroupPreferred(GroupAccounting(), "nearest")


async def test_not_viable_group_is_unhealthy_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    fake = build_example("kitchen-sink", tmp_path)
    fake.bind("0000:06:01.0", VFIO_PCI)  # its group sibling 0000:06:02.0 stays on 8139cp
    caplog.set_level(logging.INFO)
    table, _ = table_on(scan_host(fake.fs))
    snapshot = table.snapshot("devices.kubevirt.io/8086_100e")
    assert snapshot is not None
    reason = "group not viable: 0000:06:02.0 on 8139cp"
    assert snapshot.by_id["0000:06:01.0"].problem == reason
    assert f"device 0000:06:01.0 is unhealthy ({reason})" in caplog.text
