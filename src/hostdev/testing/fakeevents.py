"""Synthetic kernel uevents for a FakeHost, in the kernel's wire format.

A fake host has no kernel behind it, so tests and benchmarks announce their changes the way
the kernel would: `uevent_for(host, "unbind", address)` builds the message, and
`UeventInjector` sends it through a datagram socketpair whose other end the daemon reads
exactly like the netlink socket.
"""

from __future__ import annotations

import socket

from hostdev.host.uevent import encode_uevent
from hostdev.testing.fakehost import FakeHost


def uevent_for(host: FakeHost, action: str, address: str, driver: str | None = None) -> bytes:
    """The uevent the kernel sends when a PCI function is added, removed, bound, unbound..."""
    devpath = "/" + host.funcs[address].path
    fields = {"SUBSYSTEM": "pci"}
    if driver:
        fields["DRIVER"] = driver
    fields["PCI_SLOT_NAME"] = address
    return encode_uevent(action, devpath, fields)


class UeventInjector:
    """A socketpair standing in for the netlink socket: `daemon_end` goes to the daemon."""

    def __init__(self) -> None:
        self.daemon_end, self._ours = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sent = 0

    def send(self, message: bytes) -> None:
        """Deliver one message, as the kernel multicasts one datagram per event."""
        self._ours.send(message)
        self.sent += 1

    def close(self) -> None:
        """Close our end (the daemon closes its own)."""
        self._ours.close()
