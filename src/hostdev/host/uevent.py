"""Kernel uevents: the netlink socket (NETLINK_KOBJECT_UEVENT) and a pure message parser.

The kernel multicasts one datagram per device event to group 1:
``ACTION@DEVPATH\\0KEY=VALUE\\0KEY=VALUE\\0...`` (udev re-broadcasts its own, differently
framed "libudev" messages on group 2, which we never join). Only the events that can change
what hostdev serves are kept: PCI add/remove/bind/unbind/change (a change carries AER
recovery, ``ERROR_EVENT=...``) and mdev add/remove/change. The socket lives in the host's
network namespace, so a containerised daemon needs ``hostNetwork``; where netlink is not
available (gVisor, a missing capability) callers fall back to inotify and the backstop rescan.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from hostdev.host.fs import kernel_number

NETLINK_KOBJECT_UEVENT = 15
KERNEL_GROUP = 1
RECEIVE_BUFFER = 1 << 20  # bursts (VF creation) produce hundreds of messages at once
MAX_MESSAGE = 8192  # the kernel caps one uevent at UEVENT_BUFFER_SIZE (2048) plus the header

SUBSYSTEMS = frozenset({"pci", "mdev"})
ACTIONS = frozenset({"add", "remove", "bind", "unbind", "change"})


@dataclass(frozen=True, slots=True)
class Uevent:
    """One kernel uevent: the action, the sysfs device path and its KEY=VALUE fields."""

    action: str
    devpath: str
    fields: dict[str, str] = field(default_factory=dict)

    @property
    def subsystem(self) -> str:
        """The kernel subsystem ("pci", "mdev", ...), empty when the message has none."""
        return self.fields.get("SUBSYSTEM", "")

    @property
    def device(self) -> str:
        """The device name: PCI_SLOT_NAME for PCI, else the last DEVPATH component."""
        return self.fields.get("PCI_SLOT_NAME") or self.devpath.rstrip("/").rpartition("/")[2]

    @property
    def seqnum(self) -> int | None:
        """The kernel's sequence number, or None when absent or garbage."""
        text = self.fields.get("SEQNUM", "")
        return kernel_number(text)

    def summary(self) -> str:
        """A short human form: "unbind pci 0000:65:00.0"."""
        return f"{self.action} {self.subsystem or '?'} {self.device}"


def parse_uevent(data: bytes) -> Uevent | None:
    """Parse one kernel netlink message; None for udev-framed or malformed messages."""
    parts = data.split(b"\0")
    header = parts[0].decode("utf-8", "replace")
    action, at, devpath = header.partition("@")
    if not at or not action.isascii() or not action.isalpha() or not devpath.startswith("/"):
        return None
    fields: dict[str, str] = {}
    for raw in parts[1:]:
        key, eq, value = raw.decode("utf-8", "replace").partition("=")
        if eq and key:
            fields[key] = value
    if fields.get("ACTION", action) != action:
        return None
    return Uevent(action, devpath, fields)


def is_relevant(event: Uevent) -> bool:
    """Whether an event can change the served devices (PCI or mdev, a known action)."""
    return event.subsystem in SUBSYSTEMS and event.action in ACTIONS


def encode_uevent(action: str, devpath: str, fields: dict[str, str]) -> bytes:
    """The kernel's wire form of a uevent (used to replay recorded or synthetic events)."""
    body = {"ACTION": action, "DEVPATH": devpath, **fields}
    return (
        b"\0".join(
            [f"{action}@{devpath}".encode()] + [f"{k}={v}".encode() for k, v in body.items()]
        )
        + b"\0"
    )


def open_uevent_socket() -> socket.socket:
    """A non-blocking netlink socket bound to the kernel's uevent group (raises OSError)."""
    sock = socket.socket(
        socket.AF_NETLINK,
        socket.SOCK_DGRAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC,
        NETLINK_KOBJECT_UEVENT,
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
        sock.bind((0, KERNEL_GROUP))
    except OSError:
        sock.close()
        raise
    return sock
