"""Selector forms for SR-IOV VFs, as pure predicates over a device and its host snapshot.

- `PfVfRange`: a PF interface with VF index ranges ("enp4s0f1#0-3,5"), the SR-IOV network
  device plugin's syntax.
- `VfsOfPf`: VFs whose PF matches a vendor:device pair ("8086:10c9").
- `NovaDeviceSpec`: one nova `[pci] device_spec` / `pci_passthrough_whitelist` entry taken
  verbatim: vendor_id/product_id (hex or `*`), `address` as the glob
  `[[[[domain]:]bus]:][slot][.[function]]` or a dict of per-field regexes, or `devname`
  (a netdev, standing for its PCI function). An address or devname naming a PF also covers
  its VFs. Every other key (physical_network, trusted, ...) is kept as a tag.
- `NeutronExclusions`: neutron's `exclude_devices` ("eth1:0000:07:00.2; 0000:07:00.3, ...").
Bad input raises ConfigError(file, field, reason) from the constructors.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import Any

from hostdev.config.patterns import PfMatcher, parse_id_pair, parse_pf_name
from hostdev.errors import BadInputError, ConfigError
from hostdev.host.model import Host, PciAddress, PciDevice

ANY = "*"
_LIMITS = {"domain": 0xFFFF, "bus": 0xFF, "slot": 0x1F, "function": 0x7}
_WIDTHS = {"domain": 4, "bus": 2, "slot": 2, "function": 1}
_FIELDS = tuple(_LIMITS)
_SETTING = re.compile(r"^\s*(?:pci_)?(?:passthrough_whitelist|device_spec)\s*=\s*", re.I)
_HEX = re.compile(r"^(0x)?[0-9a-fA-F]+$")


# -- PF interface with VF ranges, VFs of a PF model --------------------------------------
@dataclass(frozen=True, slots=True)
class PfVfRange:
    """VFs of the PF with this interface, optionally only some indexes ("enp4s0f1#0-3,5")."""

    matcher: PfMatcher

    @classmethod
    def parse(cls, text: str, file: str = "config", where: str = "pfName") -> PfVfRange:
        """Parse "ifname" or "ifname#ranges"; ConfigError on bad input."""
        try:
            return cls(parse_pf_name(text))
        except ValueError as err:
            raise ConfigError(file, where, str(err)) from None

    def matches(self, dev: PciDevice, host: Host) -> bool:
        """True for a selected VF."""
        pf = host.pf_of(dev)
        return pf is not None and self.matcher.matches_vf(pf.netdevs, dev.vf_index)


@dataclass(frozen=True, slots=True)
class VfsOfPf:
    """VFs whose PF's vendor:device matches the pattern (`*` allowed)."""

    pattern: str

    @classmethod
    def parse(cls, text: str, file: str = "config", where: str = "pfDevice") -> VfsOfPf:
        """Parse a vendor:device pair; ConfigError on bad input."""
        try:
            return cls(parse_id_pair(text))
        except ValueError as err:
            raise ConfigError(file, where, str(err)) from None

    def matches(self, dev: PciDevice, host: Host) -> bool:
        """True for a VF of a matching PF."""
        pf = host.pf_of(dev)
        return pf is not None and fnmatchcase(pf.vendor_device, self.pattern)


# -- nova device_spec ---------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NovaAddress:
    """A nova address spec: per-field values (glob form: hex or `*`) or regexes (dict form)."""

    fields: Mapping[str, str]
    regex: bool = False
    _values: tuple[int | None, ...] = field(init=False, repr=False, compare=False)
    _patterns: tuple[re.Pattern[str] | None, ...] = field(init=False, repr=False, compare=False)
    _single: PciAddress | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Compiled once: matching runs for every function on every rescan.
        given = [self.fields.get(n) for n in _FIELDS]
        hex_only = all(v is not None and _HEX.match(v) for v in given)
        values = tuple(
            int(v, 16) if v is not None and _HEX.match(v) and not self.regex else None
            for v in given
        )
        patterns = tuple(re.compile(v) if self.regex and v is not None else None for v in given)
        single = PciAddress(*(int(v or "0", 16) for v in given)) if hex_only else None
        object.__setattr__(self, "_values", values)
        object.__setattr__(self, "_patterns", patterns)
        object.__setattr__(self, "_single", single)

    @property
    def single(self) -> PciAddress | None:
        """The one address this spec names, when every field is plain hex (nova's PF check)."""
        return self._single

    def matches(self, address: PciAddress) -> bool:
        """Compare field by field; regexes anchor at the start, as re.match does in nova."""
        actual = (address.domain, address.bus, address.slot, address.function)
        if not self.regex:
            return all(v is None or v == a for v, a in zip(self._values, actual, strict=True))
        for name, pattern, value in zip(_FIELDS, self._patterns, actual, strict=True):
            if pattern is not None and pattern.match(f"{value:0{_WIDTHS[name]}x}") is None:
                return False
        return True


def parse_nova_address(value: object, file: str, where: str) -> NovaAddress:
    """The glob string or the regex dict; ConfigError with nova's limits on bad fields."""
    if isinstance(value, str):
        return _glob(value, file, where)
    if isinstance(value, Mapping):
        return _regex(value, file, where)
    raise ConfigError(file, where, "must be an address glob string or a dict of regexes")


def _glob(text: str, file: str, where: str) -> NovaAddress:
    dbs, _, function = text.partition(".")
    parts = dbs.split(":") if dbs else []
    if len(parts) > 3:
        raise ConfigError(file, where, f"{text!r} has more than domain:bus:slot before the dot")
    named = dict(zip(("domain", "bus", "slot"), [""] * (3 - len(parts)) + parts, strict=True))
    named["function"] = function
    fields: dict[str, str] = {}
    for name, raw in named.items():
        value = raw.strip() or ANY
        if value != ANY:
            fields[name] = _hex_field(value, name, _LIMITS[name], file, where)
        else:
            fields[name] = ANY
    return NovaAddress(fields)


def _hex_field(value: str, name: str, limit: int, file: str, where: str) -> str:
    if not _HEX.match(value):
        raise ConfigError(file, where, f"{name} {value!r} does not parse as a hex number")
    if int(value, 16) > limit:
        raise ConfigError(
            file, where, f"{name} {value!r} is greater than the maximum allowable value ({limit:X})"
        )
    return f"{int(value, 16):x}"


def _regex(value: Mapping[Any, Any], file: str, where: str) -> NovaAddress:
    unknown = sorted(str(k) for k in value if k not in _LIMITS)
    if unknown:
        raise ConfigError(
            file, f"{where}.{unknown[0]}", "unknown field; use domain, bus, slot and function"
        )
    fields: dict[str, str] = {}
    for name, pattern in value.items():
        if not isinstance(pattern, str):
            raise ConfigError(file, f"{where}.{name}", "must be a regular expression string")
        try:
            re.compile(pattern)
        except re.error as err:
            raise ConfigError(file, f"{where}.{name}", f"invalid regex: {err}") from None
        fields[str(name)] = pattern
    return NovaAddress(fields, regex=True)


def _id(spec: Mapping[str, Any], key: str, file: str, where: str) -> str:
    value = spec.get(key, ANY)
    if not isinstance(value, str):
        raise ConfigError(file, f"{where}.{key}", 'must be a string such as "8086" or "*"')
    value = value.strip()
    if value == ANY:
        return ANY
    return f"{int(_hex_field(value, key, 0xFFFF, file, f'{where}.{key}'), 16):04x}"


@dataclass(frozen=True, slots=True)
class NovaDeviceSpec:
    """One nova device_spec entry as a predicate; `tags` holds every non-matching key."""

    vendor_id: str = ANY
    product_id: str = ANY
    address: NovaAddress | None = None
    devname: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(
        cls, spec: object, file: str = "config", where: str = "deviceSpec"
    ) -> NovaDeviceSpec:
        """Validate one entry the way nova does; ConfigError on bad input."""
        if not isinstance(spec, Mapping):
            raise ConfigError(file, where, "a device_spec entry must be a JSON object")
        if "address" in spec and "devname" in spec:
            raise ConfigError(file, where, "give address or devname, not both")
        devname = spec.get("devname")
        if devname is not None and (not isinstance(devname, str) or not devname.strip()):
            raise ConfigError(file, f"{where}.devname", "must be a network interface name")
        address = spec.get("address")
        tags = {
            str(k): _tag(v, file, f"{where}.{k}")
            for k, v in spec.items()
            if k not in ("vendor_id", "product_id", "address", "devname") and v is not None
        }
        return cls(
            _id(spec, "vendor_id", file, where),
            _id(spec, "product_id", file, where),
            None if address is None else parse_nova_address(address, file, f"{where}.address"),
            devname.strip() if isinstance(devname, str) else None,
            tags,
        )

    def matches(self, dev: PciDevice, host: Host) -> bool:
        """Nova's rule: IDs match the device itself; an address/devname PF covers its VFs."""
        if self.vendor_id not in (ANY, dev.vendor) or self.product_id not in (ANY, dev.device):
            return False
        if self.devname is not None:
            named = host.netdev_index.get(self.devname)
            return named is not None and (
                named == dev.address or (dev.physfn == named and _is_pf(host, named))
            )
        address = self.address or NovaAddress({n: ANY for n in _FIELDS})
        if address.matches(dev.address):
            return True
        single = address.single
        return (
            single is not None
            and dev.physfn is not None
            and _is_pf(host, single)
            and address.matches(dev.physfn)
        )

    @property
    def physical_network(self) -> str | None:
        """The physical_network tag, when given."""
        return self.tags.get("physical_network")


def _is_pf(host: Host, address: PciAddress) -> bool:
    dev = host.device(address)
    return dev is not None and dev.is_pf


def _tag(value: object, file: str, where: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise ConfigError(file, where, "tag values must be strings, numbers or booleans")


def parse_nova_whitelist(
    value: object, file: str = "config", where: str = "deviceSpec"
) -> tuple[NovaDeviceSpec, ...]:
    """Entries from nova's JSON text (object or list, `key = value` line allowed) or data."""
    data = _loads(value, file, where) if isinstance(value, str) else value
    if isinstance(data, Mapping):
        return (NovaDeviceSpec.from_mapping(data, file, where),)
    if isinstance(data, list) and data:
        return tuple(
            NovaDeviceSpec.from_mapping(item, file, f"{where}[{i}]") for i, item in enumerate(data)
        )
    raise ConfigError(file, where, "must be a JSON object or a non-empty list of objects")


def _loads(text: str, file: str, where: str) -> Any:
    body = _SETTING.sub("", text.strip(), count=1)
    if body.startswith("\\{"):  # the brace as escaped in some published guides
        body = body[1:]
    try:
        return json.loads(body)
    except ValueError as err:
        raise ConfigError(file, where, f"not valid JSON: {err}") from None


# -- neutron exclude_devices ----------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NeutronExclusions:
    """PF interface → VF addresses the agent must leave alone."""

    by_interface: Mapping[str, frozenset[PciAddress]]

    @classmethod
    def parse(
        cls, text: str, file: str = "config", where: str = "exclude_devices"
    ) -> NeutronExclusions:
        """Parse "eth1:0000:07:00.2; 0000:07:00.3, eth2:..." (empty text: nothing excluded)."""
        mapping: dict[str, frozenset[PciAddress]] = {}
        for entry in (e for e in text.split(",") if e.strip()):
            name, sep, rest = entry.partition(":")
            name = name.strip()
            if not sep:
                raise ConfigError(
                    file,
                    where,
                    f"invalid mapping {entry.strip()!r}: expected interface:address[;address...]",
                )
            if not name:
                raise ConfigError(file, where, f"missing interface in {entry.strip()!r}")
            if name in mapping:
                raise ConfigError(file, where, f"interface {name} is listed twice")
            mapping[name] = frozenset(
                _address(a.strip(), file, where) for a in rest.split(";") if a.strip()
            )
        return cls(mapping)

    def excludes(self, dev: PciDevice, host: Host) -> bool:
        """True when the device is a listed VF of a listed PF interface."""
        pf = host.pf_of(dev)
        names = pf.netdevs if pf is not None else dev.netdevs
        return any(dev.address in self.by_interface.get(n, ()) for n in names)


def _address(text: str, file: str, where: str) -> PciAddress:
    try:
        return PciAddress.parse(text.lower())
    except BadInputError:
        raise ConfigError(file, where, f"{text!r} is not a PCI address DDDD:BB:SS.F") from None
