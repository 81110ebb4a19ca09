"""The device table: the one place that knows, per resource, which devices exist, which are
healthy and which may be handed out; it publishes snapshots to ListAndWatch streams.

Entry points (all called on the event loop, never from threads):
- `update_host(host)` after a rescan, `update_config(config)` after a reload: re-select and
  publish; they return which resources appeared or disappeared so the daemon can start or
  stop their servers.
- `set_health(id, reason)` / `clear_health(id)`: health pushed by watchers (None reason: healthy).
- `set_in_use(ids)`: what the kubelet really holds (from PodResources).
- `claim(resource, ids)`: Allocate's check; raises AllocationError, never half-succeeds; the
  policy sees the whole call and may refuse it (IOMMU group or PF/VF conflicts).
An `AvailabilityPolicy` decides which devices are blocked by what is in use (IOMMU group
siblings, PF/VF relatives); the default blocks nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from hostdev.config.model import Config
from hostdev.health import retain_vanished
from hostdev.host.model import Host
from hostdev.selection import Resource, ServedDevice, select

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeviceView:
    """A served device and, when it may not be handed out, why."""

    device: ServedDevice
    problem: str | None = None

    @property
    def healthy(self) -> bool:
        """True when the kubelet may allocate the device."""
        return self.problem is None


@dataclass(frozen=True, slots=True)
class ResourceSnapshot:
    """What ListAndWatch sends for one resource: every device with its health."""

    resource: Resource
    views: tuple[DeviceView, ...]
    version: int = 0
    by_id: Mapping[str, DeviceView] = field(default_factory=dict, compare=False, repr=False)

    @property
    def name(self) -> str:
        """The resource name."""
        return self.resource.name


@dataclass(frozen=True, slots=True)
class ResourceChanges:
    """Resources that appeared or disappeared after an update."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


class AllocationError(Exception):
    """Allocate cannot be honoured; `code` is "invalid" (unknown IDs) or "unusable"."""

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message)


class AvailabilityPolicy(Protocol):
    """Decides which devices are blocked by what is in use."""

    def blocked(
        self, host: Host, resources: Sequence[Resource], in_use: frozenset[str]
    ) -> Mapping[str, str]:
        """Device ID → reason, for devices that must not be handed out now."""
        ...

    def claim(self, resource: Resource, requests: Sequence[Sequence[str]]) -> None:
        """Record an Allocate call (one ID list per container) or raise AllocationError."""
        ...


class NoAccounting:
    """The default policy: nothing is blocked, claims are not tracked."""

    def blocked(
        self, host: Host, resources: Sequence[Resource], in_use: frozenset[str]
    ) -> Mapping[str, str]:
        """Nothing is blocked."""
        return {}

    def claim(self, resource: Resource, requests: Sequence[Sequence[str]]) -> None:
        """Nothing to record, nothing refused."""


def intrinsic_problem(device: ServedDevice, host: Host) -> str | None:
    """Why the device itself cannot be used (no group, no /dev/vfio node), or None."""
    if device.iommu_group is None:
        return "no IOMMU group"
    group = host.groups.get(device.iommu_group)
    if group is None and device.is_mdev:
        return None  # the scan lists PCI groups only; an mdev's group is its own
    if group is None or not group.vfio_node:
        return f"/dev/vfio/{device.iommu_group} is missing"
    return None


def _same_or_new(old: Resource | None, new: Resource) -> Resource:
    """The old object when the new selection equals it, else the new one."""
    return old if old is not None and old == new else new


class DeviceTable:
    """Per-resource device state; publishes a new snapshot on every change."""

    def __init__(
        self, config: Config, host: Host, policy: AvailabilityPolicy | None = None
    ) -> None:
        self.config = config
        self.host = host
        self.policy: AvailabilityPolicy = policy or NoAccounting()
        self._publish_scheduled = False
        self._health: dict[str, str] = {}
        # Set by the live daemon: keep devices that left the selection while unhealthy, so
        # ListAndWatch shows them Unhealthy instead of silently shrinking capacity.
        self.keep_vanished = False
        self._in_use: frozenset[str] = frozenset()
        self._resources: dict[str, Resource] = {}
        self._snapshots: dict[str, ResourceSnapshot] = {}
        self._changed: dict[str, asyncio.Event] = {}
        self._version = 0
        self._closed = False
        self._intrinsic: dict[str, str] = {}  # per host snapshot: ID → why it is unusable
        self._inputs: tuple[int, int] = (0, 0)  # (selection generation, health version)
        self._last_inputs: tuple[tuple[int, int], dict[str, str]] | None = None
        self._selection: tuple[Host, Config, tuple[Resource, ...]] | None = None
        self._reselect()

    # --- reading -------------------------------------------------------------------------
    def resource_names(self) -> tuple[str, ...]:
        """Names of the resources served now, in config order."""
        return tuple(self._resources)

    def snapshot(self, name: str) -> ResourceSnapshot | None:
        """The latest snapshot of a resource, or None when it is not served."""
        return self._snapshots.get(name)

    async def watch(self, name: str) -> AsyncIterator[ResourceSnapshot]:
        """Yield the current snapshot, then each new one; ends when the resource goes away."""
        while not self._closed:
            snapshot = self._snapshots.get(name)
            changed = self._changed.get(name)
            if snapshot is None or changed is None:
                return
            yield snapshot
            await changed.wait()

    # --- entry points --------------------------------------------------------------------
    def update_host(self, host: Host, health: Mapping[str, str] | None = None) -> ResourceChanges:
        """A new host snapshot (rescan), with the health judged on it (device ID → reason for
        the unhealthy ones): re-select and publish what changed, once."""
        self.host = host
        if health is not None:
            self._health = dict(health)
        return self._reselect()

    def update_config(self, config: Config) -> ResourceChanges:
        """A new config (reload): re-select and publish what changed."""
        self.config = config
        return self._reselect()

    def set_health(self, device_id: str, reason: str | None) -> None:
        """Mark a device unhealthy with a reason (None: healthy again) and publish."""
        if reason is None:
            self._health.pop(device_id, None)
        else:
            self._health[device_id] = reason
        self._inputs = (self._inputs[0], self._inputs[1] + 1)
        self._publish_all()

    def set_in_use(self, ids: Iterable[str]) -> None:
        """Record what the kubelet holds (from PodResources) and publish."""
        self._in_use = frozenset(ids)
        self._publish_all()

    def selection(self, host: Host) -> tuple[Resource, ...]:
        """What the config selects on this snapshot, worked out once per snapshot and config
        (a rescan of an unchanged host hands back the served snapshot itself); resources
        equal to the served ones are the served objects."""
        cached = self._selection
        if cached is not None and cached[0] is host and cached[1] is self.config:
            return cached[2]
        selected = tuple(
            _same_or_new(self._resources.get(r.name), r) for r in select(host, self.config)
        )
        self._selection = (host, self.config, selected)
        return selected

    @property
    def in_use(self) -> frozenset[str]:
        """The IDs last reported in use."""
        return self._in_use

    def claim(
        self, name: str, requests: Sequence[Sequence[str]]
    ) -> tuple[tuple[ServedDevice, ...], ...]:
        """Check every container request of one Allocate call, then claim them all together.

        Raises AllocationError (after publishing the current list) when any ID is unknown or
        unusable, so a call never half-succeeds."""
        snapshot = self._snapshots.get(name)
        if snapshot is None:
            raise AllocationError("unusable", f"resource {name} is no longer served")
        ids = [i for request in requests for i in request]
        unknown = [i for i in ids if i not in snapshot.by_id]
        if unknown:
            self.republish(name)
            raise AllocationError("invalid", f"{name}: unknown device ID(s) {', '.join(unknown)}")
        bad = [(i, snapshot.by_id[i].problem) for i in ids if not snapshot.by_id[i].healthy]
        if bad:
            self.republish(name)
            text = "; ".join(f"{i}: {why}" for i, why in bad)
            raise AllocationError("unusable", f"{name}: device(s) not usable: {text}")
        try:
            self.policy.claim(snapshot.resource, requests)
        except AllocationError:
            self.republish(name)
            raise
        self._publish_soon()  # what the claim blocked (group siblings, PF/VF) turns Unhealthy
        return tuple(tuple(snapshot.by_id[i].device for i in request) for request in requests)

    def close(self) -> None:
        """End every ListAndWatch stream (shutdown), so servers stop without cancelling them."""
        self._closed = True
        for event in self._changed.values():
            event.set()

    def republish(self, name: str) -> None:
        """Send the current list again (after a refused Allocate) with the latest health."""
        self._publish_all(force={name})

    # --- internals -----------------------------------------------------------------------
    def _reselect(self) -> ResourceChanges:
        before = set(self._resources)
        selected: Sequence[Resource] = self.selection(self.host)
        if self.keep_vanished:
            selected = retain_vanished(self._resources, selected, self._health)
        # An unchanged resource keeps its object: snapshots and the accounting's inventory
        # stay valid (no rebuild), and one copy of its devices lives, not two.
        self._resources = {r.name: _same_or_new(self._resources.get(r.name), r) for r in selected}
        self._intrinsic = {
            d.id: problem
            for r in self._resources.values()
            for d in r.devices
            if (problem := intrinsic_problem(d, self.host)) is not None
        }
        self._inputs = (self._inputs[0] + 1, self._inputs[1])
        removed = tuple(n for n in before if n not in self._resources)
        for name in removed:
            self._snapshots.pop(name, None)
            self._changed.pop(name).set()  # ends the streams of a resource that went away
        self._publish_all()
        added = tuple(n for n in self._resources if n not in before)
        return ResourceChanges(added, removed)

    def _publish_soon(self) -> None:
        """Publish once the current callback is done (Allocate answers first); merges repeats."""
        if self._publish_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._publish_all()
            return
        self._publish_scheduled = True
        loop.call_soon(self._deferred_publish)

    def _deferred_publish(self) -> None:
        self._publish_scheduled = False
        self._publish_all()

    def _publish_all(self, force: set[str] | None = None) -> None:
        resources = tuple(self._resources.values())
        blocked = dict(self.policy.blocked(self.host, resources, self._in_use))
        # Allocate calls this after every claim: skip the O(devices) pass when nothing changed.
        if not force and self._last_inputs == (self._inputs, blocked):
            return
        self._last_inputs = (self._inputs, blocked)
        for resource in resources:
            self._publish(resource, blocked, bool(force and resource.name in force))

    def _publish(self, resource: Resource, blocked: Mapping[str, str], force: bool) -> None:
        health, intrinsic = self._health, self._intrinsic
        problems = [
            health.get(d.id) or intrinsic.get(d.id) or blocked.get(d.id) for d in resource.devices
        ]
        old = self._snapshots.get(resource.name)
        unchanged = old is not None and not force and old.resource is resource
        if unchanged and all(p == v.problem for p, v in zip(problems, old.views, strict=True)):  # type: ignore[union-attr]
            return
        views = tuple(DeviceView(d, p) for d, p in zip(resource.devices, problems, strict=True))
        if old is not None and not force and old.views == views:
            if old.resource is not resource:  # options or kind changed, the list did not
                self._store(resource, views, old.version)
            return
        self._version += 1
        self._store(resource, views, self._version)
        self._log_changes(old, views, resource.name)
        event = self._changed.get(resource.name)
        self._changed[resource.name] = asyncio.Event()
        if event is not None:
            event.set()

    def _store(self, resource: Resource, views: tuple[DeviceView, ...], version: int) -> None:
        """Serve a snapshot from now on; streams hear of it only through the changed event,
        so a new Resource with an unchanged list (new options) sends no ListAndWatch message."""
        by_id = {v.device.id: v for v in views}
        self._snapshots[resource.name] = ResourceSnapshot(resource, views, version, by_id)

    @staticmethod
    def _log_changes(
        old: ResourceSnapshot | None, views: tuple[DeviceView, ...], name: str
    ) -> None:
        if old is None:
            healthy = sum(v.healthy for v in views)
            log.info("resource %s: %d device(s), %d healthy", name, len(views), healthy)
            for view in (v for v in views if not v.healthy):  # e.g. group not viable: why
                log.info(
                    "resource %s: device %s is unhealthy (%s)", name, view.device.id, view.problem
                )
            return
        for view in views:
            before = old.by_id.get(view.device.id)
            if before is None:
                log.info("resource %s: device %s added", name, view.device.id)
            elif before.problem != view.problem:
                state = "healthy" if view.healthy else f"unhealthy ({view.problem})"
                log.info("resource %s: device %s is %s", name, view.device.id, state)
        ids = {v.device.id for v in views}
        for gone in (i for i in old.by_id if i not in ids):
            log.info("resource %s: device %s removed", name, gone)
