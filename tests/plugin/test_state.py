"""The device table: snapshots, health, the availability-policy seam, claims."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from hostdev.config import DEFAULT_CONFIG, load_config
from hostdev.config.model import Config
from hostdev.host.model import Host
from hostdev.host.scan import scan_host
from hostdev.kubelet import state
from hostdev.kubelet.api import deviceplugin_pb2 as pb
from hostdev.kubelet.plugin import DevicePluginService, list_response
from hostdev.kubelet.state import AllocationError, DeviceTable
from hostdev.selection import Resource
from hostdev.testing.examples import build_example

T4 = "devices.kubevirt.io/10de_1eb8"
AUDIO = "devices.kubevirt.io/10de_1aeb"
VGA = "devices.kubevirt.io/10de_2184"
GPU_A = "0000:65:00.0"


@pytest.fixture
def host(tmp_path: Path) -> Host:
    return scan_host(build_example("gpu-node", tmp_path).fs)


class GroupPolicy:
    """Blocks the other members of an in-use device's IOMMU group; records claims."""

    def __init__(self) -> None:
        self.claims: list[tuple[str, tuple[str, ...]]] = []

    def blocked(
        self, host: Host, resources: Sequence[Resource], in_use: frozenset[str]
    ) -> Mapping[str, str]:
        groups = {d.iommu_group for r in resources for d in r.devices if d.id in in_use}
        return {
            d.id: "IOMMU group in use"
            for r in resources
            for d in r.devices
            if d.iommu_group in groups and d.id not in in_use
        }

    def claim(self, resource: Resource, requests: Sequence[Sequence[str]]) -> None:
        self.claims.extend((resource.name, tuple(ids)) for ids in requests)


async def test_watch_yields_current_then_changes(host: Host) -> None:
    table = DeviceTable(DEFAULT_CONFIG, host)
    stream = table.watch(T4)
    first = await anext(stream)
    assert [v.healthy for v in first.views] == [True, True]
    table.set_health("0000:65:00.0", "gone")
    second = await anext(stream)
    assert second.version > first.version and second.by_id["0000:65:00.0"].problem == "gone"
    await stream.aclose()


async def test_unchanged_state_publishes_nothing(host: Host) -> None:
    table = DeviceTable(DEFAULT_CONFIG, host)
    before = table.snapshot(T4)
    table.set_health("0000:99:00.0", None)
    table.update_host(host)
    assert table.snapshot(T4) is before


async def test_stream_ends_when_the_resource_goes_away(host: Host, tmp_path: Path) -> None:
    table = DeviceTable(DEFAULT_CONFIG, host)
    stream = table.watch(AUDIO)
    await anext(stream)
    fake = build_example("gpu-node", tmp_path / "again")
    fake.unbind("0000:17:00.1")
    changes = table.update_host(scan_host(fake.fs))
    assert changes.removed == (AUDIO,) and changes.added == ()
    assert [s async for s in stream] == []
    assert table.snapshot(AUDIO) is None


async def test_policy_blocks_group_siblings_and_sees_claims(host: Host) -> None:
    policy = GroupPolicy()
    table = DeviceTable(DEFAULT_CONFIG, host, policy)
    claimed = table.claim(VGA, [["0000:17:00.0"]])
    assert [d.id for d in claimed[0]] == ["0000:17:00.0"]
    assert policy.claims == [(VGA, ("0000:17:00.0",))]
    table.set_in_use({"0000:17:00.0"})
    audio = table.snapshot(AUDIO)
    assert audio is not None and audio.views[0].problem == "IOMMU group in use"
    with pytest.raises(AllocationError) as caught:
        table.claim(AUDIO, [["0000:17:00.1"]])
    assert caught.value.code == "unusable" and "IOMMU group in use" in str(caught.value)
    table.set_in_use(())
    assert table.snapshot(AUDIO).views[0].healthy  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "name,requests,code",
    [
        (T4, [["0000:65:00.0"], ["0000:17:00.0"]], "invalid"),
        ("example.com/gone", [["0000:65:00.0"]], "unusable"),
    ],
    ids=["id-of-another-resource", "resource-not-served"],
)
async def test_claim_is_all_or_nothing(
    host: Host, name: str, requests: list[list[str]], code: str
) -> None:
    policy = GroupPolicy()
    table = DeviceTable(DEFAULT_CONFIG, host, policy)
    with pytest.raises(AllocationError) as caught:
        table.claim(name, requests)
    assert caught.value.code == code
    assert policy.claims == []


def test_an_unchanged_resource_keeps_its_objects(host: Host, tmp_path: Path) -> None:
    table = DeviceTable(DEFAULT_CONFIG, host)
    before = {n: table.snapshot(n) for n in table.resource_names()}
    rescanned = scan_host(build_example("gpu-node", tmp_path / "again").fs)
    table.update_host(rescanned)  # same devices: the old Resource and snapshot stay
    for name, snapshot in before.items():
        assert table.snapshot(name) is snapshot
    table.set_health("0000:65:00.0", "removed from the bus")  # health changes still publish
    assert (
        table.snapshot(T4) is not before[T4] and table.snapshot(T4).resource is before[T4].resource
    )


def test_selection_is_worked_out_once_per_snapshot_and_config(
    host: Host, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = DeviceTable(DEFAULT_CONFIG, host)
    calls: list[Host] = []
    real_select = state.select
    monkeypatch.setattr(state, "select", lambda h, c: calls.append(h) or real_select(h, c))
    served = table.selection(host)  # worked out when the table was built
    assert calls == [] and [r.name for r in served] == list(table.resource_names())
    table.update_host(host)  # the same snapshot (an unchanged rescan): nothing selected again
    assert calls == []
    rescanned = scan_host(build_example("gpu-node", tmp_path / "again").fs)
    assert table.selection(rescanned) == served and calls == [rescanned]
    assert all(a is b for a, b in zip(table.selection(rescanned), served, strict=True))
    table.update_config(dataclasses.replace(DEFAULT_CONFIG))  # a new config: selected again
    assert calls == [rescanned, host]


@pytest.mark.parametrize("unhealthy", [(), ("0000:65:00.0",)], ids=["healthy", "one-unhealthy"])
def test_list_response_lists_every_device_with_health_and_numa(
    host: Host, unhealthy: tuple[str, ...]
) -> None:
    table = DeviceTable(DEFAULT_CONFIG, host)
    for device_id in unhealthy:
        table.set_health(device_id, "removed from the bus")
    for name in table.resource_names():
        snapshot = table.snapshot(name)
        assert snapshot is not None
        expected = pb.ListAndWatchResponse(
            devices=[
                pb.Device(
                    ID=v.device.id,
                    health="Healthy" if v.healthy else "Unhealthy",
                    topology=pb.TopologyInfo(nodes=[pb.NUMANode(ID=v.device.numa_node)])
                    if v.device.numa_node is not None and v.device.numa_node >= 0
                    else None,
                )
                for v in snapshot.views
            ]
        )
        assert list_response(snapshot) == expected
    assert any(h.device.numa_node for h in table.snapshot(T4).views)  # NUMA is exercised


def test_the_listing_is_serialized_once_per_snapshot(host: Host) -> None:
    table = DeviceTable(DEFAULT_CONFIG, host)
    service = DevicePluginService(table, T4)
    first = table.snapshot(T4)
    assert first is not None
    listing = service.listing(first)
    assert pb.ListAndWatchResponse.FromString(listing) == list_response(first)
    assert service.listing(first) is listing  # a new stream on the same snapshot (restart)
    table.set_health(first.views[0].device.id, "removed from the bus")
    changed = table.snapshot(T4)
    assert changed is not None and changed is not first
    relisted = pb.ListAndWatchResponse.FromString(service.listing(changed))
    assert relisted == list_response(changed) and relisted.devices[0].health == "Unhealthy"


def _t4_config(path: Path, options: str) -> Config:
    """A config file at path serving the T4s as example.com/t4, with extra option lines."""
    path.write_text(
        f"resources:\n- name: example.com/t4\n  selectors: [{{device: '10de:1eb8'}}]\n{options}"
    )
    return load_config(path)


@pytest.mark.parametrize(
    "options",
    ["  env: [sriov]\n", "  reset: true\n", "  bind: onStart\n", "  env: [sriov]\n  reset: true\n"],
    ids=["env", "reset", "bind", "env-and-reset"],
)
async def test_a_reload_of_options_alone_serves_them_without_a_new_list(
    host: Host, tmp_path: Path, options: str
) -> None:
    table = DeviceTable(_t4_config(tmp_path / "before.yaml", ""), host)
    stream = table.watch("example.com/t4")
    first = await anext(stream)
    config = _t4_config(tmp_path / "after.yaml", options)
    changes = table.update_config(config)
    served = table.snapshot("example.com/t4")
    assert changes.added == changes.removed == ()
    assert served is not None and served.resource.options == config.resources[0].options
    assert served.views == first.views and served.version == first.version
    table.set_health(GPU_A, "removed from the bus")  # the stream's next message is this one
    assert (await anext(stream)).by_id[GPU_A].problem == "removed from the bus"
    await stream.aclose()
