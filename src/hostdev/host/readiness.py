"""Passthrough readiness of one device: can it be handed to a VM through VFIO right now?

Pure: a function of a Host snapshot. Used by `hostdev list` and `hostdev doctor`.
"""

from __future__ import annotations

from dataclasses import dataclass

from hostdev.host.model import Host, PciDevice, is_vfio_driver

READY = "ready"
BRIDGE = "bridge"
NO_GROUP = "no-iommu-group"
NOT_VIABLE = "group-not-viable"
NEEDS_BIND = "needs-bind"
NO_NODE = "no-vfio-node"
MDEV_PARENT = "mdev-parent"


@dataclass(frozen=True, slots=True)
class Readiness:
    """A readiness state and the sentence that explains it."""

    state: str
    reason: str


def readiness(host: Host, dev: PciDevice) -> Readiness:
    """Classify a device for passthrough, with the reason and, where useful, the fix."""
    addr = str(dev.address)
    if dev.is_bridge:
        return Readiness(BRIDGE, "bridges are never passed through")
    if dev.iommu_group is None:
        return Readiness(NO_GROUP, "no IOMMU group: enable the IOMMU (see `hostdev doctor`)")
    if not is_vfio_driver(dev.driver):
        if dev.mdev_types:
            return Readiness(
                MDEV_PARENT,
                f"offers {len(dev.mdev_types)} mdev types on {dev.driver or 'no driver'}",
            )
        on = f"on {dev.driver}" if dev.driver else "has no driver"
        return Readiness(NEEDS_BIND, f"{on}: run `hostdev bind {addr}`")
    viability = host.group_viability(dev.iommu_group)
    if not viability.viable:
        blockers = ", ".join(f"{a} on {d}" for a, d in viability.blockers)
        return Readiness(NOT_VIABLE, f"group {dev.iommu_group} not viable: {blockers}")
    group = host.groups.get(dev.iommu_group)
    if group is not None and not group.vfio_node:
        return Readiness(NO_NODE, f"/dev/vfio/{dev.iommu_group} is missing")
    return Readiness(READY, f"on {dev.driver}, group {dev.iommu_group} viable")
