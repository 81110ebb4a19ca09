"""Declarative SR-IOV: `sriov: [{pf: enp4s0f1, numVfs: 7, bind: vfio-pci}]` in the serve config.

`reconcile_sriov(host, specs)` is pure: the actions that bring a host snapshot to the declared
counts and drivers (call it after every rescan: a driver reload resets a PF to 0 VFs).
`apply_sriov(fs, writer, specs)` runs them at serve start: counts first, a bounded wait for
the VFs (and, with autoprobe on, for the host drivers the kernel probes on them to settle, so
a bind never races a probe still under way), a rescan, then the binds, each checked by reading
the VF's driver back. One PF's failure never stops the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from hostdev.errors import ConfigError, HostdevError
from hostdev.host.fs import HostFS, link_name
from hostdev.host.model import Host, PciAddress, PciDevice
from hostdev.host.scan import scan_host
from hostdev.host.writer import HostWriter
from hostdev.sriov import (
    BindVf,
    InUse,
    Problem,
    SetAutoprobe,
    SetNumVfs,
    SriovAction,
    Waiter,
    execute,
    plan_bind,
    plan_numvfs,
    resolve_pf,
)


# -- declarative ------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SriovSpec:
    """One `sriov:` entry: a PF (interface or address), its VF count, optional VF driver."""

    pf: str
    num_vfs: int
    bind: str | None = None
    drivers_autoprobe: bool | None = None


_SPEC_KEYS = {"pf", "numVfs", "bind", "driversAutoprobe"}


def parse_sriov_specs(data: object, file: str = "config") -> list[SriovSpec]:
    """Validate a `sriov:` list; raise ConfigError naming the file and field."""
    if data is None:
        return []
    if not isinstance(data, list):
        raise ConfigError(file, "sriov", "must be a list of {pf, numVfs, bind} entries")
    specs = [_parse_spec(item, file, f"sriov[{i}]") for i, item in enumerate(data)]
    seen: set[str] = set()
    for i, spec in enumerate(specs):
        if spec.pf in seen:
            raise ConfigError(file, f"sriov[{i}].pf", f"PF {spec.pf!r} is listed twice")
        seen.add(spec.pf)
    return specs


def _parse_spec(item: object, file: str, where: str) -> SriovSpec:
    if not isinstance(item, Mapping):
        raise ConfigError(file, where, "must be a mapping with pf and numVfs")
    unknown = sorted(set(map(str, item)) - _SPEC_KEYS)
    if unknown:
        raise ConfigError(
            file, f"{where}.{unknown[0]}", f"unknown key; expected {', '.join(sorted(_SPEC_KEYS))}"
        )
    pf, count = item.get("pf"), item.get("numVfs")
    if not isinstance(pf, str) or not pf:
        raise ConfigError(file, f"{where}.pf", "must be an interface name or a PCI address")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ConfigError(file, f"{where}.numVfs", "must be a whole number, 0 or more")
    bind, autoprobe = item.get("bind"), item.get("driversAutoprobe")
    if bind is not None and (not isinstance(bind, str) or not bind):
        raise ConfigError(file, f"{where}.bind", "must be a driver name such as vfio-pci")
    if autoprobe is not None and not isinstance(autoprobe, bool):
        raise ConfigError(file, f"{where}.driversAutoprobe", "must be true or false")
    return SriovSpec(pf, count, bind, autoprobe)


def reconcile_sriov(
    host: Host, specs: Sequence[SriovSpec], in_use: InUse | None = None
) -> list[SriovAction]:
    """Actions that bring the host to the declared VF counts and drivers (pure).

    A PF whose count differs gets 0 then N (binds follow on the next call, once the VFs
    exist); a PF whose VFs are in use is never reset. Call it again after every rescan.
    """
    actions: list[SriovAction] = []
    declared: dict[PciAddress, str] = {}  # PF → the entry that names it first
    for spec in specs:
        actions.extend(_reconcile_one(host, spec, in_use, declared))
    return actions


def _reconcile_one(
    host: Host, spec: SriovSpec, in_use: InUse | None, declared: dict[PciAddress, str]
) -> list[SriovAction]:
    try:
        pf = resolve_pf(host, spec.pf)
    except HostdevError as err:
        return [Problem(spec.pf, str(err))]
    # An interface and an address can name one PF: acting on both would flip its count.
    if pf.address in declared:
        first = declared[pf.address]
        return [Problem(spec.pf, f"PF {pf.address} is already declared as {first!r}; ignored")]
    declared[pf.address] = spec.pf
    busy = _busy_problem(pf, spec, in_use)
    if busy is not None:
        return [busy]
    try:
        actions = plan_numvfs(pf, spec.num_vfs, autoprobe=spec.drivers_autoprobe)
    except HostdevError as err:
        return [Problem(spec.pf, str(err))]
    if spec.bind and not any(isinstance(a, SetNumVfs) for a in actions):
        actions.extend(plan_bind(host, pf.address, spec.bind))
    return actions


def _busy_problem(pf: PciDevice, spec: SriovSpec, in_use: InUse | None) -> Problem | None:
    """Why the PF's count must stay: a count change would remove VFs that pods hold."""
    sriov = pf.sriov
    assert sriov is not None  # resolve_pf returns PFs only
    if sriov.num_vfs == spec.num_vfs or not sriov.num_vfs or in_use is None:
        return None
    busy = [str(vf) for vf in sriov.vfs if in_use(vf)]
    if not busy:
        return None
    return Problem(
        spec.pf,
        f"VFs in use ({', '.join(busy)}); count left at {sriov.num_vfs} instead of {spec.num_vfs}",
    )


@dataclass
class SriovReport:
    """What apply_sriov did and what it could not do."""

    done: list[SriovAction] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def apply_sriov(
    fs: HostFS,
    writer: HostWriter,
    specs: Sequence[SriovSpec],
    *,
    in_use: InUse | None = None,
    waiter: Waiter | None = None,
) -> SriovReport:
    """Bring the host to the declared state (serve start, and after a PF was reset)."""
    report = SriovReport()
    waiter = waiter or Waiter()
    host = scan_host(fs)
    actions = reconcile_sriov(host, specs, in_use)
    for pf, pf_actions in _by_pf(actions).items():
        _run_pf(fs, writer, pf, pf_actions, report, _PfWait(waiter, host))
    if any(isinstance(a, SetNumVfs) for a in report.done):
        tried = {a.vf for a in actions if isinstance(a, BindVf)}  # a failed bind is not retried
        binds = [
            a
            for a in reconcile_sriov(scan_host(fs), specs, in_use)
            if isinstance(a, BindVf) and a.vf not in tried
        ]
        for pf, pf_actions in _by_pf(binds).items():
            _run_pf(fs, writer, pf, pf_actions, report, _PfWait(waiter, host))
    return report


@dataclass
class _PfWait:
    """The wait after a PF's VF count changes: for the drivers too while autoprobe is on."""

    waiter: Waiter
    host: Host  # the scan the actions were planned from
    autoprobe: bool | None = None  # as this run set it; None: as the scan found it

    def after(self, fs: HostFS, action: SriovAction) -> None:
        """Wait for what the kernel does after one action, or check what it did."""
        if isinstance(action, SetAutoprobe):
            self.autoprobe = action.enabled
        elif isinstance(action, SetNumVfs) and action.count:
            probes = self.autoprobe if self.autoprobe is not None else self._autoprobe(action.pf)
            self.waiter.wait(fs, action.pf, action.count, expect_drivers=probes)
        elif isinstance(action, BindVf):
            now = link_name(fs.sys("bus", "pci", "devices", str(action.vf), "driver"))
            if now != action.driver:
                raise HostdevError(
                    f"VF {action.vf} is on {now or 'no driver'} after the writes, "
                    f"not {action.driver}"
                )

    def _autoprobe(self, pf: PciAddress) -> bool:
        """Whether the kernel probes host drivers on the PF's new VFs (sriov_drivers_autoprobe)."""
        device = self.host.devices.get(pf)
        sriov = device.sriov if device is not None else None
        return sriov is None or sriov.drivers_autoprobe is not False


def _by_pf(actions: Iterable[SriovAction]) -> dict[str, list[SriovAction]]:
    grouped: dict[str, list[SriovAction]] = {}
    for action in actions:
        key = (
            action.pf
            if isinstance(action, Problem)
            else str(action.vf if isinstance(action, BindVf) else action.pf)
        )
        grouped.setdefault(key, []).append(action)
    return grouped


def _run_pf(
    fs: HostFS,
    writer: HostWriter,
    pf: str,
    actions: list[SriovAction],
    report: SriovReport,
    wait: _PfWait,
) -> None:
    """Run one PF's actions; the first failure stops that PF only."""
    for action in actions:
        if isinstance(action, Problem):
            report.problems.append(action)
            return
        try:
            execute(fs, writer, [action])
            wait.after(fs, action)
        except HostdevError as err:
            report.problems.append(Problem(pf, str(err)))
            return
        report.done.append(action)
