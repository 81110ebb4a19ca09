"""Helpers for the tests that run in the real-kernel guest: the CLI, lspci, sysfs and VFIO.

The parsers here are pure functions (tested on any machine by test_helpers.py); the rest talks
to the guest's real /sys and /dev and is only called from tests marked `guest`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import struct
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

SYS_PCI = Path("/sys/bus/pci")
IOMMU_GROUPS = Path("/sys/kernel/iommu_groups")
HOSTDEV = (sys.executable, "-m", "hostdev.cli.main")
# linux/vfio.h: _IO(';', 100 + n)
VFIO_GET_API_VERSION = 0x3B64
VFIO_CHECK_EXTENSION = 0x3B65
VFIO_SET_IOMMU = 0x3B66
VFIO_GROUP_GET_STATUS = 0x3B67
VFIO_GROUP_SET_CONTAINER = 0x3B68
VFIO_GROUP_GET_DEVICE_FD = 0x3B6A
VFIO_DEVICE_GET_INFO = 0x3B6B
VFIO_DEVICE_BIND_IOMMUFD = 0x3B76  # the cdev ioctls: 6.6+
VFIO_DEVICE_ATTACH_IOMMUFD_PT = 0x3B77
IOMMU_IOAS_ALLOC = 0x3B81  # linux/iommufd.h: _IO(';', 0x81)
VFIO_GROUP_FLAGS_VIABLE = 1
VFIO_TYPE1_IOMMU, VFIO_TYPE1V2_IOMMU = 1, 3
VFIO_DEVICE_FLAGS_PCI = 2

# The reference topology built by harness/run-in-guest (docs/realkernel.md).
SHARED_GROUP = 13
SHARED_BRIDGE = "0000:04:00.0"
E1000 = "0000:05:01.0"
RTL8139 = "0000:05:02.0"
NVME_PF = "0000:06:00.0"
E1000E = ("0000:01:00.0", "0000:02:00.0", "0000:03:00.0")
# Never touch these: the guest's root file system and its I/O share are on them.
PLUMBING = ("0000:00:01.0", "0000:00:02.0")

LSPCI_LINE = re.compile(
    r"^(?P<address>[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) .*?"
    r"\[(?P<class4>[0-9a-f]{4})\]: .*"
    r"\[(?P<vendor>[0-9a-f]{4}):(?P<device>[0-9a-f]{4})\]"
)


@dataclass(frozen=True)
class LspciDevice:
    """One device as `lspci -Dnnk` shows it."""

    address: str
    class4: str
    vendor: str
    device: str
    driver: str | None


def parse_lspci(text: str) -> dict[str, LspciDevice]:
    """Parse `lspci -Dnnk` output into devices keyed by full address."""
    found: dict[str, LspciDevice] = {}
    current: re.Match[str] | None = None
    driver: str | None = None
    for line in [*text.splitlines(), ""]:
        if line.startswith("\t"):
            key, _, value = line.strip().partition(": ")
            if key == "Kernel driver in use":
                driver = value.strip()
            continue
        if current is not None:
            found[current["address"]] = LspciDevice(
                current["address"], current["class4"], current["vendor"], current["device"], driver
            )
        current, driver = LSPCI_LINE.match(line), None
        if line and current is None:
            raise ValueError(f"unexpected lspci line: {line!r}")
    return found


def hex_id(value: object) -> str:
    """'0x8086', '8086' or 0x8086 as the lower-case hex digits lspci prints."""
    if isinstance(value, int):
        return f"{value:04x}"
    text = str(value).lower()
    return text[2:] if text.startswith("0x") else text


def parse_node_resources(text: str) -> dict[str, dict[str, int]]:
    """The last Capacity and Allocatable blocks of `kubectl describe node`-style output."""
    blocks: dict[str, dict[str, int]] = {}
    section: dict[str, int] | None = None
    for line in text.splitlines():
        header = line.strip().rstrip(":")
        if line.strip().endswith(":") and header in ("Capacity", "Allocatable"):
            section = blocks[header] = {}
        elif section is not None and re.match(r"^\s+\S+:\s+\d+\s*$", line):
            name, _, count = line.strip().partition(":")
            section[name] = int(count)
        else:
            section = None
    return blocks


# ----------------------------------------------------------------- the CLI


def hostdev(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `hostdev ARGS...` as a subprocess, as a user would."""
    return subprocess.run(
        [*HOSTDEV, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


def hostdev_json(*args: str) -> Any:
    """Run `hostdev ARGS... -o json` and decode its output (the exit status is not checked)."""
    result = hostdev(*args, "-o", "json")
    try:
        return json.loads(result.stdout)
    except json.JSONDecodeError as err:
        raise AssertionError(f"not JSON (rc={result.returncode}): {result.stderr}") from err


def subcommand_parsers() -> dict[str, argparse.ArgumentParser]:
    """The subcommands this checkout's CLI offers, with their parsers."""
    from hostdev.cli.main import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def subcommands() -> set[str]:
    """The names of the subcommands this checkout's CLI offers."""
    return set(subcommand_parsers())


def require(*names: str) -> None:
    """Skip the calling test unless every named subcommand exists yet."""
    missing = sorted(set(names) - subcommands())
    if missing:
        pytest.skip(f"hostdev {' / '.join(missing)} not available")


def require_flag(name: str, flag: str, feature: str) -> None:
    """Skip the calling test unless `hostdev NAME` accepts FLAG (the sign that FEATURE landed)."""
    parser = subcommand_parsers().get(name)
    if parser is None or flag not in parser._option_string_actions:
        pytest.skip(f"{feature} not available (hostdev {name} has no {flag})")


# ----------------------------------------------------------------- sysfs and VFIO


def driver_of(address: str) -> str | None:
    """The driver bound to a device, None when it has none."""
    link = SYS_PCI / "devices" / address / "driver"
    return os.path.basename(os.readlink(link)) if link.is_symlink() else None


def sysfs_groups() -> dict[str, int]:
    """Every device address mapped to its IOMMU group, read from /sys/kernel/iommu_groups."""
    return {
        member.name: int(group.name)
        for group in IOMMU_GROUPS.iterdir()
        for member in (group / "devices").iterdir()
    }


def group_viable(group: int) -> bool:
    """VFIO_GROUP_GET_STATUS on /dev/vfio/GROUP: is the group viable for a VM?"""
    fd = os.open(f"/dev/vfio/{group}", os.O_RDWR)
    try:
        status = bytearray(struct.pack("II", 8, 0))
        fcntl.ioctl(fd, VFIO_GROUP_GET_STATUS, status)
    finally:
        os.close(fd)
    _argsz, flags = struct.unpack("II", status)
    return bool(flags & VFIO_GROUP_FLAGS_VIABLE)


def vfio_cdevs(address: str) -> list[str]:
    """The device's iommufd char devices that /dev has, sorted: only kernels from 6.6 built
    with iommufd have them; others from 6.1 on list vfio-dev entries without a node."""
    listed = (SYS_PCI / "devices" / address / "vfio-dev").glob("vfio*")
    return sorted(p.name for p in listed if os.path.exists(f"/dev/vfio/devices/{p.name}"))


@dataclass(frozen=True)
class VfioDeviceInfo:
    """What VFIO_DEVICE_GET_INFO says of a device a VMM opened."""

    flags: int
    regions: int
    irqs: int


def vmm_open_devices(container_node: str, devices: list[tuple[str, str]]) -> list[VfioDeviceInfo]:
    """Do what a VMM (QEMU) does with the nodes and addresses a pod was given, for devices
    given as (group node, address): attach every group to one type1 container, get each
    device's fd by its address, ask for its info."""
    container = os.open(container_node, os.O_RDWR)
    groups = [os.open(group_node, os.O_RDWR) for group_node, _ in devices]
    try:
        assert fcntl.ioctl(container, VFIO_GET_API_VERSION) == 0
        v2 = fcntl.ioctl(container, VFIO_CHECK_EXTENSION, VFIO_TYPE1V2_IOMMU)
        for index, group in enumerate(groups):
            fcntl.ioctl(group, VFIO_GROUP_SET_CONTAINER, bytearray(struct.pack("i", container)))
            if index == 0:  # the IOMMU type is set once, after the first group is in
                iommu = VFIO_TYPE1V2_IOMMU if v2 else VFIO_TYPE1_IOMMU
                fcntl.ioctl(container, VFIO_SET_IOMMU, iommu)
        addresses = [address for _, address in devices]
        return [_device_info(group, a) for group, a in zip(groups, addresses, strict=True)]
    finally:
        for fd in (*groups, container):
            os.close(fd)


def vmm_open_cdev(iommu_node: str, cdev_node: str) -> VfioDeviceInfo:
    """Do what a VMM with an iommufd backend (QEMU's `-object iommufd`) does with a device's
    cdev, no group node involved: bind it to an iommufd, attach it to a new I/O address
    space, ask for its info."""
    iommufd = os.open(iommu_node, os.O_RDWR)
    try:
        device = os.open(cdev_node, os.O_RDWR)
        try:
            fcntl.ioctl(device, VFIO_DEVICE_BIND_IOMMUFD, struct.pack("IIiI", 16, 0, iommufd, 0))
            ioas = bytearray(struct.pack("III", 12, 0, 0))
            fcntl.ioctl(iommufd, IOMMU_IOAS_ALLOC, ioas)
            attach = struct.pack("III", 12, 0, struct.unpack("III", ioas)[2])
            fcntl.ioctl(device, VFIO_DEVICE_ATTACH_IOMMUFD_PT, attach)
            return _info_of(device)
        finally:
            os.close(device)
    finally:
        os.close(iommufd)


def _device_info(group: int, address: str) -> VfioDeviceInfo:
    device = fcntl.ioctl(group, VFIO_GROUP_GET_DEVICE_FD, bytearray(address.encode() + b"\0"))
    try:
        return _info_of(device)
    finally:
        os.close(device)


def _info_of(device: int) -> VfioDeviceInfo:
    info = bytearray(struct.pack("IIII", 16, 0, 0, 0))
    fcntl.ioctl(device, VFIO_DEVICE_GET_INFO, info)
    _argsz, flags, regions, irqs = struct.unpack("IIII", info)
    return VfioDeviceInfo(flags, regions, irqs)


def write_sysfs(path: Path, value: str) -> None:
    """One write to a sysfs attribute, as `echo value > path` does."""
    with open(path, "w") as attribute:
        attribute.write(value)


def bind_raw(address: str, driver: str) -> None:
    """Move a device to DRIVER with driver_override + unbind + drivers_probe (test set-up);
    the driver's module is loaded first when the kernel does not have the driver yet."""
    if not (SYS_PCI / "drivers" / driver).exists():
        subprocess.run(["modprobe", driver], check=True)
    write_sysfs(SYS_PCI / "devices" / address / "driver_override", driver)
    if driver_of(address) not in (None, driver):
        unbind_raw(address)
    write_sysfs(SYS_PCI / "drivers_probe", address)


def unbind_raw(address: str) -> None:
    """Leave a device without any driver."""
    # its driver may let go meanwhile (a new VF whose nvme probe fails): nothing to unbind
    with contextlib.suppress(FileNotFoundError):
        if driver_of(address) is not None:
            write_sysfs(SYS_PCI / "devices" / address / "driver" / "unbind", address)


def snapshot_drivers() -> dict[str, str | None]:
    """The driver of every PCI device now."""
    return {entry.name: driver_of(entry.name) for entry in (SYS_PCI / "devices").iterdir()}


def restore_drivers(saved: Mapping[str, str | None]) -> None:
    """Put the guest back as `saved` found it: devices, VFs and drivers (test tear-down)."""
    devices = SYS_PCI / "devices"
    if any(not (devices / address).exists() for address in saved):
        write_sysfs(SYS_PCI / "rescan", "1")
    for address in sorted(set(os.listdir(devices)) - set(saved)):
        pf = devices / address / "physfn"
        if pf.exists():  # a VF the test created: drop all VFs of its PF
            write_sysfs(pf / "sriov_numvfs", "0")
    for address, driver in saved.items():
        device = devices / address
        if address in PLUMBING or not device.exists():
            continue
        if (device / "driver_override").read_text().strip() != "(null)":
            write_sysfs(device / "driver_override", "\n")
        if driver_of(address) != driver:
            unbind_raw(address)
            if driver is not None:
                write_sysfs(SYS_PCI / "drivers_probe", address)


def wait_for(condition: Any, timeout: float, interval: float = 0.02) -> float | None:
    """Poll condition() until true; the seconds it took, or None on timeout."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if condition():
            return time.monotonic() - start
        time.sleep(interval)
    return None


# ----------------------------------------------------------------- figures


@contextmanager
def timed(name: str) -> Iterator[None]:
    """Record how long the block took as figure NAME (seconds)."""
    start = time.monotonic()
    yield
    record_figure(name, round(time.monotonic() - start, 3))


def record_figure(name: str, value: object) -> None:
    """Keep one measured figure; the harness copies them to the host (figures.json)."""
    print(f"figure: {name} = {value}")
    out = os.environ.get("HOSTDEV_REALKERNEL_OUT")
    if not out:
        return
    path = Path(out) / "figures.json"
    figures = json.loads(path.read_text()) if path.exists() else {}
    figures[name] = value
    path.write_text(json.dumps(figures, indent=2, sort_keys=True) + "\n")
