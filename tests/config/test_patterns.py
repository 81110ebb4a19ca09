"""The small config languages: address globs and regexes, VF ranges, exclusions, names."""

from __future__ import annotations

import re

import pytest

from hostdev.config import patterns
from hostdev.host.model import PciAddress

A = PciAddress.parse


@pytest.mark.parametrize(
    "glob,address,expected",
    [
        ("0000:65:00.0", "0000:65:00.0", True),
        ("65:00.0", "0000:65:00.0", True),
        ("65:00.0", "0001:65:00.0", True),  # no domain given: any domain
        ("0001:65:00.0", "0000:65:00.0", False),
        ("65:00", "0000:65:00.3", True),
        ("*:65:*.*", "0000:65:1f.7", True),
        ("*:65:*.*", "0000:66:00.0", False),
        (":65:", "0000:65:02.0", True),
        ("00.1", "0000:17:00.1", True),
        (".1", "0000:17:00.1", True),
        (".1", "0000:17:00.0", False),
        ("0000:6*:00.0", "0000:6a:00.0", True),
        ("0000:6*:00.0", "0000:7a:00.0", False),
        ("0:65:0.0", "0000:65:00.0", True),  # short hex fields compare as numbers
        ("10000:01:00.0", "10000:01:00.0", True),
        ("04:1*.*", "0000:04:10.3", True),
        ("ffffffff:0a:00.0", "ffffffff:0a:00.0", True),  # as wide as PciAddress takes domains
        ("0000:ff:1f.7", "0000:ff:1f.7", True),  # each field at its largest value
        ("0000:000a:00.0", "0000:0a:00.0", True),  # leading zeros compare as numbers
        ("0000:0a:1*.0", "0000:0a:1f.0", True),
    ],
    ids=lambda v: str(v),
)
def test_address_glob(glob: str, address: str, expected: bool) -> None:
    assert patterns.parse_address_glob(glob).matches(A(address)) is expected


BAD_GLOBS = [
    ("", "is not an address glob"),
    ("1:2:3:4.0", "is not an address glob"),
    ("0000:zz:00.0", "bus 'zz' is not hex"),
    ("123456789:0:0.0", "domain '123456789' is not hex"),
    ("65:00.8", "function '8' is greater than the maximum allowable value (7)"),
    ("0000:0a:00.f", "function 'f' is greater than the maximum allowable value (7)"),
    ("0000:0a:20.0", "slot '20' is greater than the maximum allowable value (1f)"),
    ("0000:0a:100.0", "slot '100' is greater than the maximum allowable value (1f)"),
    ("0000:100:00.0", "bus '100' is greater than the maximum allowable value (ff)"),
    ("0000:0a:3*.0", "slot '3*' matches no slot (00 to 1f)"),
    ("0000:0a:00.*8", "function '*8' matches no function (00 to 7)"),
    ("0000:1*23:00.0", "bus '1*23' matches no bus (00 to ff)"),
    ("10de:1eb8", "looks like a vendor:device pair"),
]


@pytest.mark.parametrize("glob,reason", BAD_GLOBS, ids=[g for g, _ in BAD_GLOBS])
def test_bad_address_glob(glob: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        patterns.parse_address_glob(glob)


@pytest.mark.parametrize(
    "fields,address,expected",
    [
        ({"bus": "6[0-9a-f]"}, "0000:65:00.0", True),
        ({"bus": "6[0-9a-f]"}, "0000:b3:00.0", False),
        ({"domain": "0000", "function": "[1-7]"}, "0000:17:00.1", True),
        ({"function": "[1-7]"}, "0000:17:00.0", False),
        ({"slot": "1."}, "0000:04:10.1", True),
        ({"bus": "6"}, "0000:65:00.0", False),  # fullmatch, not prefix
    ],
    ids=lambda v: str(v),
)
def test_address_regex(fields: dict[str, str], address: str, expected: bool) -> None:
    assert patterns.parse_address_regex(fields).matches(A(address)) is expected


@pytest.mark.parametrize(
    "text,netdevs,index,expected",
    [
        ("enp4s0f1", ("enp4s0f1",), 6, True),
        ("enp4s0f1#0-3,5", ("enp4s0f1",), 3, True),
        ("enp4s0f1#0-3,5", ("enp4s0f1",), 4, False),
        ("enp4s0f1#0-3,5", ("enp4s0f1",), 5, True),
        ("enp4s0f1#2", ("enp4s0f0",), 2, False),
        ("enp4s0f1", ("enp4s0f1",), None, False),  # not a VF
    ],
    ids=lambda v: str(v),
)
def test_pf_name(text: str, netdevs: tuple[str, ...], index: int | None, expected: bool) -> None:
    assert patterns.parse_pf_name(text).matches_vf(netdevs, index) is expected


@pytest.mark.parametrize(
    "text,ranges",
    [
        ("enp4s0f1", None),
        ("enp4s0f1#7", ((7, 7),)),
        ("enp4s0f1#0-3,5", ((0, 3), (5, 5))),
        ("enp4s0f1#0-65535", ((0, 65535),)),  # kept as a range, never expanded
        ("enp4s0f1#007", ((7, 7),)),
    ],
    ids=repr,
)
def test_vf_ranges_stay_ranges(text: str, ranges: tuple[tuple[int, int], ...] | None) -> None:
    assert patterns.parse_pf_name(text).vf_ranges == ranges


BAD_PF_NAMES = [
    ("enp4s0f1#0-30000000", "VF index 30000000 is above 65535"),
    ("enp4s0f1#65536", "VF index 65536 is above 65535"),
    ("enp4s0f1#0-" + "9" * 5000, "is above 65535"),
    ("enp4s0f1#\u0663", "is not N or N-M"),  # a non-ASCII digit
    ("enp4s0f1#", "is not N or N-M"),
    ("enp4s0f1#3-1", "runs backwards"),
]


@pytest.mark.parametrize("text,reason", BAD_PF_NAMES, ids=[t[:24] for t, _ in BAD_PF_NAMES])
def test_bad_pf_names(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        patterns.parse_pf_name(text)


@pytest.mark.parametrize(
    "text,excluded,kept",
    [
        ("0000:07:00.2", ["0000:07:00.2"], ["0000:07:00.3"]),
        ("*:07:00.*", ["0000:07:00.2", "0000:07:00.3"], ["0000:08:00.0"]),
        ("eth1:0000:07:00.2;0000:07:00.3", ["0000:07:00.2", "0000:07:00.3"], ["0000:07:00.4"]),
        (
            "eth1:0000:07:00.2; 0000:07:00.3, eth2:0000:05:00.1; 0000:05:00.2",
            ["0000:07:00.3", "0000:05:00.1", "0000:05:00.2"],
            ["0000:05:00.3"],
        ),
        ("0000:07:00.2;0000:07:00.3", ["0000:07:00.3"], ["0000:07:00.4"]),
    ],
    ids=["address", "glob", "neutron", "neutron-two-interfaces", "semicolons"],
)
def test_exclusions(text: str, excluded: list[str], kept: list[str]) -> None:
    exclusions = patterns.parse_exclusion(text)
    for address in excluded:
        assert any(e.matches(A(address)) for e in exclusions), address
    for address in kept:
        assert not any(e.matches(A(address)) for e in exclusions), address


@pytest.mark.parametrize(
    "name",
    [
        "example.com/ok",
        "example.com/Foo_Bar.1-x",
        "nvidia.com/GRID_T4-1Q",
        "devices.kubevirt.io/10de_1eb8",
        f"example.com/{'a' * 63}",
    ],
)
def test_valid_resource_names(name: str) -> None:
    assert patterns.check_resource_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "foo",
        "kubernetes.io/foo",
        "node.kubernetes.io/foo",
        "requests.example.com/foo",
        "example.com/",
        "example.com/a/b",
        "EXAMPLE.com/x",
        "example.com/-x",
        f"example.com/{'a' * 64}",
        "/gpu",
        "exa_mple.com/x",
    ],
)
def test_invalid_resource_names(name: str) -> None:
    with pytest.raises(ValueError):
        patterns.check_resource_name(name)


@pytest.mark.parametrize(
    "pattern,value,expected",
    [
        ("10de:1eb8", "10de:1eb8", True),
        ("10de:*", "10de:2184", True),
        ("*:1eb8", "8086:1eb8", True),
        ("10de:*", "8086:1eb8", False),
        ("10*", "10de", True),
    ],
)
def test_id_wildcards(pattern: str, value: str, expected: bool) -> None:
    assert patterns.id_matches(pattern, value) is expected


@pytest.mark.parametrize(
    "text,valid",
    [
        ("10de:1eb8", True),
        ("10DE:1EB8", True),
        ("10de:*", True),
        ("*:1eb8", True),
        ("10*:1e*8", True),
        ("10de:1eb", False),  # a digit short: would match nothing
        ("10d:1eb8", False),
        ("10de:1eb80", False),
        ("10de:", False),
        ("10de:1e*b80", False),
        ("10de", False),
    ],
    ids=repr,
)
def test_id_pairs_take_four_hex_digits(text: str, valid: bool) -> None:
    if valid:
        assert patterns.parse_id_pair(text) == text.lower()
    else:
        with pytest.raises(ValueError, match="4 hex digits each"):
            patterns.parse_id_pair(text)


@pytest.mark.parametrize(
    "text,valid",
    [("8086", True), ("10*", True), ("*", True), ("86", False), ("808", False), ("80866", False)],
    ids=repr,
)
def test_ids_take_four_hex_digits(text: str, valid: bool) -> None:
    if valid:
        assert patterns.parse_id(text) == text
    else:
        with pytest.raises(ValueError, match="4 hex digits"):
            patterns.parse_id(text)
