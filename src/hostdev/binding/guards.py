"""Guards: reasons not to take a device away from the host, read through HostFS only.

A device is refused (unless --force) when
- one of its network interfaces is up and has a route (/proc/net/route), a non-link-local
  IPv6 address (/proc/net/if_inet6) or an IPv4 address (an injectable probe; see below);
- one of its block devices or their partitions (sysfs ``block/`` or ``nvme/*/`` below the
  device) backs a mounted filesystem (/proc/1/mounts and /proc/self/mounts, else
  /proc/mounts), is active swap
  (/proc/swaps) or is held by LVM/device-mapper or md (``holders/``);
- it is the boot VGA device (boot_vga = 1) while a framebuffer (/sys/class/graphics/fb*) or a
  bound console (/sys/class/vtconsole/*/bind = 1) is active.
Bridges and host bridges (class 06xx) are always refused, --force or not, and so is an IOMMU
group member the scan could not read (a run never writes to it). With the IOMMU off (no
/sys/class/iommu entries and no IOMMU groups), binding needs --noiommu.

IPv4 addresses: /proc has no per-interface list, but every address with a prefix shorter than
/32 puts a connected route into /proc/net/route. For the rest the probe is injectable; the
default asks the kernel (SIOCGIFADDR) when the proc root is this process's own /proc (so the
interface names are those of our network namespace), and reports none for other roots.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from hostdev.host.fs import HostFS, list_dir, read_text, walk_dirs
from hostdev.host.model import Host, PciAddress, PciDevice

Ipv4Probe = Callable[[str], Sequence[str]]

NOIOMMU_EXPLANATION = (
    "the IOMMU is off (no /sys/class/iommu entries, no IOMMU groups): a device given to a VM "
    "or container without DMA isolation can read and write all host memory. Enable the IOMMU "
    "(intel_iommu=on or amd_iommu=on) or pass --noiommu to accept that risk (sets vfio's "
    "enable_unsafe_noiommu_mode)"
)
_DOWN_STATES = frozenset({"down", "notpresent", "lowerlayerdown"})
_LINK_LOCAL_SCOPE = "20"
_NVME_NAMESPACE = re.compile(r"^nvme\d+(c\d+)?n\d+$")
_SIOCGIFADDR = 0x8915
_WALK_DEPTH = 6
_WALK_SKIP = frozenset({"net", "power", "msi_irqs", "holders", "slaves", "queue", "mq"})


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a device may not be bound; `forceable` says whether --force overrides it."""

    address: PciAddress
    reason: str
    forceable: bool = True


@dataclass(frozen=True, slots=True)
class HostFacts:
    """Host-wide facts the guards need, read once per run."""

    route_ifaces: frozenset[str]
    inet6_ifaces: frozenset[str]
    mount_sources: frozenset[str]
    swaps: frozenset[str]
    console_active: bool


def iommu_enabled(fs: HostFS) -> bool:
    """Whether an IOMMU is active: /sys/class/iommu has entries or IOMMU groups exist."""
    return bool(list_dir(fs.sys("class", "iommu")) or list_dir(fs.sys("kernel", "iommu_groups")))


def read_facts(fs: HostFS) -> HostFacts:
    """Read routes, IPv6 addresses, mounts, swaps and console state once.

    Mounts are read from our own namespace and from init's (pid 1), since the daemon may run in
    a container whose mount namespace is not the host's; /proc/mounts is the last resort.
    """
    mounts = _texts(fs.proc("1", "mounts"), fs.proc("self", "mounts")) or _texts(fs.proc("mounts"))
    routes = _texts(fs.proc("net", "route"), fs.proc("1", "net", "route"))
    inet6 = _texts(fs.proc("net", "if_inet6"), fs.proc("1", "net", "if_inet6"))
    return HostFacts(
        route_ifaces=frozenset(i for t in routes for i in _column(t, 0, skip_header=True)),
        inet6_ifaces=frozenset(i for t in inet6 for i in _global_inet6(t)),
        mount_sources=frozenset(m for t in mounts for m in _column(t, 0)),
        swaps=frozenset(_column(read_text(fs.proc("swaps")), 0, skip_header=True)),
        console_active=_console_active(fs),
    )


def _texts(*paths: str) -> list[str]:
    """The contents of every readable file among paths."""
    return [text for text in map(read_text, paths) if text is not None]


def _column(text: str | None, index: int, *, skip_header: bool = False) -> list[str]:
    lines = (text or "").splitlines()[1 if skip_header else 0 :]
    return [fields[index] for fields in (line.split() for line in lines) if len(fields) > index]


def _global_inet6(text: str | None) -> list[str]:
    rows = (line.split() for line in (text or "").splitlines())
    return [r[5] for r in rows if len(r) >= 6 and r[3] != _LINK_LOCAL_SCOPE]


def _console_active(fs: HostFS) -> bool:
    if any(name.startswith("fb") for name in list_dir(fs.sys("class", "graphics"))):
        return True
    for name in list_dir(fs.sys("class", "vtconsole")):
        base = fs.sys("class", "vtconsole", name)
        if read_text(f"{base}/bind") == "1" and "dummy" not in (read_text(f"{base}/name") or ""):
            return True
    return False


def no_ipv4_probe(ifname: str) -> Sequence[str]:
    """A probe that knows no IPv4 addresses (fake hosts, foreign proc roots)."""
    return ()


def kernel_ipv4_probe(ifname: str) -> Sequence[str]:
    """The interface's primary IPv4 address from the kernel (SIOCGIFADDR), if it has one."""
    request = struct.pack("256s", ifname.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            reply = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)
        except OSError as err:
            if err.errno in (errno.EADDRNOTAVAIL, errno.ENODEV, errno.ENXIO):
                return ()
            raise
    return (socket.inet_ntoa(reply[20:24]),)


def default_ipv4_probe(fs: HostFS) -> Ipv4Probe:
    """The kernel probe when fs reads this process's own /proc, otherwise no probe."""
    return kernel_ipv4_probe if fs.proc_root == Path("/proc") else no_ipv4_probe


def check_device(
    fs: HostFS, device: PciDevice, facts: HostFacts, probe: Ipv4Probe
) -> list[Refusal]:
    """Every reason to refuse taking this device from the host."""
    address = device.address
    if device.is_bridge:
        kind = "a host bridge" if device.class_code.startswith("0600") else "a bridge"
        return [
            Refusal(
                address,
                f"{address} is {kind} (class {device.class_code}); bridges stay with the host",
                forceable=False,
            )
        ]
    reasons = _network_reasons(fs, device, facts, probe)
    reasons += _block_reasons(fs, address, facts)
    if facts.console_active and read_text(_device_path(fs, address, "boot_vga")) == "1":
        reasons.append("it is the boot VGA device and a framebuffer/console is active on it")
    return [Refusal(address, f"{address}: {reason}") for reason in reasons]


def check_all(
    fs: HostFS, host: Host, addresses: Sequence[PciAddress], probe: Ipv4Probe
) -> list[Refusal]:
    """Refusals for every device in addresses (facts are read once)."""
    facts = read_facts(fs)
    refusals: list[Refusal] = []
    for address in addresses:
        device = host.device(address)
        if device is None:
            refusals.append(unreadable(host, address))
        else:
            refusals += check_device(fs, device, facts, probe)
    return refusals


def unreadable(host: Host, address: PciAddress) -> Refusal:
    """An IOMMU group member the scan could not read: its driver, and so whether the group can
    be made viable, is unknown, and nothing is written to a device hostdev cannot read."""
    why = host.skip_reason(address) or "not readable"
    return Refusal(
        address,
        f"{address} is in the IOMMU group but cannot be read ({why}): the group cannot be made "
        "viable while it is unknown; fix or remove that function first",
        forceable=False,
    )


def _device_path(fs: HostFS, address: PciAddress, *parts: str) -> str:
    return fs.sys("bus", "pci", "devices", str(address), *parts)


def _network_reasons(
    fs: HostFS, device: PciDevice, facts: HostFacts, probe: Ipv4Probe
) -> list[str]:
    reasons = []
    for ifname in device.netdevs:
        state = read_text(_device_path(fs, device.address, "net", ifname, "operstate"))
        if state is None or state in _DOWN_STATES:
            continue
        uses = []
        if ifname in facts.route_ifaces:
            uses.append("a route")
        if ifname in facts.inet6_ifaces:
            uses.append("an IPv6 address")
        uses += [f"address {a}" for a in probe(ifname)]
        if uses:
            reasons.append(f"interface {ifname} is {state} with {' and '.join(uses)}")
    return reasons


def _block_reasons(fs: HostFS, address: PciAddress, facts: HostFacts) -> list[str]:
    reasons = []
    for name, path in _block_devices(fs, address):
        dev = f"/dev/{name}"
        if dev in facts.mount_sources:
            reasons.append(f"block device {name} backs a mounted filesystem")
        if dev in facts.swaps:
            reasons.append(f"block device {name} is active swap")
        holders = sorted(list_dir(os.path.join(path, "holders")))
        if holders:
            reasons.append(f"block device {name} is held by {', '.join(holders)} (LVM/md)")
    return reasons


def _block_devices(fs: HostFS, address: PciAddress) -> list[tuple[str, str]]:
    """(name, sysfs dir) of the device's disks and their partitions."""
    disks = []
    for path in walk_dirs(_device_path(fs, address), _WALK_DEPTH, _WALK_SKIP):
        name = os.path.basename(path)
        parent = os.path.basename(os.path.dirname(path))
        if parent == "block" or (_NVME_NAMESPACE.match(name) and "/nvme/" in path):
            disks.append((re.sub(r"c\d+n", "n", name), path))
    found = []
    for name, path in disks:
        found.append((name, path))
        found += [
            (p, os.path.join(path, p))
            for p in sorted(list_dir(path))
            if read_text(os.path.join(path, p, "partition")) is not None
        ]
    return found
