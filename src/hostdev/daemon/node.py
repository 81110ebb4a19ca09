"""`Node`: the asyncio daemon behind `hostdev serve`. It owns the device table, one plugin
server and registrar per resource, and the inotify watch on the plugin dir.

Extension points: `rescan()` (a new host snapshot), `reload(config)` (a new config), both of
which add and remove resources' servers as selection changes; `table` for health and in-use
updates; `policy` and `preferred` for allocation accounting and preferred-allocation choices;
`binder` for `bind: onStart` (devices bound before a snapshot is served, at start and on each
rescan, in a worker thread) and `reset: true` (PreStartContainer);
`reconciler` (PodResources) tells the table what the kubelet really holds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from hostdev import metrics
from hostdev.binding.onstart import Binder
from hostdev.config.model import Config
from hostdev.host.fs import HostFS
from hostdev.host.model import Host
from hostdev.host.scan import scan_host
from hostdev.kubelet.plugin import DevicePluginService, PluginServeError, PluginServer
from hostdev.kubelet.podresources import Reconciler
from hostdev.kubelet.preferred import PreferredPolicy
from hostdev.kubelet.registration import Backoff, KubeletWatch, Registrar
from hostdev.kubelet.state import AvailabilityPolicy, DeviceTable, ResourceChanges
from hostdev.userfiles import ensure_directory

log = logging.getLogger(__name__)


class Node:
    """Serves the selected devices of one host to the kubelet until stopped."""

    def __init__(
        self,
        fs: HostFS,
        config: Config,
        plugin_dir: Path,
        kubelet_socket: Path,
        *,
        policy: AvailabilityPolicy | None = None,
        preferred: PreferredPolicy | None = None,
        backoff: Backoff | None = None,
        scanner: Callable[[HostFS, Host | None], Host] = scan_host,
        binder: Binder | None = None,
        reconciler: Reconciler | None = None,
    ) -> None:
        self.fs = fs
        self.config = config
        self.plugin_dir = plugin_dir
        self.kubelet_socket = kubelet_socket
        self.policy = policy
        self.preferred = preferred
        self.backoff = backoff
        self.scanner = scanner
        self.binder = binder or Binder(fs)
        self.reconciler = reconciler
        self._published_generation = -1
        self.registrars: dict[str, Registrar] = {}
        self._table: DeviceTable | None = None
        self._watch = KubeletWatch(plugin_dir, kubelet_socket)
        self._registered: set[str] = set()
        self._all_registered = asyncio.Event()
        self._unserved: set[str] = set()  # selected resources whose server could not start

    @property
    def table(self) -> DeviceTable:
        """The device table (after start())."""
        if self._table is None:
            raise RuntimeError("Node.start() has not run")
        return self._table

    async def start(self) -> None:
        """Scan, select, serve each resource on its socket and register it."""
        ensure_directory(self.plugin_dir, "the device plugin directory")
        self._table = DeviceTable(self.config, await self._snapshot(), self.policy)
        if self.reconciler is not None:  # capacity right before the first registration
            self.reconciler.on_change = self._on_reconciled
            await self.reconciler.start()
        self._watch.start()
        names = self._table.resource_names()
        if not names:
            log.warning("no devices to serve (nothing selected on this host)")
            self._all_registered.set()
        for name in names:
            await self._add(name)
        log.info("serving %d resource(s) from %s", len(names), self.plugin_dir)

    async def stop(self) -> None:
        """Stop every server and remove our sockets."""
        self._watch.stop()
        if self._table is not None:
            self._table.close()
        if self.reconciler is not None:
            await self.reconciler.stop()
        for name in list(self.registrars):
            await self._remove(name, quiet=True)
        if self._table is not None:  # a start that failed early has nothing to report
            log.info("stopped; sockets removed from %s", self.plugin_dir)

    async def rescan(self) -> ResourceChanges:
        """Take a new host snapshot and follow its changes."""
        changes = self.table.update_host(await self._snapshot())
        await self._apply(changes)
        return changes

    async def _snapshot(self) -> Host:
        """A host snapshot taken after the declared host changes (worker thread)."""
        return await asyncio.to_thread(self.prepare_host, self.held_ids())

    def prepare_host(self, held: frozenset[str]) -> Host:
        """Blocking: scan; re-create declared VFs a driver reload reset and bind onStart
        devices that appeared, scanning again after either wrote anything. Unchanged devices
        are the served snapshot's objects (hostdev.host.scan)."""
        served = self._table.host if self._table is not None else None
        host = self.scanner(self.fs, served)
        if self.config.sriov and self._reapply_sriov(host, held):
            host = self.scanner(self.fs, host)
        if self.binder.pending(host, self.config):
            self.binder.bind_pending(host, self.config)
            host = self.scanner(self.fs, host)
        return host

    def _reapply_sriov(self, host: Host, held: frozenset[str]) -> bool:
        """Re-create declared VFs a driver reload reset; True when anything was written."""
        from hostdev.daemon.provision import reapply_sriov  # only configs with sriov: need it

        writer = self.binder.writer
        return reapply_sriov(self.fs, writer, host, self.config, in_use=held) is not None

    def held_ids(self) -> frozenset[str]:
        """Device IDs pods hold, as far as the allocation accounting knows (event loop only)."""
        ledger = getattr(self.policy, "ledger", None)
        return frozenset(ledger.holdings) if ledger is not None else frozenset()

    async def reload(self, config: Config) -> ResourceChanges:
        """Switch to a new (already validated) config."""
        self.config = config
        changes = self.table.update_config(config)
        await self._apply(changes)
        log.info("config reloaded: %d resource(s)", len(self.registrars))
        return changes

    async def wait_registered(self) -> None:
        """Return once every resource has registered at least once."""
        await self._all_registered.wait()

    async def _apply(self, changes: ResourceChanges) -> None:
        """Follow resource changes, and try again to serve resources whose server could not
        start before (a rescan or reload is their retry; the backstop bounds the wait)."""
        for name in changes.removed:
            self._unserved.discard(name)
            await self._remove(name)
        retries = self._unserved.intersection(self.table.resource_names()) - set(changes.added)
        for name in (*changes.added, *sorted(retries)):
            await self._try_add(name)

    async def _try_add(self, name: str) -> None:
        """Serve a resource; on failure log it (once per failing spell) and keep it to retry."""
        try:
            await self._add(name)
        except PluginServeError as err:  # the others are still served; a revert works
            level = logging.DEBUG if name in self._unserved else logging.ERROR
            self._unserved.add(name)
            log.log(level, "%s; the resource is not served, retried on each rescan", err)
            return
        if name in self._unserved:
            self._unserved.discard(name)
            log.info("%s: now served on %s", name, self.registrars[name].server.socket_path)

    async def _add(self, name: str) -> None:
        service = DevicePluginService(self.table, name, self.preferred, self.binder.reset)
        server = PluginServer(service, self.plugin_dir)
        try:
            self._check_endpoint_free(name, server.endpoint)
            await server.start()
        except PluginServeError:
            metrics.PLUGIN_SERVERS.labels(name, "failed").inc()
            raise
        metrics.PLUGIN_SERVERS.labels(name, "started").inc()
        registrar = Registrar(server, self.kubelet_socket, self.backoff, self._on_registered)
        self._watch.add(registrar)
        self.registrars[name] = registrar
        self._all_registered.clear()
        registrar.start()

    def _check_endpoint_free(self, name: str, endpoint: str) -> None:
        """Raise PluginServeError when a served resource's socket already has this name (two
        resource names whose digests coincide): starting would take that socket over."""
        for other, registrar in self.registrars.items():
            if registrar.server.endpoint == endpoint:
                raise PluginServeError(f"{name}: its socket {endpoint} is {other}'s already")

    async def _remove(self, name: str, *, quiet: bool = False) -> None:
        registrar = self.registrars.pop(name, None)
        if registrar is None:  # its server never started
            return
        self._watch.remove(registrar)
        await registrar.stop()
        await registrar.server.stop()
        self._registered.discard(name)
        if not quiet:
            log.info("%s: no longer served; socket removed", name)

    def _on_reconciled(self) -> None:
        assert self.reconciler is not None
        ledger = self.reconciler.ledger
        if ledger.generation != self._published_generation:  # else nothing to publish
            self._published_generation = ledger.generation
            self.table.set_in_use(ledger.holdings)

    def _on_registered(self, name: str) -> None:
        self._registered.add(name)
        if self._registered >= set(self.registrars):
            self._all_registered.set()
