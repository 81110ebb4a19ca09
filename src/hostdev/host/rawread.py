"""Phase one of a scan: every read one PCI function needs, done back to back, nothing parsed.

Reading all of a function's attributes in one tight run of system calls and parsing them in
a later pass (hostdev.host.scan) keeps the interpreter's work out of the stretch between
system calls, where each step pays for caches the kernel has just used (measured in
docs/benchmarks.md). Every function: a readlink of the bus entry (its target is the PCIe
path), a directory fd on that path, `uevent` (driver, IDs and class in one read), revision,
numa_node, driver_override and the iommu_group link. A VF that its PF already listed and that
is on vfio-pci or unbound (the thousands of VFs of a passthrough node) then needs only its
vfio-dev listing: 21 system calls. Any other function's directory is listed (so absent
attributes are never probed) and its optional entries read: physfn, vfio-dev, net, a PF's
SR-IOV links, an mdev parent's types.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import NamedTuple

from hostdev.host.fs import (
    kernel_number,
    link_name,
    link_target,
    list_dir,
    open_dir,
    read_many,
    read_text,
)
from hostdev.host.model import MdevType, PciAddress, Sriov

_UP_TO_SYS = "../../../"  # from bus/pci/devices/ back to the sysfs root
_DEVICES_FROM_BUS = _UP_TO_SYS + "devices/"
_COMMON_FILES = ("uevent", "revision", "numa_node", "driver_override")  # missing ones: None
# the entries whose presence decides what else is read
_OPTIONAL_ENTRIES = frozenset(
    ("driver", "physfn", "vfio-dev", "net", "sriov_totalvfs", "mdev_supported_types")
)
# one-value files the parse falls back on when uevent is not in the kernel's format
_FALLBACK_FILES = ("vendor", "device", "subsystem_vendor", "subsystem_device", "class")
_VFIO_DEV = frozenset(("vfio-dev",))
# uevent starts with DRIVER= when a driver is bound, else with PCI_CLASS=
_PLAIN_VF_UEVENTS = (b"DRIVER=vfio-pci\n", b"PCI_CLASS=")
# the kernel's own names: lower-case hex, slots 00-1f (matched whole: `$` would allow a "\n")
_ADDRESS_LIKE = re.compile(r"[0-9a-f]{4,8}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]")

AddressOf = Callable[[str], PciAddress]
_NO_SRIOV: tuple[None, tuple[str, ...]] = (None, ())
_NO_MDEV_TYPES: tuple[tuple[MdevType, ...], tuple[str, ...]] = ((), ())


class RawFunction(NamedTuple):
    """What phase one read for one PCI function, still unparsed."""

    name: str
    bus_link: str | None  # target of bus/pci/devices/<name>: the PCIe path
    group: str | None  # the iommu_group link's last component, e.g. "12"
    uevent: bytes | None
    driver: str | None  # the driver link's last component, read only when uevent has none
    revision: bytes | None
    numa_node: bytes | None  # None: missing or unreadable
    driver_override: bytes | None
    physfn: str | None  # the physfn link's last component
    vfio_dev: list[str] | None
    net: list[str] | None
    sriov: Sriov | None
    mdev_types: tuple[MdevType, ...]
    problems: tuple[str, ...]  # SR-IOV and mdev entries that were unreadable or garbage


def read_function(
    bus_fd: int, sys_root: str, name: str, address_of: AddressOf, known_vfs: set[str]
) -> RawFunction | str:
    """Everything one function's parse needs, or why it cannot be read (it vanished).

    known_vfs holds the names of the VFs that the PFs read so far link to; reading a PF adds
    its VFs.
    """
    bus_link = link_target(name, bus_fd)
    path = device_path(sys_root, name, bus_link)
    fd = open_dir(path)
    if fd is None:
        return "vanished during the scan"
    try:
        common = read_many(_COMMON_FILES, fd)
        present = _present_entries(name, path, common[0], known_vfs)
        if present is None:
            return "vanished during the scan"
        listing, entries = present
        return _read_attributes(
            name, bus_link, path, fd, common, listing, entries, address_of, known_vfs
        )
    finally:
        os.close(fd)


def _present_entries(
    name: str, path: str, uevent: bytes | None, known_vfs: set[str]
) -> tuple[list[str], frozenset[str]] | None:
    """The directory's listing and which optional entries it has; None when it is gone.

    A VF its PF listed, on vfio-pci or unbound, is not listed: neither driver gives it a
    netdev or mdev types, and a VF has no SR-IOV entries and no physfn but its PF's, so only
    vfio-dev can be there, and only with the driver bound.
    """
    if uevent is not None and name in known_vfs and uevent.startswith(_PLAIN_VF_UEVENTS):
        return [], _VFIO_DEV if uevent.startswith(b"DRIVER=") else frozenset()
    listing = list_dir(path)
    if not listing:
        return None
    return listing, _OPTIONAL_ENTRIES.intersection(listing)  # no set of all forty names


def device_path(sys_root: str, name: str, bus_link: str | None) -> str:
    """The function's directory: the bus link's target when it has the kernel's shape.

    Listing by path takes five system calls where listing an open descriptor takes eight
    (os.listdir(fd) duplicates, re-checks and rewinds it), and the resolved path spares the
    kernel the symbolic link.
    """
    if bus_link is not None and bus_link.startswith(_DEVICES_FROM_BUS):
        return f"{sys_root}/{bus_link[len(_UP_TO_SYS) :]}"
    return f"{sys_root}/bus/pci/devices/{name}"


def _read_attributes(
    name: str,
    bus_link: str | None,
    path: str,
    fd: int,
    common: list[bytes | None],
    listing: list[str],
    entries: frozenset[str],
    address_of: AddressOf,
    known_vfs: set[str],
) -> RawFunction:
    uevent, revision, numa_node, driver_override = common
    sriov, sriov_problems = (
        _sriov(fd, listing, address_of, known_vfs) if "sriov_totalvfs" in entries else _NO_SRIOV
    )
    mdev_types, mdev_problems = (
        _mdev_types(fd) if "mdev_supported_types" in entries else _NO_MDEV_TYPES
    )
    return RawFunction(
        name,
        bus_link,
        link_name("iommu_group", fd),
        uevent,
        # a bound driver is named in uevent; the link is the fallback for a garbled one
        link_name("driver", fd)
        if "driver" in entries and not (uevent and uevent.startswith(b"DRIVER="))
        else None,
        revision,
        numa_node,
        driver_override,
        link_name("physfn", fd) if "physfn" in entries else None,
        list_dir(f"{path}/vfio-dev") if "vfio-dev" in entries else None,
        list_dir(f"{path}/net") if "net" in entries else None,
        sriov,
        mdev_types,
        sriov_problems + mdev_problems,
    )


def read_fallback(bus_fd: int, name: str) -> dict[str, str | None]:
    """The one-value ID and class files, for a function whose uevent did not parse."""
    fd = open_dir(name, bus_fd)
    if fd is None:
        return {}
    try:
        return {file: read_text(file, fd) for file in _FALLBACK_FILES}
    finally:
        os.close(fd)


def _count(fd: int, path: str, problems: list[str]) -> int:
    """A non-negative number from a one-value file; 0, with a problem noted, when unreadable."""
    text = read_text(path, fd)
    number = kernel_number(text) if text is not None else None
    if number is None:
        problems.append(_unreadable(path, text))
    return number or 0


def _unreadable(path: str, text: str | None) -> str:
    return f"unreadable {path}" if text is None else f"garbage {path} {text[:20]!r}"


def _sriov(
    fd: int, listing: list[str], address_of: AddressOf, known_vfs: set[str]
) -> tuple[Sriov, tuple[str, ...]]:
    """The PF's SR-IOV attributes and virtfnN links, and the entries that were garbage."""
    vfs = []
    problems: list[str] = []
    for name in listing:
        if name.startswith("virtfn"):
            digits = name[6:]  # kernel_number's test, inline: thousands of links per scan
            numbered = digits.isascii() and digits.isdigit()
            vf = link_name(name, fd) if numbered else None
            if vf is not None and is_address(vf):
                vfs.append((int(digits), address_of(vf)))
                known_vfs.add(vf)
            elif not numbered or vf is not None:  # a link gone mid-teardown is no problem
                problems.append(_bad_virtfn(name, vf))
    vfs.sort()
    indexes, addresses = tuple(zip(*vfs, strict=True)) or ((), ())
    autoprobe = read_text("sriov_drivers_autoprobe", fd)
    if autoprobe not in (None, "0", "1"):
        problems.append(_unreadable("sriov_drivers_autoprobe", autoprobe))
    sriov = Sriov(
        total_vfs=_count(fd, "sriov_totalvfs", problems),
        num_vfs=_count(fd, "sriov_numvfs", problems),
        vfs=addresses,
        vf_indexes=indexes,
        drivers_autoprobe=None if autoprobe not in ("0", "1") else autoprobe == "1",
    )
    return sriov, tuple(problems)


def _bad_virtfn(name: str, target: str | None) -> str:
    if target is None:
        return f"garbage SR-IOV link name {name!r}"
    return f"{name} links to {target!r}, not a PCI address"


def _mdev_types(fd: int) -> tuple[tuple[MdevType, ...], tuple[str, ...]]:
    """The mdev types a parent offers, and the entries that were garbage."""
    types = []
    problems: list[str] = []
    for type_id in sorted(list_dir("mdev_supported_types", fd)):
        base = f"mdev_supported_types/{type_id}/"
        types.append(
            MdevType(
                type_id=type_id,
                name=read_text(base + "name", fd) or type_id,
                available_instances=_count(fd, base + "available_instances", problems),
                device_api=read_text(base + "device_api", fd) or "",
                description=read_text(base + "description", fd) or "",
            )
        )
    return tuple(types), tuple(problems)


def is_address(name: str) -> bool:
    """Whether a kernel-written name is a PCI function address DDDD:BB:SS.F."""
    return _ADDRESS_LIKE.fullmatch(name) is not None
