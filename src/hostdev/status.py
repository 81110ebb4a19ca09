"""What `hostdev status` reports: per resource, each device with its state and holder.

Pure: built from a host snapshot, the config, the health signals read beside the scan and
what PodResources says pods hold. It needs no running daemon, so it judges health on the
snapshot alone (an AER rise needs history: the fatal count is shown instead). Devices a pod
still holds but that are no longer served (removed, unbound) are listed as unhealthy.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from hostdev.config.model import Config
from hostdev.health import HealthView, Signals, assess
from hostdev.host.model import Host, PciAddress
from hostdev.selection import Resource, select

if TYPE_CHECKING:
    from hostdev.kubelet.podlist import PodDevice

NOT_SERVED = "held by a pod but no longer served (removed or unbound)"


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One device of a resource as status shows it."""

    id: str
    state: str  # healthy | allocated | unhealthy
    reason: str
    holder: PodDevice | None
    numa_node: int | None
    iommu_group: int | None
    aer_fatal: int | None


@dataclass(frozen=True, slots=True)
class ResourceStatus:
    """A resource and its devices."""

    name: str
    kind: str
    devices: tuple[DeviceStatus, ...]

    def count(self, *states: str) -> int:
        """How many devices are in any of the given states."""
        return sum(d.state in states for d in self.devices)


@dataclass(frozen=True, slots=True)
class NodeStatus:
    """The whole report; pod_resources_error is set when PodResources could not be asked."""

    resources: tuple[ResourceStatus, ...]
    config_source: str | None
    pod_resources_error: str | None


def node_status(
    host: Host,
    config: Config,
    signals: Signals,
    held: Mapping[tuple[str, str], PodDevice] | None,
    pod_resources_error: str | None = None,
) -> NodeStatus:
    """Build the report (held is None when PodResources was unreachable)."""
    resources = select(host, config)
    ids = [d.id for r in resources for d in r.devices]
    view = assess(HealthView(), host, ids, signals)
    report = tuple(_resource_status(r, view, signals, held or {}) for r in resources)
    return NodeStatus(report, config.source, pod_resources_error)


def _resource_status(
    resource: Resource,
    view: HealthView,
    signals: Signals,
    held: Mapping[tuple[str, str], PodDevice],
) -> ResourceStatus:
    rows = []
    for device in resource.devices:
        health = view.of(device.id)
        holder = held.get((resource.name, device.id))
        state = "unhealthy" if not health.healthy else "allocated" if holder else "healthy"
        aer = signals.aer_fatal.get(device.address) if ":" in device.id else None
        rows.append(
            DeviceStatus(device.id, state, health.reason, holder, device.numa_node,
                         device.iommu_group, aer)
        )  # fmt: skip
    served = {d.id for d in resource.devices}
    for (name, device_id), holder in sorted(held.items()):
        if name == resource.name and device_id not in served:
            rows.append(DeviceStatus(device_id, "unhealthy", NOT_SERVED, holder, None, None, None))
    return ResourceStatus(resource.name, resource.kind, tuple(rows))


def status_document(status: NodeStatus) -> dict[str, Any]:
    """The JSON/YAML form."""
    return {
        "config": status.config_source or "(none: every vfio-pci device)",
        "podResources": {
            "reachable": status.pod_resources_error is None,
            "error": status.pod_resources_error,
        },
        "resources": [
            {
                "name": r.name,
                "kind": r.kind,
                "capacity": len(r.devices),
                "allocatable": r.count("healthy", "allocated"),
                "allocated": r.count("allocated"),
                "devices": [_device_document(d) for d in r.devices],
            }
            for r in status.resources
        ],
    }


def _device_document(device: DeviceStatus) -> dict[str, Any]:
    holder = device.holder
    return {
        "id": device.id,
        "state": device.state,
        "reason": device.reason or None,
        "pod": holder.pod_ref if holder else None,
        "container": holder.container if holder else None,
        "numaNode": device.numa_node,
        "iommuGroup": device.iommu_group,
        "aerFatal": device.aer_fatal,
    }


def aer_addresses(host: Host, config: Config) -> list[PciAddress]:
    """The PCI functions whose AER counters status reads (served PCI devices)."""
    return sorted({d.address for r in select(host, config) for d in r.devices if ":" in d.id})
