"""Mediated devices (vGPU): the type and mdev views, create/remove plans, and their execution.

Creating writes a UUID to `<parent>/mdev_supported_types/<type>/create`; removing writes 1
to `/sys/bus/mdev/devices/<uuid>/remove`; both go through a `HostWriter`. A type is named
by its id (nvidia-231) or its name (GRID T4-2Q, or GRID_T4-2Q as KubeVirt spells it). The
declarative planner (KubeVirt's semantics, docs/mdev.md) lives in `hostdev.mdev_plan`.
"""

from __future__ import annotations

import errno
import re
import uuid as uuidlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hostdev.errors import BadInputError, DeviceNotFoundError, HostdevError, HostWriteError
from hostdev.host.fs import HostFS
from hostdev.host.model import Host, MdevType, PciAddress, PciDevice
from hostdev.host.writer import HostWriter

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHORT_ADDRESS = re.compile(r"^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
InUse = Callable[[str], bool]  # mdev UUID → allocated to a pod?
UuidFactory = Callable[[], str]


def never_in_use(_uuid: str) -> bool:
    """The allocation check used when nothing can tell (no kubelet to ask)."""
    return False


def new_uuid() -> str:
    """A random (version 4) UUID for a new mdev."""
    return str(uuidlib.uuid4())


# -- views ------------------------------------------------------------------------------
def parents(host: Host) -> list[PciDevice]:
    """Devices that offer mdev types, in address order."""
    return [d for d in host.sorted_devices() if d.mdev_types]


def types_document(host: Host) -> dict[str, Any]:
    """`hostdev mdev types -o json`: per parent card, its types and free instances."""
    return {
        "parents": [
            {
                "address": str(p.address),
                "driver": p.driver,
                "vendor_device": p.vendor_device,
                "types": [
                    {
                        "type_id": t.type_id,
                        "name": t.name,
                        "available_instances": t.available_instances,
                        "device_api": t.device_api,
                        "description": t.description,
                    }
                    for t in p.mdev_types
                ],
            }
            for p in parents(host)
        ]
    }


def mdevs_document(host: Host) -> dict[str, Any]:
    """`hostdev mdev list -o json`: every existing mdev."""
    return {
        "mdevs": [
            {
                "uuid": m.uuid,
                "type_id": m.type_id,
                "type_name": m.type_name,
                "parent": str(m.parent),
                "iommu_group": m.iommu_group,
            }
            for m in sorted(host.mdevs, key=lambda m: (m.parent, m.type_id, m.uuid))
        ]
    }


def kubevirt_name(name: str) -> str:
    """A type name the way KubeVirt compares it: spaces become underscores (GRID_T4-2Q)."""
    return name.strip().replace(" ", "_")


def type_matches(mdev_type: MdevType, wanted: str) -> bool:
    """Whether a configured type (id, name, or name with _ for spaces) means this type."""
    return wanted in (mdev_type.type_id, mdev_type.name, kubevirt_name(mdev_type.name))


def find_parent(host: Host, text: str) -> PciDevice:
    """The parent device at an address (0000:3b:00.0 or 3b:00.0) that offers mdev types."""
    full = f"0000:{text}" if _SHORT_ADDRESS.match(text) else text
    address = PciAddress.parse(full.lower())
    dev = host.device(address)
    if dev is None:
        raise DeviceNotFoundError(f"no PCI device at {address}")
    if not dev.mdev_types:
        raise BadInputError(
            f"{address} offers no mediated device types (no "
            "mdev_supported_types; is the vendor's vGPU driver loaded?)"
        )
    return dev


def resolve_type(parent: PciDevice, ref: str) -> MdevType:
    """The parent's type named by id, else by name; an ambiguous name is refused."""
    for mdev_type in parent.mdev_types:
        if mdev_type.type_id == ref:
            return mdev_type
    found = [t for t in parent.mdev_types if type_matches(t, ref)]
    if len(found) == 1:
        return found[0]
    if found:
        ids = ", ".join(t.type_id for t in found)
        raise BadInputError(f"type name {ref!r} is ambiguous on {parent.address}: {ids}")
    offered = ", ".join(f"{t.type_id} ({t.name})" for t in parent.mdev_types)
    raise BadInputError(f"{parent.address} offers no type {ref!r}; it offers {offered}")


def unreadable_instances(parent: PciDevice, mdev_type: MdevType) -> str | None:
    """The scan's problem with the type's available_instances (garbage, unreadable), if any."""
    path = f"mdev_supported_types/{mdev_type.type_id}/available_instances"
    return next((p for p in parent.problems if path in p.split()), None)


# -- actions ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CreateMdev:
    """Create one mdev of a type on a parent."""

    parent: PciAddress
    type_id: str
    uuid: str


@dataclass(frozen=True, slots=True)
class RemoveMdev:
    """Remove one mdev."""

    uuid: str
    parent: PciAddress
    type_id: str


MdevAction = CreateMdev | RemoveMdev


def action_writes(fs: HostFS, action: MdevAction) -> list[tuple[str, str]]:
    """The sysfs write (path, value) that carries out one action."""
    if isinstance(action, CreateMdev):
        return [
            (
                fs.sys(
                    "bus",
                    "pci",
                    "devices",
                    str(action.parent),
                    "mdev_supported_types",
                    action.type_id,
                    "create",
                ),
                action.uuid,
            )
        ]
    return [(fs.sys("bus", "mdev", "devices", action.uuid, "remove"), "1")]


def describe(action: MdevAction) -> str:
    """One human line per action."""
    if isinstance(action, CreateMdev):
        return f"create {action.uuid} ({action.type_id}) on {action.parent}"
    return f"remove {action.uuid} ({action.type_id}) from {action.parent}"


def plan_create(
    host: Host,
    parent_text: str,
    type_ref: str,
    uuid: str | None = None,
    uuid_factory: UuidFactory = new_uuid,
) -> CreateMdev:
    """Check the parent, the type, the UUID and the free instances; return the action."""
    parent = find_parent(host, parent_text)
    mdev_type = resolve_type(parent, type_ref)
    chosen = (uuid or uuid_factory()).lower()
    if not _UUID.match(chosen):
        raise BadInputError(f"{uuid!r} is not a UUID (8-4-4-4-12 hex digits)")
    if chosen in host.mdevs_by_uuid:
        raise BadInputError(f"an mdev with UUID {chosen} already exists")
    unknown = unreadable_instances(parent, mdev_type)
    if unknown is not None:
        raise HostdevError(
            f"cannot tell whether {mdev_type.type_id} ({mdev_type.name}) on {parent.address} "
            f"has an instance left: {unknown}"
        )
    if mdev_type.available_instances <= 0:
        raise HostdevError(
            f"{mdev_type.type_id} ({mdev_type.name}) on {parent.address} has no instances "
            "left (available_instances is 0); remove an mdev of this card or pick another card"
        )
    return CreateMdev(parent.address, mdev_type.type_id, chosen)


def plan_remove(host: Host, uuid: str, in_use: InUse = never_in_use) -> RemoveMdev:
    """Check that the mdev exists and is not allocated; return the action."""
    mdev = host.mdevs_by_uuid.get(uuid.lower())
    if mdev is None:
        raise DeviceNotFoundError(f"no mdev with UUID {uuid}")
    if in_use(mdev.uuid):
        raise HostdevError(
            f"mdev {mdev.uuid} is allocated to a pod; refusing to remove it "
            "(delete the pod or VM first)"
        )
    return RemoveMdev(mdev.uuid, mdev.parent, mdev.type_id)


def execute(fs: HostFS, writer: HostWriter, actions: Iterable[MdevAction]) -> None:
    """Carry out actions in order; a refused write becomes a HostdevError saying why."""
    for action in actions:
        for path, value in action_writes(fs, action):
            try:
                writer.write(path, value)
            except HostWriteError as err:
                raise explain_write_error(action, err) from err


def explain_write_error(action: MdevAction, err: HostWriteError) -> HostdevError:
    """Turn the kernel's errno for an mdev write into a sentence a user can act on."""
    code = err.errno
    if isinstance(action, CreateMdev):
        if code in (errno.ENOSPC, errno.EDQUOT):
            return HostdevError(f"{action.type_id} on {action.parent} has no instances left")
        if code == errno.EEXIST:
            return BadInputError(f"an mdev with UUID {action.uuid} already exists")
        if code == errno.EINVAL:
            return BadInputError(f"the kernel refused UUID {action.uuid!r} (invalid argument)")
    elif code == errno.ENOENT:
        return DeviceNotFoundError(f"mdev {action.uuid} no longer exists")
    elif code == errno.EBUSY:
        return HostdevError(f"mdev {action.uuid} is busy: a VM still has it open")
    return HostdevError(f"{describe(action)} failed: {err.reason} ({err.path})")
