"""Vendor, device, subsystem and class names from the system's pci.ids.

The file nests by tabs: a vendor line at column 0, its devices one tab in, a device's
subsystems two tabs in ("svid sdid  name"), and the class section ("C cc  name") with its
subclasses and programming interfaces likewise. Each name is taken from its own nesting
level, so a subsystem line can never be mistaken for a device (a peer plugin reported an
RTX 2060 as a RAID controller that way). Unknown IDs fall back to the hex ID.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field

from hostdev.errors import BadInputError

SEARCH_PATHS = (
    "/usr/share/misc/pci.ids",
    "/usr/share/hwdata/pci.ids",
    "/usr/share/pci.ids",
    "/usr/share/misc/pci.ids.gz",
)

# Base classes from the PCI Code and ID Assignment specification, used without pci.ids.
_BASE_CLASSES = {
    "00": "Unclassified device",
    "01": "Mass storage controller",
    "02": "Network controller",
    "03": "Display controller",
    "04": "Multimedia controller",
    "05": "Memory controller",
    "06": "Bridge",
    "07": "Communication controller",
    "08": "Generic system peripheral",
    "09": "Input device controller",
    "0a": "Docking station",
    "0b": "Processor",
    "0c": "Serial bus controller",
    "0d": "Wireless controller",
    "0e": "Intelligent controller",
    "0f": "Satellite communications controller",
    "10": "Encryption controller",
    "11": "Signal processing controller",
    "12": "Processing accelerators",
    "13": "Non-Essential Instrumentation",
    "40": "Coprocessor",
    "ff": "Unassigned class",
}


@dataclass
class _Vendor:
    name: str
    devices: dict[str, _Device] = field(default_factory=dict)


@dataclass
class _Device:
    name: str
    subsystems: dict[tuple[str, str], str] = field(default_factory=dict)


@dataclass
class PciIds:
    """A parsed pci.ids database (possibly empty when the system has none)."""

    vendors: dict[str, _Vendor] = field(default_factory=dict)
    classes: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)
    source: str | None = None

    def vendor_name(self, vendor: str) -> str | None:
        """The vendor's name, or None when unknown."""
        entry = self.vendors.get(vendor)
        return entry.name if entry else None

    def device_name(self, vendor: str, device: str) -> str | None:
        """The device's name (never a subsystem's), or None when unknown."""
        entry = self.vendors.get(vendor)
        dev = entry.devices.get(device) if entry else None
        return dev.name if dev else None

    def subsystem_name(
        self, vendor: str, device: str, sub_vendor: str, sub_device: str
    ) -> str | None:
        """The subsystem's name as listed under its device, or None."""
        entry = self.vendors.get(vendor)
        dev = entry.devices.get(device) if entry else None
        return dev.subsystems.get((sub_vendor, sub_device)) if dev else None

    def class_name(self, class_code: str) -> str:
        """The most specific name of a 6-digit class code (subclass, else base class)."""
        base, sub = class_code[:2], class_code[2:4]
        entry = self.classes.get(base)
        if entry is not None:
            return entry[1].get(sub) or entry[0]
        return _BASE_CLASSES.get(base, f"Class {class_code[:4]}")

    def describe(self, vendor: str, device: str) -> str:
        """ "Vendor Device" names for display, hex IDs where unknown."""
        vname = self.vendor_name(vendor) or f"Vendor {vendor}"
        dname = self.device_name(vendor, device) or f"Device {device}"
        return f"{vname} {dname}"


def find_pci_ids() -> str | None:
    """The system's pci.ids: the first of SEARCH_PATHS that is a file, or None."""
    return next((p for p in SEARCH_PATHS if os.path.isfile(p)), None)


def load_pci_ids(path: str | None) -> PciIds:
    """Parse a pci.ids file; None gives an empty database (hex IDs shown). BadInputError when
    the file cannot be read or decompressed."""
    if path is None:
        return PciIds()
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as f:
            text = f.read()
    except (OSError, EOFError, zlib.error) as err:  # gzip: BadGzipFile, truncated, bad data
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise BadInputError(f"cannot read pci.ids file {path}: {reason}") from err
    return parse_pci_ids(text, source=path)


def system_pci_ids(warn: Callable[[str], None]) -> PciIds:
    """The system's pci.ids; when it cannot be read, an empty database (hex IDs) and a warning."""
    try:
        return load_pci_ids(find_pci_ids())
    except BadInputError as err:
        warn(f"{err}; showing hex IDs")
        return PciIds()


def parse_pci_ids(text: str, source: str | None = None) -> PciIds:
    """Parse pci.ids text, honouring its tab nesting; malformed lines are ignored."""
    ids = PciIds(source=source)
    vendor: _Vendor | None = None
    device: _Device | None = None
    klass: tuple[str, dict[str, str]] | None = None
    for line in text.splitlines():
        if not line or line[0] == "#":
            continue
        if line[0] != "\t":
            vendor, device, klass = None, None, None
            if line.startswith("C "):
                code, _, name = line[2:].partition(" ")
                klass = (name.strip(), {})
                ids.classes[code.lower()] = klass
            else:
                code, _, name = line.partition(" ")
                if len(code) == 4:
                    vendor = _Vendor(name.strip())
                    ids.vendors[code.lower()] = vendor
        elif not line.startswith("\t\t"):
            code, _, name = line[1:].partition(" ")
            if vendor is not None and len(code) == 4:
                device = _Device(name.strip())
                vendor.devices[code.lower()] = device
            elif klass is not None and len(code) == 2:
                klass[1][code.lower()] = name.strip()
        elif device is not None and vendor is not None:
            parts = line[2:].split(None, 2)
            if len(parts) == 3 and len(parts[0]) == 4 and len(parts[1]) == 4:
                device.subsystems[(parts[0].lower(), parts[1].lower())] = parts[2]
    return ids
