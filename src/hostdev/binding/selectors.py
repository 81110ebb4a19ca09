"""Device selectors of the bind commands: vendor:device IDs, PCI addresses and address globs.

A selector is one of:
- ``vvvv:dddd`` — every function with that vendor and device ID ("10de:1eb8"); the device
  half may hold ``*`` and ``?`` ("10de:*", "8086:15?b"), as a config's `device` selector may;
- a full address ``DDDD:BB:SS.F`` or a short one ``BB:SS.F`` (domain 0000);
- an address glob with ``*``, ``?`` or ``[...]`` matched against full addresses ("0000:05:*";
  a glob without the domain, "05:*", means domain 0000).
Parsing is pure; `resolve` matches parsed selectors against a `Host` snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

from hostdev.errors import BadInputError, DeviceNotFoundError
from hostdev.host.model import Host, PciAddress

# four hex digits before a single colon: a bus has two, so this is never an address glob
_VENDOR_DEVICE = re.compile(r"^[0-9a-f]{4}:(?:[0-9a-f]{4}|[0-9a-f*?]*[*?][0-9a-f*?]*)$")
_SHORT_ADDRESS = re.compile(r"^[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_GLOB_CHARS = re.compile(r"^[0-9a-f:.*?\[\]!-]+$")


@dataclass(frozen=True, slots=True)
class Selector:
    """One parsed selector; `kind` is "id", "address" or "glob"."""

    text: str
    kind: str
    value: str  # "10de:1eb8" or "10de:*", a canonical address, or a lower-case glob

    @property
    def literal_id(self) -> bool:
        """A vendor:device ID without wildcards: it names the same functions on any host."""
        return self.kind == "id" and "*" not in self.value and "?" not in self.value

    def matches(self, host: Host, address: PciAddress) -> bool:
        """Whether the function at address is selected."""
        if self.kind == "address":
            return str(address) == self.value
        if self.kind == "glob":
            return fnmatchcase(str(address), self.value)
        device = host.device(address)
        return device is not None and fnmatchcase(device.vendor_device, self.value)


def parse_selector(text: str) -> Selector:
    """Parse one selector; raise BadInputError with the accepted forms on anything else."""
    value = text.strip().lower()
    if _VENDOR_DEVICE.match(value):
        return Selector(text, "id", value)
    if _SHORT_ADDRESS.match(value):
        value = "0000:" + value
    if any(c in value for c in "*?["):
        if not _GLOB_CHARS.match(value) or value.count(":") not in (1, 2):
            raise BadInputError(
                f"invalid address glob {text!r}: use hex digits, ':', '.', '*', "
                f"'?' and '[...]', e.g. 0000:05:*"
            )
        return Selector(text, "glob", value if value.count(":") == 2 else "0000:" + value)
    try:
        return Selector(text, "address", str(PciAddress.parse(value)))
    except BadInputError:
        raise BadInputError(
            f"invalid selector {text!r}: expected vendor:device (10de:1eb8, 10de:*), a PCI address "
            f"(0000:65:00.0 or 65:00.0) or an address glob (0000:65:*)"
        ) from None


def parse_selectors(texts: Iterable[str]) -> list[Selector]:
    """Parse every selector; an empty list is bad input."""
    selectors = [parse_selector(t) for t in texts]
    if not selectors:
        raise BadInputError("no device given: name at least one vendor:device, address or glob")
    return selectors


def resolve(
    host: Host, selectors: Sequence[Selector], recorded: Collection[PciAddress] = ()
) -> list[PciAddress]:
    """Addresses selected by any selector, in address order; each selector must match. A full
    address may also name a recorded device that is no longer on the host (for restore)."""
    named = host.devices.keys() | set(recorded)
    chosen: set[PciAddress] = set()
    for selector in selectors:
        if selector.kind == "address":
            matched = {PciAddress.parse(selector.value)} & named
        else:
            matched = {a for a in host.devices if selector.matches(host, a)}
        if not matched:
            raise DeviceNotFoundError(f"no PCI function on this host matches {selector.text!r}")
        chosen |= matched
    return sorted(chosen)
