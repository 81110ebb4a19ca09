"""Positional constructors: the same objects as the dataclass's own __init__, still frozen."""

import dataclasses
from dataclasses import FrozenInstanceError

import pytest

from hostdev.host.construct import positional_constructor
from hostdev.host.model import PciAddress, PciDevice, Sriov

A = PciAddress.parse
PF = A("0000:81:00.0")
FIELDS = (
    A("0000:81:10.1"),
    "8086",
    "10ca",
    "8086",
    "0000",
    "020000",
    "01",
    "vfio-pci",
    None,
    40,
    1,
    ("0000:80:03.0",),
    Sriov(0, 0, (), ()),
    PF,
    3,
    ("eth9",),
    "vfio7",
    (),
    ("a problem",),
)


@pytest.mark.parametrize(
    ("cls", "values"),
    [(PciAddress, (0x10000, 0xAB, 0x1F, 7)), (PciDevice, FIELDS)],
    ids=["address", "device"],
)
def test_equals_the_dataclass_init(cls: type, values: tuple[object, ...]) -> None:
    made = positional_constructor(cls)(*values)
    expected = cls(*values)
    assert made == expected
    assert hash(made) == hash(expected)
    assert dataclasses.astuple(made) == dataclasses.astuple(expected)
    assert type(made) is cls


def test_result_stays_frozen() -> None:
    made = positional_constructor(PciAddress)(0, 1, 2, 3)
    with pytest.raises(FrozenInstanceError):
        made.bus = 9  # type: ignore[misc]


def test_every_field_is_required() -> None:
    with pytest.raises(TypeError):
        positional_constructor(PciDevice)(*FIELDS[:-1])  # type: ignore[call-arg]


@dataclasses.dataclass(frozen=True)
class _NoSlots:
    value: int


@pytest.mark.parametrize("cls", [_NoSlots, int], ids=["dataclass-without-slots", "not-a-dataclass"])
def test_refuses_what_it_cannot_fill(cls: type) -> None:
    with pytest.raises(TypeError, match="not a dataclass with slots"):
        positional_constructor(cls)


def test_kernel_names_parse_to_equal_addresses() -> None:
    assert PciAddress.from_kernel("10000:ab:1f.7") == PciAddress(0x10000, 0xAB, 0x1F, 7)
