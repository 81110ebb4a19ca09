"""Provisioning at serve start: the VFs (`sriov:`) and mdevs (`mediatedDevicesConfiguration:`)
the config declares are created before devices are selected, so the first ListAndWatch
already lists them. Failures are logged and returned; serving goes on with what exists.

After a rescan the daemon calls `reapply_sriov(fs, writer, host, config)` (in a worker thread:
it may wait for VFs): a cheap pure check on the new snapshot, and the writes only when a PF's
count or its VFs' driver drifted (a PF driver reload drops its VFs).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from hostdev import mdev, sriov
from hostdev.allocated import allocated_ids
from hostdev.config.model import Config
from hostdev.errors import HostdevError
from hostdev.host.fs import HostFS
from hostdev.host.model import Host
from hostdev.host.writer import HostWriter
from hostdev.mdev_plan import apply_mdevs, desired_types
from hostdev.nodelabels import node_labels
from hostdev.sriov_apply import apply_sriov, reconcile_sriov

log = logging.getLogger(__name__)


@dataclass
class ProvisionReport:
    """What provisioning changed and what it could not do."""

    changes: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def provision(
    fs: HostFS,
    writer: HostWriter,
    config: Config,
    *,
    labels: Mapping[str, str] | None = None,
    in_use: frozenset[str] = frozenset(),
    waiter: sriov.Waiter | None = None,
) -> ProvisionReport:
    """Apply the config's sriov and mediated-device sections; never raises for one device."""
    report = ProvisionReport()
    if config.sriov:
        done = apply_sriov(
            fs, writer, config.sriov, in_use=lambda a: str(a) in in_use, waiter=waiter
        )
        report.changes += [f"sriov: {sriov.describe(a)}" for a in done.done]
        report.problems += [f"sriov: {p.pf}: {p.reason}" for p in done.problems]
    if config.mediated_devices is not None:
        wanted = desired_types(config.mediated_devices, labels or {})
        result = apply_mdevs(fs, writer, wanted, in_use.__contains__)
        report.changes += [f"mdev: {mdev.describe(a)}" for a in result.done]
        report.problems += [f"mdev: {p}" for p in result.problems]
        for note in result.notes:
            log.info("mdev: %s", note)
    for change in report.changes:
        log.info("%s", change)
    for problem in report.problems:
        log.warning("%s", problem)
    return report


def reapply_sriov(
    fs: HostFS,
    writer: HostWriter,
    host: Host,
    config: Config,
    *,
    in_use: frozenset[str] = frozenset(),
    waiter: sriov.Waiter | None = None,
) -> ProvisionReport | None:
    """After a rescan: re-create reset VFs and re-bind drifted ones; None when nothing to do."""
    held = frozenset(in_use)
    actions = reconcile_sriov(host, config.sriov, lambda a: str(a) in held)
    if not any(not isinstance(a, sriov.Problem) for a in actions):
        return None
    only_sriov = replace(config, mediated_devices=None)
    return provision(fs, writer, only_sriov, in_use=held, waiter=waiter)


def start_facts(
    config: Config, labels_file: str | None, pod_resources_socket: str, env: Mapping[str, str]
) -> tuple[dict[str, str], frozenset[str]]:
    """Node labels (only when node entries need them) and the IDs pods hold, best effort."""
    labels: dict[str, str] = {}
    mdevs = config.mediated_devices
    if mdevs is not None and mdevs.node_types:
        try:
            labels = node_labels(labels_file, env) or {}
        except HostdevError as err:
            log.warning("node labels unavailable (%s): nodeMediatedDeviceTypes ignored", err)
    in_use: frozenset[str] = frozenset()
    if (config.sriov or mdevs is not None) and os.path.exists(pod_resources_socket):
        try:
            in_use = allocated_ids(pod_resources_socket)
        except HostdevError as err:
            log.warning("%s: devices in use are not known; nothing in use is assumed", err)
    return labels, in_use
