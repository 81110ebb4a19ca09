"""PciAddress parsing and the Host model's derived facts."""

import pytest

from hostdev.errors import BadInputError
from hostdev.host.model import PciAddress


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0000:65:00.0", "0000:65:00.0"),
        ("0001:02:1f.7", "0001:02:1f.7"),
        ("10000:01:00.0", "10000:01:00.0"),
        ("0000:AF:00.1", "0000:af:00.1"),
    ],
    ids=["plain", "domain-1", "vmd-domain", "upper-case"],
)
def test_parse_valid(text: str, expected: str) -> None:
    assert str(PciAddress.parse(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "65:00.0",
        "0000:65:00",
        "0000:65:00.8",
        "0000:65:20.0",
        "000:65:00.0",
        "0000:6:00.0",
        "0000:65:00.0 ",
        "",
        "zzzz:65:00.0",
        "0000.65:00.0",
    ],
    ids=[
        "no-domain",
        "no-function",
        "function-8",
        "slot-0x20",
        "short-domain",
        "short-bus",
        "trailing-space",
        "empty",
        "not-hex",
        "dot-separator",
    ],
)
def test_parse_invalid(text: str) -> None:
    with pytest.raises(BadInputError, match="invalid PCI address"):
        PciAddress.parse(text)


def test_from_kernel_matches_parse() -> None:
    for text in ("0000:65:00.0", "10000:01:1f.7"):
        assert PciAddress.from_kernel(text) == PciAddress.parse(text)


def test_addresses_sort_numerically() -> None:
    names = ["0000:b3:00.0", "0000:17:00.1", "0001:00:00.0", "0000:17:00.0"]
    ordered = sorted(PciAddress.parse(n) for n in names)
    assert [str(a) for a in ordered] == [
        "0000:17:00.0",
        "0000:17:00.1",
        "0000:b3:00.0",
        "0001:00:00.0",
    ]
