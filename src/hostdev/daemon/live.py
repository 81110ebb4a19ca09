"""`LiveNode`: the serving node, kept in step with the host and the config file while it runs.

A `remove`/`unbind` uevent or a vanished /dev/vfio/<group> node marks the devices concerned
Unhealthy at once (the fast path). Every event (kernel uevents, inotify on /dev/vfio, the
backstop timer) also pokes a coalescer that runs
one rescan per burst: scan the host, read the health signals (AER counters, /dev/vfio nodes),
judge every served device (`hostdev.health`), then update the device table in one step so
ListAndWatch sends one message per change. Devices that vanish or leave vfio-pci stay listed
as Unhealthy. Config-file events (inotify on its directory, `..data` swaps included) poke a
second coalescer that reloads: a valid new config is applied without restarting servers of
resources it keeps; an invalid one is logged and the last good config stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from hostdev import metrics
from hostdev.config import load_config
from hostdev.config.model import Config, KubeVirtEntries
from hostdev.daemon.events import Coalescer, DirWatch, UeventListener, open_kernel_uevents
from hostdev.daemon.heap import release_free_heap
from hostdev.daemon.node import Node
from hostdev.errors import BadInputError, HostdevError
from hostdev.health import HealthView, Signals, aer_watch_list, assess, transitions
from hostdev.host.model import Host, PciAddress
from hostdev.host.signals import read_aer_fatal, vfio_group_nodes
from hostdev.host.uevent import Uevent
from hostdev.kubelet.state import ResourceChanges
from hostdev.selection import ServedDevice

log = logging.getLogger(__name__)
# Events that tell, without a rescan, that a served device can no longer be used.
_FAST_REASONS = {
    ("pci", "remove"): "removed from the bus",
    ("pci", "unbind"): "unbound (no driver)",
    ("mdev", "remove"): "mdev removed",
}
STUCK_AFTER_S = 60.0  # a rescan or reload running this long fails /healthz


@dataclass(frozen=True)
class LiveOptions:
    """How the node follows the host and its config."""

    rescan_interval: float | None = 60.0  # the backstop; None: no backstop
    debounce: float = 0.005  # bursts within this window make one rescan
    kernel_uevents: bool = True  # open the netlink socket (off: inotify and backstop only)
    uevent_socket: socket.socket | None = None  # an injected datagram socket (tests, benches)
    config_path: Path | None = None  # watched and reloaded when set
    kubevirt_entries: KubeVirtEntries | None = None
    metrics_address: str | None = None  # HOST:PORT for /metrics and /healthz


class LiveNode(Node):
    """A Node that rescans on host events, reloads its config, and exports metrics."""

    def __init__(self, *args: Any, live: LiveOptions | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.live = live or LiveOptions()
        self.health = HealthView()
        self.rescans = Coalescer(
            "rescan",
            self._rescan_for,
            debounce=self.live.debounce,
            backstop=self.live.rescan_interval,
        )
        self.reloads = Coalescer("config reload", self._reload_for, debounce=self.live.debounce)
        self.uevents: UeventListener | None = None
        self._dirs: DirWatch | None = None
        self._server: metrics.MetricsServer | None = None
        self._fresh_marks: dict[str, str] = {}  # fast-path marks since the last scan began
        self._left_vfio: set[PciAddress] = set()  # functions seen leaving VFIO since then
        self._collector = metrics.NodeCollector(lambda: self._table, self.podresources_reachable)

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen for metrics, serve, judge the first snapshot, then follow events."""
        if self.live.metrics_address:  # first: an address it cannot listen on stops nothing
            host, port = metrics.parse_address(self.live.metrics_address)
            self._server = metrics.MetricsServer(host, port, self.problem, [self._collector])
            await self._server.start()
        await super().start()
        self.table.keep_vanished = True
        self.table.update_host(self.table.host, self._judge_now(self.table.host))
        self._start_watchers()
        self.rescans.start()
        self.reloads.start()
        release_free_heap()

    async def stop(self) -> None:
        """Stop following events, then stop serving (sockets removed)."""
        if self._server is not None:
            await self._server.stop()
            self._server = None
        await self.rescans.stop()
        await self.reloads.stop()
        if self.uevents is not None:
            self.uevents.close()
            self.uevents = None
        if self._dirs is not None:
            self._dirs.close()
            self._dirs = None
        await super().stop()

    def refresh(self, reason: str) -> None:
        """Rescan the host, and reload the config file when there is one (on SIGHUP)."""
        self.rescans.poke(reason)
        if self.live.config_path is not None:
            self.reloads.poke(reason)

    @property
    def metrics_port(self) -> int | None:
        """The port /metrics listens on (after start), or None."""
        return self._server.port if self._server else None

    def podresources_reachable(self) -> bool | None:
        """Whether the PodResources reconciler reached the kubelet last time (None: no
        reconciler, or no attempt yet)."""
        reconciler = getattr(self, "reconciler", None)
        return None if reconciler is None else bool(reconciler.reachable)

    def problem(self) -> str | None:
        """None while the daemon is alive and following events (the /healthz answer)."""
        if self._table is None:
            return "not started"
        for loop in (self.rescans, self.reloads):
            if not loop.running:
                return f"the {loop.name} loop has stopped"
            if loop.stuck_for() > STUCK_AFTER_S:
                return f"a {loop.name} has been running for {loop.stuck_for():.0f} s"
        return None

    def _start_watchers(self) -> None:
        sock = self.live.uevent_socket
        if sock is None and self.live.kernel_uevents:
            sock = open_kernel_uevents()
        if sock is not None:
            self.uevents = UeventListener(sock, self._on_uevent, self._on_overflow)
            self.uevents.start()
        self._dirs = DirWatch(
            Path(self.fs.dev("vfio")),
            self.live.config_path,
            self._on_vfio_event,
            lambda: self.reloads.poke("config file changed"),
        )
        self._dirs.start()

    def _on_uevent(self, event: Uevent) -> None:
        log.debug("uevent %s", event.summary())
        reason = _FAST_REASONS.get((event.subsystem, event.action))
        if reason is not None:
            self._mark_now(lambda d: d.id == event.device, reason)
        if event.subsystem == "pci" and event.action in ("remove", "unbind"):
            with contextlib.suppress(BadInputError):  # a name the kernel never gives
                self._left_vfio.add(PciAddress.parse(event.device))
        self.rescans.poke(f"uevent {event.summary()}")

    def _on_vfio_event(self, path: str, gone: bool) -> None:
        name = path.rpartition("/")[2]
        if name.isdigit():
            self._on_group_node(int(name), gone)
        self.rescans.poke(f"inotify {path}")

    def _on_group_node(self, group: int, gone: bool) -> None:
        """A /dev/vfio/<group> node changed: deleted, its functions left VFIO; missing now,
        they are marked at once."""
        if gone:
            self._left_vfio.update(
                d.address for d in self._served() if d.iommu_group == group and not d.is_mdev
            )
        if not os.path.exists(self.fs.dev("vfio", str(group))):
            self._mark_now(lambda d: d.iommu_group == group, f"/dev/vfio/{group} vanished")

    def _served(self) -> Iterator[ServedDevice]:
        """Every device listed now, healthy or not."""
        for name in self.table.resource_names() if self._table is not None else ():
            snapshot = self.table.snapshot(name)
            yield from (view.device for view in snapshot.views) if snapshot else ()

    def _mark_now(self, match: Callable[[ServedDevice], bool], reason: str) -> None:
        """Fast path: mark matching served devices unhealthy before the rescan confirms it,
        so the kubelet hears within a millisecond instead of after a full sysfs walk."""
        if self._table is None:
            return
        for name in self.table.resource_names():
            snapshot = self.table.snapshot(name)
            for view in snapshot.views if snapshot else ():
                if view.healthy and match(view.device):
                    self._fresh_marks[view.device.id] = reason
                    self.table.set_health(view.device.id, reason)

    def _on_overflow(self) -> None:
        self.rescans.poke("overflow")

    # --- rescans --------------------------------------------------------------------------
    async def rescan(self) -> ResourceChanges:
        """Scan the host, judge every served device, publish once, follow resource changes.

        The sysfs reads run in a worker thread so events keep being handled meanwhile; a
        fast-path mark made during the scan outlives it (the snapshot may predate the change)
        until the next rescan, which its event has already asked for."""
        started = time.perf_counter()
        self._fresh_marks.clear()
        self._forget_aer_baselines()
        host, nodes = await asyncio.to_thread(self._read_host, self.held_ids())
        ids = self._served_ids(host)
        aer = await asyncio.to_thread(read_aer_fatal, self.fs, aer_watch_list(host, ids))
        health = self._judge(host, ids, Signals(aer, nodes))
        for device_id, reason in self._fresh_marks.items():
            health.setdefault(device_id, reason)
        changes = self.table.update_host(host, health)
        metrics.SCAN_SECONDS.set(time.perf_counter() - started)
        await self._apply(changes)
        release_free_heap()
        return changes

    async def _rescan_for(self, reasons: frozenset[str]) -> None:
        for trigger in {r.split(" ", 1)[0] for r in reasons}:
            metrics.RESCANS.labels(trigger).inc()
        before = self.health
        started = time.perf_counter()
        changes = await self.rescan()
        changed = transitions(before, self.health)
        level = logging.INFO if changed or changes.added or changes.removed else logging.DEBUG
        log.log(
            level,
            "rescan: %d device(s) changed health, %d resource(s) added, %d removed",
            len(changed),
            len(changes.added),
            len(changes.removed),
            extra={
                "event": "rescan",
                "reasons": sorted(reasons),
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            },
        )

    def _forget_aer_baselines(self) -> None:
        """Functions that left VFIO since the last scan began start a new AER baseline: the
        kernel keeps its counts across drivers, and a rescan that finds such a function back
        on vfio-pci has not seen it leave."""
        left, self._left_vfio = self._left_vfio, set()
        baselines = self.health.aer_baseline
        if left & baselines.keys():
            kept = {a: n for a, n in baselines.items() if a not in left}
            self.health = replace(self.health, aer_baseline=kept)

    def _served_ids(self, host: Host) -> set[str]:
        """IDs served now plus those the config would select on this snapshot."""
        ids: set[str] = set()
        for name in self.table.resource_names():
            snapshot = self.table.snapshot(name)
            ids.update(snapshot.by_id if snapshot else ())
        ids.update(d.id for r in self.table.selection(host) for d in r.devices)
        return ids

    def _read_host(self, held: frozenset[str]) -> tuple[Host, frozenset[int]]:
        """The blocking part of a rescan: declared host changes, the sysfs walk and the
        /dev/vfio listing."""
        return self.prepare_host(held), vfio_group_nodes(self.fs)

    def _judge_now(self, host: Host) -> dict[str, str]:
        """Judge a snapshot, reading the signals on the spot (at start, before any event)."""
        ids = self._served_ids(host)
        aer = read_aer_fatal(self.fs, aer_watch_list(host, ids))
        return self._judge(host, ids, Signals(aer, vfio_group_nodes(self.fs)))

    def _judge(self, host: Host, ids: set[str], signals: Signals) -> dict[str, str]:
        """Judge every served device on a snapshot; returns ID → reason for unhealthy ones."""
        view = assess(self.health, host, ids, signals)
        owners = self._owners()
        for change in transitions(self.health, view):
            state = "healthy" if change.after.healthy else "unhealthy"
            metrics.HEALTH_TRANSITIONS.labels(owners.get(change.device_id, ""), state).inc()
        self.health = view
        return {i: h.reason for i, h in view.states.items() if not h.healthy}

    def _owners(self) -> Mapping[str, str]:
        owners: dict[str, str] = {}
        for name in self.table.resource_names():
            snapshot = self.table.snapshot(name)
            owners.update(dict.fromkeys(snapshot.by_id if snapshot else (), name))
        return owners

    # --- config reloads -------------------------------------------------------------------
    async def _reload_for(self, reasons: frozenset[str]) -> None:
        path = self.live.config_path
        if path is None:
            return
        try:
            config = load_config(path, kubevirt_entries=self.live.kubevirt_entries)
        except HostdevError as err:
            metrics.CONFIG_RELOADS.labels("rejected").inc()
            log.error(
                "config rejected, keeping the last good one: %s",
                err,
                extra={"event": "config_rejected", "file": str(path)},
            )
            return
        if config == self.config:
            metrics.CONFIG_RELOADS.labels("unchanged").inc()
            log.debug("config file touched but unchanged")
            return
        await self.apply_config(config)

    async def apply_config(self, config: Config) -> ResourceChanges:
        """Switch to a validated config; re-register resources whose options changed."""
        old = {r.name: r.options for r in self.config.resources}
        changes = await self.reload(config)
        for spec in config.resources:
            registrar = self.registrars.get(spec.name)
            if spec.name in old and old[spec.name] != spec.options and registrar is not None:
                registrar.kubelet_started()  # options are read once per registration
        if config.sriov or any(r.options.bind == "onStart" for r in config.resources):
            self.rescans.poke("config applied")  # declared VFs and binds happen in a rescan
        metrics.CONFIG_RELOADS.labels("applied").inc()
        log.info(
            "config applied: resources added %s, removed %s",
            ", ".join(changes.added) or "none",
            ", ".join(changes.removed) or "none",
            extra={"event": "config_applied", "file": str(config.source)},
        )
        return changes
