"""The scanner: builds an immutable `Host` from a `HostFS`, fast, never crashing on bad entries.

Two passes per chunk of functions: hostdev.host.rawread reads each function's attributes
back to back, then this module parses the raw records and builds the frozen model. Chunks
keep the unparsed records of a few hundred functions alive at a time, not of every function:
a daemon's memory keeps the high-water mark of a scan's short-lived objects. Groups are
derived from the devices' `iommu_group` links, VF indexes from the PFs' `virtfnN` links, so
nothing is read twice. A device that vanishes or carries garbage is skipped with a reason;
the rest of the host is still returned. Given the previous snapshot (a daemon's rescan), a
device or group equal to its previous self is that object, and a host equal to it is the
previous snapshot itself: a rescan keeps one copy of the model alive, not two, and what the
daemon derived from the snapshot (selection, allocation inventory) is not built again.
"""

from __future__ import annotations

import gc
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from sys import intern

from hostdev.host.construct import positional_constructor
from hostdev.host.fs import HostFS, link_name, link_target, list_dir, open_dir
from hostdev.host.model import Host, IommuGroup, Mdev, PciAddress, PciDevice, SkippedDevice
from hostdev.host.rawread import RawFunction, is_address, read_fallback, read_function

_HEX4 = re.compile(r"[0-9a-f]{4}")
_HEX_VALUE = re.compile(r"(?:0x)?([0-9a-f]+)")
_REVISION = re.compile(rb"0x([0-9a-fA-F]{2})\n?")
_NUMA_NODE = re.compile(rb"(-?[0-9]+)\n?")
_UNSEEN = -2  # a numa_node value not parsed yet in this scan (the kernel writes -1 and up)
# The kernel's pci_uevent() lines up to PCI_SLOT_NAME, the first that differs between the
# functions of one model; DRIVER comes first when a driver is bound
_UEVENT_HEAD = re.compile(
    rb"(?:DRIVER=([^\n]+)\n)?PCI_CLASS=([0-9A-Fa-f]{1,6})\n"
    rb"PCI_ID=([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4})\n"
    rb"PCI_SUBSYS_ID=([0-9A-Fa-f]{4}):([0-9A-Fa-f]{4})\n"
)
_SLOT_NAME = b"PCI_SLOT_NAME="
_UeventFields = tuple[str | None, str, str, str, str, str]  # driver, class, vendor, device, sub…
_new_device = positional_constructor(PciDevice)
_CHUNK = 512  # functions read, then parsed, per round (docs/benchmarks.md)
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


class _Skip(Exception):
    """Raised inside the per-device parse to skip a device with a reason."""


@dataclass
class _Accumulator:
    devices: dict[PciAddress, PciDevice] = field(default_factory=dict)
    skipped: list[SkippedDevice] = field(default_factory=list)
    group_members: dict[int, list[PciAddress]] = field(default_factory=dict)
    addresses: dict[str, PciAddress] = field(default_factory=dict)  # one object per address
    bus_fd: int = -1  # bus/pci/devices, open through both passes
    sys_root: str = "/sys"
    paths: dict[str, tuple[str, ...]] = field(default_factory=dict)  # PCIe paths, shared
    # Thousands of VFs share one uevent head and one revision: each is parsed once per scan
    uevent_heads: dict[bytes, _UeventFields] = field(default_factory=dict)
    revisions: dict[bytes | None, str] = field(default_factory=dict)  # "": garbage
    numa_nodes: dict[bytes | None, int | None] = field(default_factory=lambda: {None: None})
    vf_positions: dict[PciAddress, tuple[PciAddress, int]] = field(default_factory=dict)
    previous: Mapping[PciAddress, PciDevice] = field(default_factory=dict)
    known_vfs: set[str] = field(default_factory=set)
    # /dev/vfio/devices: a vfio-dev/vfioN entry has a node only with VFIO device cdevs (6.6+,
    # built with iommufd; Debian's 6.1 and 6.12 list the entries without nodes)
    cdev_nodes: frozenset[str] = frozenset()

    def address(self, name: str) -> PciAddress:
        """The PciAddress of a kernel-written name, parsed once per scan."""
        address = self.addresses.get(name)
        if address is None:
            address = self.addresses[name] = PciAddress.from_kernel(name)
        return address


def scan_host(fs: HostFS, previous: Host | None = None) -> Host:
    """Scan every PCI function, IOMMU group and mdev under the HostFS roots; unchanged
    devices and groups are the previous snapshot's objects, an unchanged host the previous
    snapshot."""
    fs.check()
    acc = _Accumulator(
        sys_root=str(fs.sys_root),
        previous=previous.devices if previous is not None else {},
        cdev_nodes=frozenset(list_dir(fs.dev("vfio", "devices"))),
    )
    pci_dir = fs.sys("bus", "pci", "devices")
    # in address order a PF comes before its VFs (a VF's routing ID is its PF's plus an
    # offset), so each VF's chunk finds its PF indexed
    names = sorted(list_dir(pci_dir))
    bus_fd = open_dir(pci_dir)
    acc.bus_fd = -1 if bus_fd is None else bus_fd
    try:
        with _collector_paused():
            for start in range(0, len(names), _CHUNK):
                _scan_chunk(names[start : start + _CHUNK], acc)
            missing_vfs = acc.known_vfs.difference(names)
            if missing_vfs:
                _note_missing_vfs({acc.address(name) for name in missing_vfs}, acc)
            vfio_dir = set(list_dir(fs.dev("vfio")))
            before = previous.groups if previous is not None else {}
            groups = _groups(acc.group_members, vfio_dir, before)
    finally:
        if acc.bus_fd >= 0:
            os.close(acc.bus_fd)
    host = Host(
        devices=acc.devices,
        groups=groups,
        mdevs=tuple(_scan_mdevs(fs, acc.devices, acc.skipped)),
        skipped=tuple(acc.skipped),
        vfio_container="vfio" in vfio_dir,
        iommufd=os.path.exists(fs.dev("iommu")),
    )
    # nothing changed: the previous snapshot itself, so what was derived from it stays valid
    return previous if previous is not None and previous == host else host


@contextmanager
def _collector_paused() -> Iterator[None]:
    # A scan allocates tens of thousands of acyclic objects; the cyclic collector's runs
    # midway would only walk them again and again (about a tenth of the scan's time).
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _scan_chunk(names: list[str], acc: _Accumulator) -> None:
    """Both passes for a run of functions: read them all, index the PFs' VFs, parse."""
    records = _read_bus(names, acc)
    _index_vfs(records, acc)
    for raw in records:
        _add_function(raw, acc)


def _read_bus(names: list[str], acc: _Accumulator) -> list[RawFunction]:
    """Phase one: the raw records of every function on the bus, vanished ones skipped."""
    if acc.bus_fd < 0:
        return []
    records = []
    for name in names:
        raw = (
            read_function(acc.bus_fd, acc.sys_root, name, acc.address, acc.known_vfs)
            if is_address(name)
            else None
        )
        if isinstance(raw, RawFunction):
            records.append(raw)
        else:
            acc.skipped.append(SkippedDevice(name, raw or "not a PCI address"))
    return records


def _add_function(raw: RawFunction, acc: _Accumulator) -> None:
    """Phase two for one function: its group membership, then the device or why not."""
    address = acc.address(raw.name)
    group = _group_number(raw.group)
    if group is not None:  # an unreadable member still counts: it blocks viability
        members = acc.group_members.get(group)
        if members is None:
            acc.group_members[group] = [address]
        else:
            members.append(address)
    try:
        device = _build_device(address, group, raw, acc)
    except _Skip as why:
        acc.skipped.append(SkippedDevice(raw.name, str(why)))
        return
    if acc.previous:  # a rescan: an unchanged device is the previous object
        device = _previous_if_equal(device, acc.previous)
    acc.devices[device.address] = device


def _previous_if_equal(device: PciDevice, previous: Mapping[PciAddress, PciDevice]) -> PciDevice:
    before = previous.get(device.address)
    return before if before is not None and before == device else device


def _group_number(name: str | None) -> int | None:
    # kernel_number's test, inline: this runs for every function of every scan
    return int(name) if name and name.isascii() and name.isdigit() else None


def _build_device(
    address: PciAddress, group: int | None, raw: RawFunction, acc: _Accumulator
) -> PciDevice:
    # The hot path of every rescan: every field of PciDevice, in its order.
    driver, class_code, vendor, device, sub_vendor, sub_device = _uevent_fields(raw, acc)
    problems: list[str] = []
    revision = acc.revisions.get(raw.revision)
    if revision is None:
        revision = acc.revisions[raw.revision] = _revision(raw.revision)
    if not revision:
        problems.append(_garbage("revision", raw.revision))
        revision = "00"
    numa_node = acc.numa_nodes.get(raw.numa_node, _UNSEEN)
    if numa_node == _UNSEEN:
        numa_node = _numa_node(raw.numa_node, acc.numa_nodes, problems)
    physfn, vf_index = acc.vf_positions.get(address) or (_physfn(raw.physfn, acc, problems), None)
    if group is None and raw.group is not None:
        problems.append(f"garbage iommu_group link {raw.group!r}")
    if raw.problems:
        problems += raw.problems
    return _new_device(
        address,
        vendor,
        device,
        sub_vendor,
        sub_device,
        class_code,
        revision,
        driver or raw.driver,
        _override(raw.driver_override),
        group,
        numa_node,
        _pci_path(raw.bus_link, acc.paths),
        raw.sriov,
        physfn,
        vf_index,
        tuple(sorted(raw.net)) if raw.net else (),
        _cdev(raw.vfio_dev, acc.cdev_nodes),
        raw.mdev_types,
        tuple(problems),
    )


def _uevent_fields(raw: RawFunction, acc: _Accumulator) -> _UeventFields:
    """Driver, class and IDs from uevent; the one-value files when it is not the kernel's."""
    head = raw.uevent.partition(_SLOT_NAME)[0] if raw.uevent else b""
    fields = acc.uevent_heads.get(head)
    if fields is not None:
        return fields
    match = _UEVENT_HEAD.fullmatch(head)
    if match is None:
        return _slow_uevent(
            raw.uevent.decode("utf-8", "replace") if raw.uevent else "", raw.name, acc
        )
    fields = acc.uevent_heads[head] = _head_fields(match)
    return fields


def _head_fields(match: re.Match[bytes]) -> _UeventFields:
    # interned: a daemon keeps the snapshot, and equal values then share one string
    driver = intern(match[1].decode("utf-8", "replace")) if match[1] else None
    class_code, vendor, device, sub_vendor, sub_device = (
        intern(hex_digits.decode().lower()) for hex_digits in match.groups()[1:]
    )
    return driver, intern(class_code.zfill(6)), vendor, device, sub_vendor, sub_device


def _slow_uevent(text: str, name: str, acc: _Accumulator) -> _UeventFields:
    """Whatever uevent lines parse, the one-value files for the rest; _Skip without IDs."""
    uevent = _parse_uevent(text)
    files = read_fallback(acc.bus_fd, name)
    vendor, device = _ids(uevent.get("PCI_ID"), files, "vendor", "device")
    sub_vendor, sub_device = _ids(
        uevent.get("PCI_SUBSYS_ID"), files, "subsystem_vendor", "subsystem_device", required=False
    )
    class_code = _hex_value(uevent.get("PCI_CLASS"), 6) or _hex_value(files.get("class"), 6)
    if class_code is None:
        raise _Skip("unreadable class")
    return uevent.get("DRIVER") or None, class_code, vendor, device, sub_vendor, sub_device


def _parse_uevent(text: str) -> dict[str, str]:
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        if sep:
            fields[key] = value
    return fields


def _ids(
    pair: str | None,
    files: dict[str, str | None],
    first: str,
    second: str,
    *,
    required: bool = True,
) -> tuple[str, str]:
    """Two hex IDs from a uevent "VVVV:DDDD" pair, else from the two attribute files."""
    if pair is not None:
        left, _, right = pair.lower().partition(":")
        if _HEX4.fullmatch(left) and _HEX4.fullmatch(right):
            return left, right
    left_id = _hex_value(files.get(first), 4)
    right_id = _hex_value(files.get(second), 4)
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


def _revision(raw: bytes | None) -> str:
    """Two lower-case hex digits; "" when unreadable or garbage."""
    match = _REVISION.fullmatch(raw) if raw else None
    if match is not None:
        return intern(match[1].decode().lower())
    return _hex_value(raw.decode("utf-8", "replace") if raw else None, 2) or ""


def _numa_node(
    raw: bytes | None, known: dict[bytes | None, int | None], problems: list[str]
) -> int | None:
    """The node the kernel wrote ("-1" and other negatives: none), remembered in known; a
    problem for anything but a plain decimal number (int() would take "1_0" as 10)."""
    match = _NUMA_NODE.fullmatch(raw) if raw is not None else None
    if match is None:
        problems.append(_garbage("numa_node", raw))
        return None
    node = int(match[1])
    known[raw] = node if node >= 0 else None
    return known[raw]


def _garbage(name: str, raw: bytes | None) -> str:
    if raw is None:
        return f"unreadable {name}"
    text = raw.rstrip(b"\n")[:20].decode("utf-8", "replace")
    return f"garbage {name} {text!r}"


def _override(raw: bytes | None) -> str | None:
    text = raw.decode("utf-8", "replace").rstrip("\n") if raw else ""
    return None if text in ("", "(null)") else text


def _cdev(listed: list[str] | None, nodes: frozenset[str]) -> str | None:
    """The function's iommufd cdev: its vfio-dev entry, when /dev has that node."""
    present = nodes.intersection(listed) if listed and nodes else ()
    return min(present) if present else None


def _pci_path(target: str | None, known: dict[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Upstream bridge addresses from the bus link target, root port first (one tuple shared
    by every function behind the same bridges)."""
    # ../../../devices/pci0000:00/<bridge>/.../<self>: bridges sit between the root and self;
    # a VMD controller's domain adds a root of its own (.../0000:00:0e.0/pci10000:e0/...)
    root = target.find("/pci") if target else -1
    if target is None or root < 0:
        return ()
    parent = target[root + 1 : target.rfind("/")]
    path = known.get(parent)
    if path is None:
        path = known[parent] = tuple(part for part in parent.split("/") if is_address(part))
    return path


def _index_vfs(records: list[RawFunction], acc: _Accumulator) -> None:
    """Each VF's PF and index, from the PFs' virtfnN links: no extra reads."""
    for raw in records:
        if raw.sriov is not None:
            pf = acc.address(raw.name)
            for index, vf in raw.sriov.indexed_vfs():
                acc.vf_positions[vf] = (pf, index)


def _note_missing_vfs(missing: set[PciAddress], acc: _Accumulator) -> None:
    """A problem on each PF whose virtfnN link names a function that is not on the bus."""
    for address, device in list(acc.devices.items()):
        gone = [
            f"virtfn{index} links to {vf}, which is not on the PCI bus"
            for index, vf in (device.sriov.indexed_vfs() if device.sriov else ())
            if vf in missing
        ]
        if gone:
            noted = replace(device, problems=(*device.problems, *gone))
            acc.devices[address] = _previous_if_equal(noted, acc.previous)


def _physfn(name: str | None, acc: _Accumulator, problems: list[str]) -> PciAddress | None:
    """The PF named by a VF's own physfn link (its PF did not list it, or is unreadable)."""
    if name is None:
        return None
    if is_address(name):
        return acc.address(name)
    problems.append(f"physfn links to {name!r}, not a PCI address")
    return None


def _groups(
    members: dict[int, list[PciAddress]],
    vfio_dir: set[str],
    previous: Mapping[int, IommuGroup],
) -> dict[int, IommuGroup]:
    groups = {
        number: IommuGroup(number, tuple(sorted(addresses)), str(number) in vfio_dir)
        for number, addresses in members.items()
    }
    if previous:  # a rescan: an unchanged group is the previous object
        unchanged = [number for number, group in groups.items() if previous.get(number) == group]
        groups.update((number, previous[number]) for number in unchanged)
    return groups


def _scan_mdevs(
    fs: HostFS, devices: dict[PciAddress, PciDevice], skipped: list[SkippedDevice]
) -> list[Mdev]:
    """Every readable mdev; the others go to skipped with the reason."""
    mdev_dir = fs.sys("bus", "mdev", "devices")
    mdevs = []
    for uuid in sorted(list_dir(mdev_dir)):
        mdev = _read_mdev(mdev_dir, uuid, devices)
        if isinstance(mdev, Mdev):
            mdevs.append(mdev)
        else:
            skipped.append(SkippedDevice(uuid, mdev))
    return mdevs


def _read_mdev(mdev_dir: str, uuid: str, devices: dict[PciAddress, PciDevice]) -> Mdev | str:
    """One mdev, or why it cannot be read."""
    if not _UUID.fullmatch(uuid):
        return "not an mdev UUID"
    path = os.path.join(mdev_dir, uuid)
    parent = _parent_of_mdev(link_target(path))
    if parent is None:
        return "its parent is not a PCI function"
    type_id = link_name(os.path.join(path, "mdev_type"))
    if type_id is None:
        return "vanished during the scan"
    group = link_name(os.path.join(path, "iommu_group"))
    names = {t.type_id: t.name for t in devices[parent].mdev_types} if parent in devices else {}
    return Mdev(uuid, type_id, names.get(type_id, type_id), parent, _group_number(group))


def _parent_of_mdev(target: str | None) -> PciAddress | None:
    if target is None:
        return None
    parts = target.rstrip("/").split("/")
    parent = parts[-2] if len(parts) >= 2 else ""
    return PciAddress.from_kernel(parent) if is_address(parent) else None
