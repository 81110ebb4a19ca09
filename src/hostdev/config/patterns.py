"""Parsers for the small languages inside a config: IDs with wildcards, PCI address globs and
regexes, PF names with VF index ranges, exclusions, Kubernetes extended resource names.

Each parser turns text into a frozen matcher or raises ValueError with a one-line reason that
the loader attaches to the field it came from. Matchers are pure: they compare strings and ints
of a `PciDevice`, never the filesystem.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase

from hostdev.errors import BadInputError
from hostdev.host.model import PciAddress
from hostdev.kubelet.resourcename import extended_resource_name_problem

# A PCI ID is 4 hex digits; only a pattern with `*` may be shorter ("10*", "*").
_ID = re.compile(r"^(?:[0-9a-f]{4}|(?=[0-9a-f]*\*)[0-9a-f*]{1,4})$")
_CLASS = re.compile(r"^[0-9a-f]{2}([0-9a-f]{2}){0,2}$")
_GLOB_FIELD = re.compile(r"^[0-9a-f*]*$")
_IFNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,14}$")
_VF_RANGE = re.compile(r"^([0-9]+)(?:-([0-9]+))?$")
MAX_VF_INDEX = 0xFFFF  # sriov_totalvfs is a 16-bit count
_FIELD_WIDTHS = {"domain": 4, "bus": 2, "slot": 2, "function": 1}
# Largest value per field; domains as wide as PciAddress takes them (VMD's start at 10000).
_FIELD_MAX = {"domain": 0xFFFFFFFF, "bus": 0xFF, "slot": 0x1F, "function": 0x7}
_ID_PAIR = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{4}$")
_ADDRESS_FIELDS = tuple(_FIELD_WIDTHS)


def parse_id_pair(text: str) -> str:
    """Validate a "vvvv:dddd" pair (hex, `*` wildcards) and return it in lower case."""
    value = text.strip().lower()
    vendor, sep, device = value.partition(":")
    if not sep or not _ID.match(vendor) or not _ID.match(device):
        raise ValueError(
            f"{text!r} is not a vendor:device pair like 10de:1eb8 (4 hex digits each, * allowed)"
        )
    return value


def parse_id(text: str) -> str:
    """Validate one 4-digit hex ID (`*` wildcards allowed) and return it in lower case."""
    value = text.strip().lower()
    if not _ID.match(value):
        raise ValueError(f"{text!r} is not a hex ID like 10de (4 hex digits, * allowed)")
    return value


def id_matches(pattern: str, value: str) -> bool:
    """Match a lower-case ID or pair against a pattern with `*` wildcards."""
    return value == pattern or fnmatchcase(value, pattern)


def parse_class(text: str) -> str:
    """Validate a PCI class prefix ("03", "0302" or "030200") and return it in lower case."""
    value = text.strip().lower().removeprefix("0x")
    if not _CLASS.match(value):
        raise ValueError(f"{text!r} is not a class code prefix like 0302 or 030200")
    return value


@dataclass(frozen=True, slots=True)
class AddressMatcher:
    """Per-field matchers for a PCI address: a glob field, a regex, or None (any)."""

    domain: str | None
    bus: str | None
    slot: str | None
    function: str | None
    regex: bool = False

    def matches(self, address: PciAddress) -> bool:
        """True when every given field matches the address."""
        return all(
            self._field_matches(name, getattr(self, name), getattr(address, name))
            for name in _ADDRESS_FIELDS
        )

    def _field_matches(self, name: str, pattern: str | None, value: int) -> bool:
        if pattern is None:
            return True
        text = f"{value:0{_FIELD_WIDTHS[name]}x}"
        if self.regex:
            return re.fullmatch(pattern, text, re.IGNORECASE) is not None
        if "*" in pattern:
            return fnmatchcase(text, pattern)
        return int(pattern, 16) == value


def parse_address_glob(text: str) -> AddressMatcher:
    """Parse nova's `[[[[domain]:]bus]:][slot][.[function]]` glob; empty or `*` fields match all."""
    value = text.strip().lower()
    head, dot, function = value.partition(".")
    parts = head.split(":") if head else []
    if len(parts) > 3 or not value:
        raise ValueError(f"{text!r} is not an address glob like 0000:65:00.0 or *:65:*.*")
    fields = dict(zip(("slot", "bus", "domain"), reversed(parts), strict=False))
    if dot:
        fields["function"] = function
    try:
        found = {name: _glob_field(text, name, fields.get(name, "")) for name in _ADDRESS_FIELDS}
    except ValueError as err:
        if _ID_PAIR.match(value):
            raise ValueError(
                f"{text!r} is not a PCI address but looks like a vendor:device pair "
                "(select those with device)"
            ) from err
        raise
    return AddressMatcher(found["domain"], found["bus"], found["slot"], found["function"])


def _glob_field(text: str, name: str, field: str) -> str | None:
    if field in ("", "*"):
        return None
    if not _GLOB_FIELD.match(field) or len(field) > 8:
        raise ValueError(f"{text!r}: {name} {field!r} is not hex (with optional *)")
    limit = _FIELD_MAX[name]
    if "*" not in field and int(field, 16) > limit:
        raise ValueError(
            f"{text!r}: {name} {field!r} is greater than the maximum allowable value ({limit:x})"
        )
    if "*" in field and not _glob_can_match(name, field):
        raise ValueError(f"{text!r}: {name} {field!r} matches no {name} (00 to {limit:x})")
    return field


def _glob_can_match(name: str, field: str) -> bool:
    """Whether a glob field matches some value of its range (any domain glob can)."""
    if name == "domain":
        return True
    width = _FIELD_WIDTHS[name]
    return any(fnmatchcase(f"{v:0{width}x}", field) for v in range(_FIELD_MAX[name] + 1))


def parse_address_regex(fields: dict[str, str]) -> AddressMatcher:
    """Build a matcher from nova's dict form {domain, bus, slot, function} of regexes."""
    unknown = sorted(set(fields) - set(_ADDRESS_FIELDS))
    if unknown:
        raise ValueError(
            f"unknown address field(s) {', '.join(unknown)}; use domain/bus/slot/function"
        )
    for name, pattern in fields.items():
        try:
            re.compile(pattern)
        except re.error as err:
            raise ValueError(f"{name} regex {pattern!r} is invalid: {err}") from err
    return AddressMatcher(
        fields.get("domain"),
        fields.get("bus"),
        fields.get("slot"),
        fields.get("function"),
        regex=True,
    )


@dataclass(frozen=True, slots=True)
class PfMatcher:
    """A PF interface name and, optionally, the VF indexes wanted from it ("enp4s0f1#0-3,5")."""

    ifname: str
    vf_ranges: tuple[tuple[int, int], ...] | None  # inclusive (low, high); None: every VF

    def matches_vf(self, pf_netdevs: tuple[str, ...], vf_index: int | None) -> bool:
        """True when a VF (its PF's interface names and its index) is selected."""
        if self.ifname not in pf_netdevs or vf_index is None:
            return False
        if self.vf_ranges is None:
            return True
        return any(low <= vf_index <= high for low, high in self.vf_ranges)


def parse_pf_name(text: str) -> PfMatcher:
    """Parse "enp4s0f1" or "enp4s0f1#0-3,5" (SR-IOV network device plugin syntax)."""
    name, sep, ranges = text.strip().partition("#")
    if not _IFNAME.match(name):
        raise ValueError(f"{text!r}: {name!r} is not a network interface name")
    if not sep:
        return PfMatcher(name, None)
    return PfMatcher(name, tuple(_vf_range(text, part) for part in ranges.split(",")))


def _vf_range(text: str, part: str) -> tuple[int, int]:
    match = _VF_RANGE.match(part.strip())
    if match is None:
        raise ValueError(f"{text!r}: VF range {part!r} is not N or N-M")
    low, high = _vf_index(text, match[1]), _vf_index(text, match[2] or match[1])
    if high < low:
        raise ValueError(f"{text!r}: VF range {part!r} runs backwards")
    return low, high


def _vf_index(text: str, digits: str) -> int:
    significant = digits.lstrip("0") or "0"
    if len(significant) > len(str(MAX_VF_INDEX)) or int(significant) > MAX_VF_INDEX:
        raise ValueError(
            f"{text!r}: VF index {significant} is above {MAX_VF_INDEX} "
            "(sriov_totalvfs is a 16-bit count)"
        )
    return int(significant)


@dataclass(frozen=True, slots=True)
class Exclusion:
    """Devices a resource must never take: address globs, optionally tied to a PF interface."""

    addresses: tuple[AddressMatcher, ...]
    ifname: str | None = None

    def matches(self, address: PciAddress) -> bool:
        """True when the address is excluded."""
        return any(m.matches(address) for m in self.addresses)


def parse_exclusion(text: str) -> tuple[Exclusion, ...]:
    """Parse an address glob, or neutron's "eth1:0000:07:00.2;0000:07:00.3, eth2:..." form."""
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if not entries:
        raise ValueError("an exclusion may not be empty")
    return tuple(_parse_exclusion_entry(entry) for entry in entries)


def _parse_exclusion_entry(entry: str) -> Exclusion:
    head, _, rest = entry.partition(":")
    parts = [p.strip() for p in rest.split(";") if p.strip()]
    if _IFNAME.match(head) and not re.fullmatch(r"[0-9a-fA-F*]+", head) and parts:
        return Exclusion(tuple(_full_address(entry, p) for p in parts), ifname=head)
    globs = [p.strip() for p in entry.split(";") if p.strip()]
    return Exclusion(tuple(parse_address_glob(g) for g in globs))


def _full_address(entry: str, text: str) -> AddressMatcher:
    try:
        address = PciAddress.parse(text)
    except BadInputError as err:
        raise ValueError(f"{entry!r}: {text!r} is not a full PCI address DDDD:BB:SS.F") from err
    return AddressMatcher(
        f"{address.domain:x}", f"{address.bus:x}", f"{address.slot:x}", f"{address.function:x}"
    )


def mdev_type_key(name: str) -> str:
    """An mdev type name as KubeVirt's virt-handler compares it: spaces to `_`, then trimmed."""
    return name.replace(" ", "_").strip()


def check_resource_name(name: str) -> str:
    """Validate a Kubernetes extended resource name as the kubelet does; return it."""
    problem = extended_resource_name_problem(name)
    if problem is not None:
        raise ValueError(f"{name!r} is not an extended resource name: {problem}")
    return name
