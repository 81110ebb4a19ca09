"""The declarative mdev planner as tables (KubeVirt's rules), including seed 001's examples."""

from itertools import count

import pytest

from hostdev.errors import ConfigError
from hostdev.host.model import Host, Mdev, MdevType, PciAddress, PciDevice
from hostdev.mdev_plan import (
    MdevConfig,
    NodeMdevTypes,
    desired_types,
    parse_mdev_config,
    plan_mdevs,
)
from hostdev.testing.examples import vgpu_card

A, B, C = "0000:3b:00.0", "0000:5e:00.0", "0000:86:00.0"
NAMES = {
    "nvidia-105": "GRID M10-1Q",
    "nvidia-108": "GRID M10-8Q",
    "nvidia-217": "GRID M10-2B4",
    "nvidia-299": "GRID M10-1B4",
    "nvidia-223": "GRID T4-2B",
    "nvidia-224": "GRID T4-2B4",
    "nvidia-231": "GRID T4-2Q",
    "nvidia-233": "GRID T4-8Q",
}
SEED_CARD = {"nvidia-105": 16, "nvidia-108": 2, "nvidia-217": 4, "nvidia-299": 8}


def card(address: str, types: dict[str, int]) -> PciDevice:
    mdev_types = tuple(MdevType(t, NAMES.get(t, t), n, "vfio-pci", "") for t, n in types.items())
    return vgpu_card(PciAddress.parse(address), mdev_types)


def host(cards: dict[str, dict[str, int]], mdevs: tuple[tuple[str, str, str], ...] = ()) -> Host:
    devices = {PciAddress.parse(a): card(a, t) for a, t in cards.items()}
    existing = tuple(
        Mdev(u, t, NAMES.get(t, t), PciAddress.parse(p), 100 + i)
        for i, (u, t, p) in enumerate(mdevs)
    )
    return Host(devices=devices, groups={}, mdevs=existing)


def uuids() -> object:
    numbers = count()
    return lambda: f"00000000-0000-4000-8000-{next(numbers):012d}"


def summary(h: Host, wanted: list[str], busy: frozenset[str] = frozenset()) -> dict[str, object]:
    plan = plan_mdevs(h, wanted, busy.__contains__, uuids())  # type: ignore[arg-type]
    created: dict[str, int] = {}
    for c in plan.creates:
        key = f"{c.parent} {c.type_id}"
        created[key] = created.get(key, 0) + 1
    return {
        "create": created,
        "remove": sorted(r.uuid for r in plan.removes),
        "notes": len(plan.notes),
    }


CASES = [
    # seed 001: two cards supporting nvidia-105/108/217/299, four wanted types → round robin
    (
        {A: SEED_CARD, B: SEED_CARD},
        (),
        ["nvidia-222", "nvidia-228", "nvidia-105", "nvidia-108"],
        {f"{A} nvidia-105": 16, f"{B} nvidia-108": 2},
        [],
    ),
    # seed 001: one card supporting nvidia-223 and nvidia-224 takes the first wanted one
    (
        {A: {"nvidia-223": 8, "nvidia-224": 4}},
        (),
        ["nvidia-22", "nvidia-223", "nvidia-224"],
        {f"{A} nvidia-223": 8},
        [],
    ),
    # three cards, two types: the ring wraps around
    (
        {A: SEED_CARD, B: SEED_CARD, C: SEED_CARD},
        (),
        ["nvidia-105", "nvidia-108"],
        {f"{A} nvidia-105": 16, f"{B} nvidia-108": 2, f"{C} nvidia-105": 16},
        [],
    ),
    # a type only one card offers goes there; the other card takes the other type
    (
        {A: {"nvidia-108": 2}, B: {"nvidia-105": 16, "nvidia-108": 2}},
        (),
        ["nvidia-105", "nvidia-108"],
        {f"{B} nvidia-105": 16, f"{A} nvidia-108": 2},
        [],
    ),
    # by name, with KubeVirt's underscore spelling too
    ({A: {"nvidia-231": 8, "nvidia-233": 2}}, (), ["GRID_T4-8Q"], {f"{A} nvidia-233": 2}, []),
    ({A: {"nvidia-231": 8, "nvidia-233": 2}}, (), ["GRID T4-2Q"], {f"{A} nvidia-231": 8}, []),
    # nothing wanted is offered
    ({A: SEED_CARD}, (), ["nvidia-231"], {}, []),
    # no free instances: the card is assigned but nothing is created
    ({A: {"nvidia-231": 0}}, (), ["nvidia-231"], {}, []),
    # a card already carrying a wanted type keeps it and is filled up
    (
        {A: {"nvidia-231": 5, "nvidia-233": 2}},
        (("u1", "nvidia-231", A),),
        ["nvidia-233", "nvidia-231"],
        {f"{A} nvidia-231": 5},
        [],
    ),
    # unwanted mdevs go, and the card is reassigned (freed instances counted back)
    (
        {A: {"nvidia-231": 6, "nvidia-233": 2}},
        (("u1", "nvidia-231", A), ("u2", "nvidia-231", A)),
        ["nvidia-233"],
        {f"{A} nvidia-233": 2},
        ["u1", "u2"],
    ),
    ({A: {"nvidia-231": 6}}, (("u1", "nvidia-231", A),), ["nvidia-231-gone"], {}, ["u1"]),
    # the removed type wanted again elsewhere: instances come back on the same card
    (
        {A: {"nvidia-231": 6, "nvidia-233": 0}},
        (("u1", "nvidia-233", A),),
        ["nvidia-231"],
        {f"{A} nvidia-231": 6},
        ["u1"],
    ),
    # nothing wanted: every mdev goes
    ({A: {"nvidia-231": 6}}, (("u1", "nvidia-231", A),), [], {}, ["u1"]),
]


@pytest.mark.parametrize(
    ("cards", "mdevs", "wanted", "create", "remove"),
    CASES,
    ids=[
        "seed-round-robin",
        "seed-first-supported",
        "ring-wraps",
        "only-supporter-first",
        "by-kubevirt-name",
        "by-name",
        "unsupported",
        "no-instances",
        "top-up",
        "reassign",
        "remove-unwanted",
        "freed-instances",
        "nothing-wanted",
    ],
)
def test_plan(
    cards: dict[str, dict[str, int]],
    mdevs: tuple[tuple[str, str, str], ...],
    wanted: list[str],
    create: dict[str, int],
    remove: list[str],
) -> None:
    result = summary(host(cards, mdevs), wanted)
    assert result["create"] == create
    assert result["remove"] == remove


def test_mdevs_in_use_are_kept_and_block_their_card() -> None:
    h = host(
        {A: {"nvidia-231": 6, "nvidia-233": 2}, B: {"nvidia-233": 2}},
        (("u1", "nvidia-231", A), ("u2", "nvidia-231", A)),
    )
    result = summary(h, ["nvidia-233"], frozenset({"u1"}))
    assert result == {"create": {f"{B} nvidia-233": 2}, "remove": ["u2"], "notes": 2}


def test_greedy_ring_can_leave_a_type_unused() -> None:
    """KubeVirt's walk: A takes the first type although B could only take that one."""
    h = host({A: {"nvidia-223": 8, "nvidia-224": 4}, B: {"nvidia-223": 8}})
    assert summary(h, ["nvidia-223", "nvidia-224"])["create"] == {
        f"{A} nvidia-223": 8,
        f"{B} nvidia-223": 8,
    }


def test_plan_assignments_and_unique_uuids() -> None:
    plan = plan_mdevs(host({A: SEED_CARD, B: SEED_CARD}), ["nvidia-105", "nvidia-108"])
    assert {str(k): v for k, v in plan.assignments.items()} == {A: "nvidia-105", B: "nvidia-108"}
    assert len({c.uuid for c in plan.creates}) == 18
    assert plan.actions == plan.creates


# -- configuration --------------------------------------------------------------------------
SEED_HCO = {
    "apiVersion": "hco.kubevirt.io/v1",
    "kind": "HyperConverged",
    "metadata": {"name": "kubevirt-hyperconverged", "namespace": "openshift-cnv"},
    "spec": {
        "mediatedDevicesConfiguration": {
            "mediatedDevicesTypes": ["nvidia-231"],
            "nodeMediatedDeviceTypes": [
                {
                    "mediatedDevicesTypes": ["nvidia-233"],
                    "nodeSelector": {"kubernetes.io/hostname": "node-11.redhat.com"},
                }
            ],
        },
        "permittedHostDevices": {
            "mediatedDevices": [
                {"mdevNameSelector": "GRID T4-2Q", "resourceName": "nvidia.com/GRID_T4-2Q"}
            ]
        },
    },
}


def test_seed_hyperconverged_cr() -> None:
    config = parse_mdev_config(SEED_HCO, "hco.yaml")
    assert config.types == ("nvidia-231",)
    assert desired_types(config, {"kubernetes.io/hostname": "node-11.redhat.com"}) == (
        "nvidia-233",
    )
    assert desired_types(config, {"kubernetes.io/hostname": "node-12"}) == ("nvidia-231",)


@pytest.mark.parametrize(
    "data",
    [
        {"mediatedDevicesTypes": ["a"]},
        {"mediatedDeviceTypes": ["a"]},
        {"mediatedDevicesTypes": ["a"], "mediatedDeviceTypes": ["a"]},
        {"mediatedDevicesConfiguration": {"mediatedDevicesTypes": ["a", "a"]}},
        {
            "spec": {
                "configuration": {"mediatedDevicesConfiguration": {"mediatedDeviceTypes": ["a"]}}
            }
        },
    ],
    ids=["bare", "new-spelling", "both-equal", "wrapped-deduplicated", "kubevirt-cr"],
)
def test_config_shapes(data: object) -> None:
    assert parse_mdev_config(data).types == ("a",)


@pytest.mark.parametrize(
    ("labels", "expected"),
    [
        ({}, ("g1", "g2")),
        ({"gpu": "t4"}, ("t4a", "t4b")),
        ({"gpu": "t4", "zone": "a"}, ("t4a", "t4b", "za")),
        ({"gpu": "a100"}, ("g1", "g2")),
        ({"zone": "a", "rack": "1"}, ("za", "r1", "t4a")),
    ],
    ids=["no-labels", "one-match", "two-matches-concatenate", "no-match", "all-keys-needed"],
)
def test_desired_types(labels: dict[str, str], expected: tuple[str, ...]) -> None:
    config = MdevConfig(
        ("g1", "g2"),
        (
            NodeMdevTypes(("t4a", "t4b"), {"gpu": "t4"}),
            NodeMdevTypes(("za",), {"zone": "a"}),
            NodeMdevTypes(("r1", "t4a"), {"zone": "a", "rack": "1"}),
        ),
    )
    assert desired_types(config, labels) == expected


@pytest.mark.parametrize(
    ("data", "field", "reason"),
    [
        (["a"], "mediatedDevicesConfiguration", "must be a mapping"),
        ({"mediatedDevicesTypes": "nvidia-231"}, "mediatedDevicesTypes", "must be a list"),
        ({"mediatedDevicesTypes": [1]}, "mediatedDevicesTypes", "must be a list"),
        (
            {"mediatedDevicesTypes": ["a"], "mediatedDeviceTypes": ["b"]},
            "mediatedDeviceTypes",
            "differs",
        ),
        ({"types": ["a"]}, "types", "unknown key"),
        ({"nodeMediatedDeviceTypes": {}}, "nodeMediatedDeviceTypes", "must be a list"),
        ({"nodeMediatedDeviceTypes": ["x"]}, "nodeMediatedDeviceTypes[0]", "must be a mapping"),
        (
            {"nodeMediatedDeviceTypes": [{"mediatedDevicesTypes": ["a"]}]},
            "nodeMediatedDeviceTypes[0].nodeSelector",
            "non-empty map",
        ),
        (
            {
                "nodeMediatedDeviceTypes": [
                    {"mediatedDevicesTypes": ["a"], "nodeSelector": {"a": 1}}
                ]
            },
            "nodeMediatedDeviceTypes[0].nodeSelector",
            "non-empty map",
        ),
        (
            {"nodeMediatedDeviceTypes": [{"nodeSelector": {"a": "b"}}]},
            "nodeMediatedDeviceTypes[0].mediatedDevicesTypes",
            "at least one type",
        ),
        (
            {**SEED_HCO, "spec": {"permittedHostDevices": {"mediatedDevices": []}}},
            "spec.mediatedDevicesConfiguration",
            "missing",
        ),
        (
            {"kind": "KubeVirt", "spec": {"configuration": {"developerConfiguration": {}}}},
            "spec.configuration.mediatedDevicesConfiguration",
            "missing",
        ),
    ],
    ids=[
        "not-mapping",
        "types-string",
        "types-int",
        "both-differ",
        "unknown",
        "nodes-type",
        "node-entry",
        "no-selector",
        "selector-values",
        "node-no-types",
        "hyperconverged-cr-without-it",
        "kubevirt-cr-without-it",
    ],
)
def test_config_errors(data: object, field: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_mdev_config(data, "mdev.yaml")
    assert (err.value.file, err.value.field) == ("mdev.yaml", field)
    assert reason in err.value.reason


@pytest.mark.parametrize(
    "data",
    [None, {}, {"mediatedDevicesConfiguration": None}, {"mediatedDevicesConfiguration": {}}],
    ids=["empty-file", "empty-mapping", "null-block", "empty-block"],
)
def test_an_empty_config_is_an_error_not_a_removal_of_every_mdev(data: object) -> None:
    with pytest.raises(ConfigError, match="empty: give mediatedDevicesTypes: \\[\\] to remove"):
        parse_mdev_config(data)


def test_an_explicit_empty_type_list_removes_every_mdev() -> None:
    assert parse_mdev_config({"mediatedDevicesTypes": []}) == MdevConfig()
