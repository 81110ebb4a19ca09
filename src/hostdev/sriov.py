"""SR-IOV virtual functions: the PF view, sriov_numvfs plans (pure) and their execution.

Planning follows the kernel's rules: a non-zero VF count changes only through 0 (EBUSY
otherwise), never beyond `sriov_totalvfs` (ERANGE), and only while the PF has its driver
(ENOENT otherwise). Plans are lists of actions; every write goes through a `HostWriter`.
On a real kernel the VFs exist when the write returns but their drivers bind
asynchronously, so `Waiter` polls with a bounded wait. The declarative form
(`sriov: [{pf, numVfs, bind}]`) lives in `hostdev.sriov_apply`.
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from hostdev.errors import (
    BadInputError,
    DeviceNotFoundError,
    HostdevError,
    HostWriteError,
)
from hostdev.host.fs import HostFS, kernel_number, link_name, list_dir, read_text
from hostdev.host.model import Host, PciAddress, PciDevice
from hostdev.host.writer import HostWriter

_SHORT_ADDRESS = re.compile(r"^[0-9a-fA-F]{2}:[0-9a-fA-F]{2}\.[0-7]$")
_PF_DRIVER_HINTS = {"0108": "nvme", "0200": "igb, ixgbe, i40e, ice or mlx5_core"}
InUse = Callable[[PciAddress], bool]


# -- the view ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class VfInfo:
    """One VF of a PF as `hostdev sriov` shows it."""

    address: PciAddress
    index: int
    driver: str | None
    iommu_group: int | None


@dataclass(frozen=True, slots=True)
class PfInfo:
    """One SR-IOV physical function with its VFs."""

    address: PciAddress
    interface: str | None
    driver: str | None
    num_vfs: int
    total_vfs: int
    link: str | None  # net operstate ("up", "down", ...) or None without a netdev
    drivers_autoprobe: bool | None
    vfs: tuple[VfInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML form (keys are part of the CLI contract)."""
        return {
            "address": str(self.address),
            "interface": self.interface,
            "driver": self.driver,
            "num_vfs": self.num_vfs,
            "total_vfs": self.total_vfs,
            "link": self.link,
            "drivers_autoprobe": self.drivers_autoprobe,
            "vfs": [
                {
                    "address": str(v.address),
                    "index": v.index,
                    "driver": v.driver,
                    "iommu_group": v.iommu_group,
                }
                for v in self.vfs
            ],
        }


def link_state(fs: HostFS, interface: str) -> str | None:
    """The interface's operstate (up, down, unknown ...), or None when it cannot be read."""
    return read_text(fs.sys("class", "net", interface, "operstate"))


def pf_infos(host: Host, fs: HostFS) -> list[PfInfo]:
    """Every SR-IOV PF of the host, in address order, with its VFs."""
    result = []
    for dev in host.sorted_devices():
        if not dev.is_pf or dev.sriov is None:
            continue
        interface = dev.netdevs[0] if dev.netdevs else None
        vfs = []
        for index, vf_address in dev.sriov.indexed_vfs():
            vf = host.device(vf_address)
            vfs.append(
                VfInfo(vf_address, index, vf.driver if vf else None, vf.iommu_group if vf else None)
            )
        result.append(
            PfInfo(
                dev.address,
                interface,
                dev.driver,
                dev.sriov.num_vfs,
                dev.sriov.total_vfs,
                link_state(fs, interface) if interface else None,
                dev.sriov.drivers_autoprobe,
                tuple(vfs),
            )
        )
    return result


def resolve_pf(host: Host, name: str) -> PciDevice:
    """The PF named by an interface (enp4s0f1) or an address (0000:04:00.1 or 04:00.1)."""
    address = host.netdev_index.get(name)
    if address is None:
        text = f"0000:{name}" if _SHORT_ADDRESS.match(name) else name
        try:
            address = PciAddress.parse(text.lower())
        except BadInputError:
            raise DeviceNotFoundError(
                f"{name!r} is neither a network interface nor a PCI address on this host"
            ) from None
    dev = host.device(address)
    if dev is None:
        raise DeviceNotFoundError(f"no PCI device at {address}")
    if dev.is_vf:
        raise BadInputError(f"{name} ({address}) is a VF of {dev.physfn}; name its PF")
    if not dev.is_pf:
        raise BadInputError(f"{name} ({address}) is not an SR-IOV PF (no sriov_totalvfs)")
    return dev


def no_driver_message(address: PciAddress, class_code: str = "") -> str:
    """The plain explanation for a PF without a driver (the kernel answers ENOENT)."""
    hint = _PF_DRIVER_HINTS.get(class_code[:4], "nvme")
    return (
        f"PF {address} has no driver: bind it to its driver (e.g. {hint}) first; "
        "the kernel needs the PF driver to create VFs"
    )


# -- actions ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SetAutoprobe:
    """Write sriov_drivers_autoprobe: whether new VFs get a host driver on their own."""

    pf: PciAddress
    enabled: bool


@dataclass(frozen=True, slots=True)
class SetNumVfs:
    """Write sriov_numvfs."""

    pf: PciAddress
    count: int
    class_code: str = ""  # only to word the no-driver message


@dataclass(frozen=True, slots=True)
class BindVf:
    """Move a VF to a driver: driver_override, unbind from its current driver, probe."""

    vf: PciAddress
    driver: str
    current: str | None


@dataclass(frozen=True, slots=True)
class Problem:
    """A declared PF that cannot be brought to its desired state, with the reason."""

    pf: str
    reason: str


SriovAction = SetAutoprobe | SetNumVfs | BindVf | Problem


def action_writes(fs: HostFS, action: SriovAction) -> list[tuple[str, str]]:
    """The sysfs writes (path, value) that carry out one action."""
    match action:
        case SetAutoprobe(pf, enabled):
            return [
                (
                    fs.sys("bus", "pci", "devices", str(pf), "sriov_drivers_autoprobe"),
                    "1" if enabled else "0",
                )
            ]
        case SetNumVfs(pf, count):
            return [(fs.sys("bus", "pci", "devices", str(pf), "sriov_numvfs"), str(count))]
        case BindVf(vf, driver, current):
            device = fs.sys("bus", "pci", "devices", str(vf))
            writes = [(os.path.join(device, "driver_override"), driver)]
            if current is not None and current != driver:
                writes.append((os.path.join(device, "driver", "unbind"), str(vf)))
            writes.append((fs.sys("bus", "pci", "drivers_probe"), str(vf)))
            return writes
    return []


def describe(action: SriovAction) -> str:
    """One human line per action (dry runs, logs, progress)."""
    match action:
        case SetAutoprobe(pf, enabled):
            return f"{pf}: sriov_drivers_autoprobe = {int(enabled)}"
        case SetNumVfs(pf, count):
            return f"{pf}: sriov_numvfs = {count}"
        case BindVf(vf, driver, current):
            return f"{vf}: bind to {driver} (now {current or 'no driver'})"
        case Problem(pf, reason):
            return f"{pf}: not applied: {reason}"
    return repr(action)


# -- planning (pure) --------------------------------------------------------------------
def plan_numvfs(pf: PciDevice, count: int, *, autoprobe: bool | None = None) -> list[SriovAction]:
    """Actions that bring a PF to `count` VFs the way the kernel allows it."""
    sriov = pf.sriov
    if sriov is None:
        raise BadInputError(f"{pf.address} is not an SR-IOV PF")
    if count < 0:
        raise BadInputError(f"VF count must be 0 or more, not {count}")
    if count > sriov.total_vfs:
        raise BadInputError(
            f"PF {pf.address} supports at most {sriov.total_vfs} VFs "
            f"(sriov_totalvfs); {count} asked"
        )
    actions: list[SriovAction] = []
    if autoprobe is not None and autoprobe != sriov.drivers_autoprobe:
        actions.append(SetAutoprobe(pf.address, autoprobe))
    if count == sriov.num_vfs:
        return actions
    if pf.driver is None:
        raise HostdevError(no_driver_message(pf.address, pf.class_code))
    if sriov.num_vfs and count:
        actions.append(SetNumVfs(pf.address, 0, pf.class_code))
    actions.append(SetNumVfs(pf.address, count, pf.class_code))
    return actions


def plan_bind(host: Host, pf: PciAddress, driver: str) -> list[SriovAction]:
    """BindVf actions for every VF of the PF not yet on `driver`."""
    dev = host.device(pf)
    actions: list[SriovAction] = []
    for vf_address in dev.sriov.vfs if dev and dev.sriov else ():
        vf = host.device(vf_address)
        if vf is not None and vf.driver != driver:
            actions.append(BindVf(vf_address, driver, vf.driver))
    return actions


# -- execution --------------------------------------------------------------------------
def execute(fs: HostFS, writer: HostWriter, actions: Iterable[SriovAction]) -> None:
    """Carry out actions in order; a refused write becomes a HostdevError saying why."""
    for action in actions:
        if isinstance(action, Problem):
            raise HostdevError(f"{action.pf}: {action.reason}")
        for path, value in action_writes(fs, action):
            try:
                writer.write(path, value)
            except HostWriteError as err:
                raise explain_write_error(action, err) from err


def explain_write_error(action: SriovAction, err: HostWriteError) -> HostdevError:
    """Turn the kernel's errno for an SR-IOV write into a sentence a user can act on."""
    if isinstance(action, SetNumVfs):
        if err.errno == errno.ENOENT and not os.path.exists(err.path):
            return HostdevError(f"PF {action.pf} has left the host ({err.path} is gone)")
        if err.errno == errno.ENOENT:
            return HostdevError(no_driver_message(action.pf, action.class_code))
        if err.errno == errno.EBUSY:
            return HostdevError(
                f"PF {action.pf} refused sriov_numvfs={action.count}: device or resource "
                "busy (a non-zero count changes only through 0; VFs may still be in use)"
            )
        if err.errno == errno.ERANGE:
            return BadInputError(
                f"PF {action.pf} refused {action.count} VFs: more than sriov_totalvfs"
            )
    if isinstance(action, BindVf):
        return HostdevError(
            f"binding VF {action.vf} to {action.driver} failed: {err.reason} ({err.path})"
        )
    return HostdevError(str(err))


@dataclass(frozen=True, slots=True)
class VfProgress:
    """How far VF creation has come: VFs present and VFs with a driver, of those wanted."""

    present: int
    bound: int
    wanted: int


def read_vfs(fs: HostFS, pf: PciAddress) -> list[tuple[str, str | None]]:
    """(VF address, driver) of a PF read straight from its virtfnN links (cheap, for polls)."""
    pf_dir = fs.sys("bus", "pci", "devices", str(pf))
    indexed = ((kernel_number(n[6:]), n) for n in list_dir(pf_dir) if n.startswith("virtfn"))
    links = sorted((index, name) for index, name in indexed if index is not None)
    result = []
    for _, name in links:
        vf = link_name(os.path.join(pf_dir, name))
        if vf is not None:
            result.append((vf, link_name(fs.sys("bus", "pci", "devices", vf, "driver"))))
    return result


@dataclass
class Waiter:
    """Polls until a PF shows the wanted VFs and their drivers settle, within a deadline."""

    timeout: float = 30.0
    settle: float = 1.0  # drivers count as settled after this long without a change
    poll: float = 0.05
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep

    def wait(
        self,
        fs: HostFS,
        pf: PciAddress,
        wanted: int,
        *,
        expect_drivers: bool,
        on_progress: Callable[[VfProgress], None] | None = None,
    ) -> VfProgress:
        """Return the final progress; raise HostdevError when the deadline passes first."""
        start = last_change = self.clock()
        last: VfProgress | None = None
        while True:
            vfs = read_vfs(fs, pf)
            now = self.clock()
            progress = VfProgress(len(vfs), sum(1 for _, d in vfs if d), wanted)
            if progress != last:
                last, last_change = progress, now
                if on_progress is not None:
                    on_progress(progress)
            # Drivers settle only after a quiet spell, even once all are bound: a probe that
            # fails gives the VF up again (the guest's NVMe VFs: about 0.5 s after binding).
            if progress.present == wanted and (
                not expect_drivers or now - last_change >= self.settle
            ):
                return progress
            if now - start >= self.timeout:
                raise HostdevError(
                    f"timed out after {self.timeout:g}s waiting for the VFs of {pf}: "
                    f"{progress.present}/{wanted} present, {progress.bound} with a driver"
                )
            self.sleep(self.poll)
