"""The daemon's use of binding: `bind: onStart` resources and `reset: true` before a container.

`hostdev serve` binds the devices that a `bind: onStart` resource selects (and that are not on
vfio-pci yet) when it starts and whenever a rescan finds new ones — never inside Allocate,
which must stay in-memory work. The pending devices are bound in one run; when that run is
refused or fails (and so changes nothing), each device gets its own run, so one refused device
(an interface in use, a mounted disk) does not keep the others back. A refused or failed
device is not retried until the daemon restarts, to keep the log quiet.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hostdev import metrics
from hostdev.config.model import Config
from hostdev.errors import HostdevError
from hostdev.host.fs import HostFS
from hostdev.host.model import Host, PciAddress, is_vfio_driver
from hostdev.host.writer import HostWriter, SysfsWriter
from hostdev.selection import resource_takes

if TYPE_CHECKING:  # the bind machinery (guards, plans, state file) loads on the first bind
    from hostdev.binding.execute import BindOptions, BindResult

log = logging.getLogger(__name__)


def devices_to_bind(host: Host, config: Config) -> list[PciAddress]:
    """Devices whose resource (the first that selects them) says bind: onStart, not yet bound."""
    if config.serves_all_vfio:
        return []
    wanted = []
    for device in host.sorted_devices():
        if device.is_bridge or is_vfio_driver(device.driver):
            continue
        spec = next((s for s in config.resources if resource_takes(s, device, host)), None)
        if spec is not None and spec.options.bind == "onStart":
            wanted.append(device.address)
    return wanted


@dataclass
class Binder:
    """Binds onStart devices and resets devices for the daemon, through one writer."""

    fs: HostFS
    writer: HostWriter = field(default_factory=SysfsWriter)
    options: BindOptions | None = None  # None: the safe defaults
    given_up: set[PciAddress] = field(default_factory=set)

    def pending(self, host: Host, config: Config) -> list[PciAddress]:
        """Devices to bind now (those given up on excluded)."""
        return [a for a in devices_to_bind(host, config) if a not in self.given_up]

    def bind_pending(self, host: Host, config: Config) -> list[BindResult]:
        """Bind every pending device: in one run (one scan, one state save) when nothing is
        refused, else one run per device so that the others still get bound; log each."""
        pending = self.pending(host, config)
        if not pending:
            return []
        together = self._bind(pending)
        if together is not None and together.ok:
            _log_result(together)
            return [together]
        results = []
        for address in pending:
            result = self._bind([address])
            if result is None or not result.ok:
                self.given_up.add(address)
            if result is not None:
                _log_result(result)
                results.append(result)
        return results

    def _bind(self, addresses: list[PciAddress]) -> BindResult | None:
        from hostdev.binding.execute import BindOptions, bind_devices

        try:
            return bind_devices(self.fs, self.writer, addresses, self.options or BindOptions())
        except HostdevError as err:
            metrics.BINDING_FAILURES.labels(operation="bind").inc()
            log.warning("bind onStart: %s: %s", ", ".join(map(str, addresses)), err)
            return None

    def reset(self, address: PciAddress) -> None:
        """Reset one function through sysfs `reset` (raises HostdevError)."""
        from hostdev.binding.execute import reset_device

        reset_device(self.fs, self.writer, address)


def _log_result(result: BindResult) -> None:
    for item in result.devices:
        joined = f" (IOMMU group companion of {item.companion_of})" if item.companion_of else ""
        if item.action in ("refused", "failed", "rolled-back", "rollback-failed", "skipped"):
            if item.action != "skipped":
                metrics.BINDING_FAILURES.labels(operation="bind").inc()
            log.warning(
                "bind onStart: %s %s: %s; not retried", item.address, item.action, item.reason
            )
        else:
            log.info(
                "bind onStart: %s %s -> %s: %s%s",
                item.address,
                item.from_driver or "-",
                item.to_driver or "-",
                item.action,
                joined,
            )
    for warning in result.warnings:
        log.warning("bind onStart: %s", warning)
