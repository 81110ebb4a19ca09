"""The scanner: builds an immutable `Host` from a `HostFS`, fast, never crashing on bad entries.

Per function it costs one readlink of the bus entry (for the PCIe path), one directory listing
(so absent attributes are never probed), one read of `uevent` (driver, IDs and class in one
go), and a handful of small reads. Groups are derived from the devices' `iommu_group` links,
VF indexes from the PFs' `virtfnN` links, so nothing is read twice. A device that vanishes or
carries garbage is skipped with a reason; the rest of the host is still returned.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from hostdev.host.fs import (
    HostFS,
    link_name,
    link_target,
    list_dir,
    list_dir_fd,
    open_dir,
    read_text,
)
from hostdev.host.model import (
    Host,
    IommuGroup,
    Mdev,
    MdevType,
    PciAddress,
    PciDevice,
    SkippedDevice,
    Sriov,
)

_HEX4 = re.compile(r"^[0-9a-f]{4}$")
_HEX_VALUE = re.compile(r"(?:0x)?([0-9a-f]+)")
_ADDRESS_LIKE = re.compile(r"^[0-9a-f]{4,8}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


class _Skip(Exception):
    """Raised inside the per-device scan to skip a device with a reason."""


@dataclass
class _Accumulator:
    devices: dict[PciAddress, dict[str, Any]] = field(default_factory=dict)  # PciDevice kwargs
    skipped: list[SkippedDevice] = field(default_factory=list)
    group_members: dict[int, list[PciAddress]] = field(default_factory=lambda: defaultdict(list))


def scan_host(fs: HostFS) -> Host:
    """Scan every PCI function, IOMMU group and mdev under the HostFS roots."""
    fs.check()
    acc = _Accumulator()
    pci_dir = fs.sys("bus", "pci", "devices")
    for name in list_dir(pci_dir):
        _scan_entry(pci_dir, name, acc)
    devices = _build_devices(acc.devices)
    vfio_dir = set(list_dir(fs.dev("vfio")))
    groups = {
        number: IommuGroup(number, tuple(sorted(members)), str(number) in vfio_dir)
        for number, members in acc.group_members.items()
    }
    return Host(
        devices=devices,
        groups=groups,
        mdevs=tuple(_scan_mdevs(fs, devices)),
        skipped=tuple(acc.skipped),
        vfio_container="vfio" in vfio_dir,
        iommufd=os.path.exists(fs.dev("iommu")),
    )


def _scan_entry(pci_dir: str, name: str, acc: _Accumulator) -> None:
    if not _ADDRESS_LIKE.match(name):
        acc.skipped.append(SkippedDevice(name, "not a PCI address"))
        return
    address = PciAddress.from_kernel(name)
    target = link_target(os.path.join(pci_dir, name))
    dir_fd = open_dir(os.path.join(pci_dir, name))
    if dir_fd is None:
        acc.skipped.append(SkippedDevice(name, "vanished during the scan"))
        return
    group: int | None = None
    try:
        group = _group_number(dir_fd)
        acc.devices[address] = _scan_device(address, target, dir_fd, group)
    except _Skip as why:
        acc.skipped.append(SkippedDevice(name, str(why)))
    finally:
        os.close(dir_fd)
        if group is not None:
            acc.group_members[group].append(address)


def _group_number(dir_fd: int) -> int | None:
    group = link_name("iommu_group", dir_fd)
    return int(group) if group is not None and group.isdigit() else None


def _scan_device(
    address: PciAddress, target: str | None, fd: int, group: int | None
) -> dict[str, Any]:
    entries = set(list_dir_fd(fd))
    if not entries:
        raise _Skip("vanished during the scan")
    uevent = _parse_uevent(read_text("uevent", fd))
    vendor, device = _ids(uevent.get("PCI_ID"), fd, "vendor", "device")
    sub_vendor, sub_device = _ids(
        uevent.get("PCI_SUBSYS_ID"), fd, "subsystem_vendor", "subsystem_device", required=False
    )
    problems: list[str] = []
    numa = _numa_node(read_text("numa_node", fd) if "numa_node" in entries else None, problems)
    return dict(
        address=address,
        vendor=vendor,
        device=device,
        subsystem_vendor=sub_vendor,
        subsystem_device=sub_device,
        class_code=_class_code(uevent.get("PCI_CLASS"), fd),
        revision=_hex_value(read_text("revision", fd), 2) or "00",
        driver=uevent.get("DRIVER") or link_name("driver", fd),
        driver_override=_override(
            read_text("driver_override", fd) if "driver_override" in entries else None
        ),
        iommu_group=group,
        numa_node=numa,
        pci_path=_pci_path(target),
        sriov=_sriov(fd) if "sriov_totalvfs" in entries else None,
        physfn=_link_address("physfn", fd) if "physfn" in entries else None,
        netdevs=tuple(sorted(list_dir("net", fd))) if "net" in entries else (),
        vfio_cdev=_first(list_dir("vfio-dev", fd)) if "vfio-dev" in entries else None,
        mdev_types=_mdev_types(fd) if "mdev_supported_types" in entries else (),
        problems=tuple(problems),
    )


def _parse_uevent(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def _ids(
    pair: str | None, fd: int, first: str, second: str, *, required: bool = True
) -> tuple[str, str]:
    """Two hex IDs from a uevent "VVVV:DDDD" pair, else from the two attribute files."""
    if pair is not None:
        left, _, right = pair.lower().partition(":")
        if _HEX4.match(left) and _HEX4.match(right):
            return left, right
    left_id = _hex_value(read_text(first, fd), 4)
    right_id = _hex_value(read_text(second, fd), 4)
    if left_id is None or right_id is None:
        if required:
            raise _Skip(f"unreadable {first}/{second} IDs")
        return "0000", "0000"
    return left_id, right_id


def _hex_value(text: str | None, width: int) -> str | None:
    """ "0x10de" → "10de"; None for garbage or a value wider than width digits."""
    if text is None:
        return None
    match = _HEX_VALUE.fullmatch(text.strip().lower())
    if match is None or len(match[1]) > width:
        return None
    return match[1].zfill(width)


def _class_code(uevent_class: str | None, fd: int) -> str:
    value = _hex_value(uevent_class, 6) or _hex_value(read_text("class", fd), 6)
    if value is None:
        raise _Skip("unreadable class")
    return value


def _numa_node(text: str | None, problems: list[str]) -> int | None:
    if text is None:
        return None
    try:
        node = int(text)
    except ValueError:
        problems.append(f"garbage numa_node {text[:20]!r}")
        return None
    return node if node >= 0 else None


def _override(text: str | None) -> str | None:
    return None if text in (None, "", "(null)") else text


def _pci_path(target: str | None) -> tuple[str, ...]:
    """Upstream bridge addresses from the bus link target, root port first."""
    # ../../../devices/pci0000:00/<bridge>/.../<self>: bridges sit between the root and self
    root = target.find("/pci") if target else -1
    if target is None or root < 0:
        return ()
    return tuple(target[root + 1 :].split("/")[1:-1])


def _link_address(name: str, fd: int) -> PciAddress | None:
    base = link_name(name, fd)
    return PciAddress.from_kernel(base) if base and _ADDRESS_LIKE.match(base) else None


def _first(names: list[str]) -> str | None:
    return sorted(names)[0] if names else None


def _int_or(text: str | None, default: int) -> int:
    try:
        return int(text) if text is not None else default
    except ValueError:
        return default


def _sriov(fd: int) -> Sriov:
    vfs = []
    for name in list_dir_fd(fd):
        if name.startswith("virtfn") and name[6:].isdigit():
            vf = _link_address(name, fd)
            if vf is not None:
                vfs.append((int(name[6:]), vf))
    autoprobe = read_text("sriov_drivers_autoprobe", fd)
    return Sriov(
        total_vfs=_int_or(read_text("sriov_totalvfs", fd), 0),
        num_vfs=_int_or(read_text("sriov_numvfs", fd), 0),
        vfs=tuple(vf for _, vf in sorted(vfs)),
        drivers_autoprobe=None if autoprobe is None else autoprobe.strip() == "1",
    )


def _build_devices(raw: dict[PciAddress, dict[str, Any]]) -> dict[PciAddress, PciDevice]:
    """Fill each VF's index from its PF's virtfnN order (no extra reads), then freeze."""
    for fields in raw.values():
        sriov = fields["sriov"]
        if sriov is None:
            continue
        for index, vf_address in enumerate(sriov.vfs):
            vf = raw.get(vf_address)
            if vf is not None:
                vf["vf_index"] = index
                vf["physfn"] = fields["address"]
    return {address: PciDevice(**fields) for address, fields in raw.items()}


def _mdev_types(fd: int) -> tuple[MdevType, ...]:
    types = []
    for type_id in sorted(list_dir("mdev_supported_types", fd)):
        base = f"mdev_supported_types/{type_id}/"
        types.append(
            MdevType(
                type_id=type_id,
                name=read_text(base + "name", fd) or type_id,
                available_instances=_int_or(read_text(base + "available_instances", fd), 0),
                device_api=read_text(base + "device_api", fd) or "",
                description=read_text(base + "description", fd) or "",
            )
        )
    return tuple(types)


def _scan_mdevs(fs: HostFS, devices: dict[PciAddress, PciDevice]) -> list[Mdev]:
    mdev_dir = fs.sys("bus", "mdev", "devices")
    mdevs = []
    for uuid in sorted(list_dir(mdev_dir)):
        path = os.path.join(mdev_dir, uuid)
        parent = _parent_of_mdev(link_target(path))
        type_id = link_name(os.path.join(path, "mdev_type"))
        if not _UUID.match(uuid) or parent is None or type_id is None:
            continue
        group = link_name(os.path.join(path, "iommu_group"))
        names = {t.type_id: t.name for t in devices[parent].mdev_types} if parent in devices else {}
        mdevs.append(
            Mdev(
                uuid,
                type_id,
                names.get(type_id, type_id),
                parent,
                int(group) if group and group.isdigit() else None,
            )
        )
    return mdevs


def _parent_of_mdev(target: str | None) -> PciAddress | None:
    if target is None:
        return None
    parts = target.rstrip("/").split("/")
    parent = parts[-2] if len(parts) >= 2 else ""
    return PciAddress.parse(parent) if _ADDRESS_LIKE.match(parent) else None
