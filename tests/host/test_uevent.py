"""The uevent parser against messages recorded from a real kernel (6.18) and built ones."""

from __future__ import annotations

import socket

import pytest

from hostdev.host.uevent import encode_uevent, is_relevant, open_uevent_socket, parse_uevent

# Recorded with `echo change|add > /sys/bus/pci/devices/0000:00:05.0/uevent` and on lo.
RECORDED_PCI_CHANGE = (
    b"change@/devices/pci0000:00/0000:00:05.0\x00ACTION=change\x00"
    b"DEVPATH=/devices/pci0000:00/0000:00:05.0\x00SUBSYSTEM=pci\x00SYNTH_UUID=0\x00"
    b"DRIVER=virtio-pci\x00PCI_CLASS=FFFF00\x00PCI_ID=1AF4:1044\x00PCI_SUBSYS_ID=1AF4:1044\x00"
    b"PCI_SLOT_NAME=0000:00:05.0\x00"
    b"MODALIAS=pci:v00001AF4d00001044sv00001AF4sd00001044bcFFscFFi00\x00SEQNUM=815\x00"
)
RECORDED_PCI_ADD = RECORDED_PCI_CHANGE.replace(b"change", b"add").replace(b"815", b"816")
RECORDED_NET_CHANGE = (
    b"change@/devices/virtual/net/lo\x00ACTION=change\x00DEVPATH=/devices/virtual/net/lo\x00"
    b"SUBSYSTEM=net\x00SYNTH_UUID=0\x00INTERFACE=lo\x00IFINDEX=1\x00SEQNUM=817\x00"
)
GPU = "/devices/pci0000:64/0000:64:00.0/0000:65:00.0"
UNBIND = encode_uevent("unbind", GPU, {"SUBSYSTEM": "pci", "PCI_SLOT_NAME": "0000:65:00.0"})
MDEV_ADD = encode_uevent(
    "add",
    GPU + "/8f1d4c39-2c7e-4b44-9a7c-11f5c1f4c2a0",
    {"SUBSYSTEM": "mdev", "MDEV_TYPE": "nvidia-230"},
)
LIBUDEV = b"libudev\x00\xfe\xed\xca\xfe" + b"\x00" * 32


@pytest.mark.parametrize(
    ("data", "action", "device", "subsystem", "relevant"),
    [
        (RECORDED_PCI_CHANGE, "change", "0000:00:05.0", "pci", True),
        (RECORDED_PCI_ADD, "add", "0000:00:05.0", "pci", True),
        (RECORDED_NET_CHANGE, "change", "lo", "net", False),
        (UNBIND, "unbind", "0000:65:00.0", "pci", True),
        (MDEV_ADD, "add", "8f1d4c39-2c7e-4b44-9a7c-11f5c1f4c2a0", "mdev", True),
        (
            encode_uevent("online", GPU, {"SUBSYSTEM": "pci"}),
            "online",
            "0000:65:00.0",
            "pci",
            False,
        ),
    ],
    ids=[
        "recorded-pci-change",
        "recorded-pci-add",
        "recorded-net",
        "unbind",
        "mdev-add",
        "unknown-action",
    ],
)
def test_parse_and_filter(
    data: bytes, action: str, device: str, subsystem: str, relevant: bool
) -> None:
    event = parse_uevent(data)
    assert event is not None
    assert (event.action, event.device, event.subsystem) == (action, device, subsystem)
    assert is_relevant(event) is relevant


def test_recorded_fields() -> None:
    event = parse_uevent(RECORDED_PCI_CHANGE)
    assert event is not None
    assert event.devpath == "/devices/pci0000:00/0000:00:05.0"
    assert event.fields["DRIVER"] == "virtio-pci"
    assert event.seqnum == 815
    assert event.summary() == "change pci 0000:00:05.0"


@pytest.mark.parametrize(
    "data",
    [
        LIBUDEV,
        b"",
        b"\x00\x00",
        b"add@\x00SUBSYSTEM=pci\x00",
        b"add\x00SUBSYSTEM=pci\x00",
        b"@/devices/x\x00",
        b"add@/devices/x\x00ACTION=remove\x00",
        b"\xff\xfe@/x\x00",
    ],
    ids=[
        "libudev",
        "empty",
        "nuls",
        "no-devpath",
        "no-at",
        "no-action",
        "action-mismatch",
        "binary-garbage",
    ],
)
def test_rejects_malformed(data: bytes) -> None:
    assert parse_uevent(data) is None


def test_odd_fields_survive() -> None:
    event = parse_uevent(b"add@/devices/x\x00novalue\x00=x\x00K=a=b\x00SEQNUM=abc\x00")
    assert event is not None
    assert event.fields == {"K": "a=b", "SEQNUM": "abc"}
    assert event.seqnum is None
    assert event.subsystem == ""


def test_superscript_seqnum_is_garbage() -> None:
    event = parse_uevent("add@/devices/x\x00SEQNUM=\u00b2\x00".encode())
    assert event is not None and event.seqnum is None


def test_encode_round_trip() -> None:
    event = parse_uevent(UNBIND)
    assert event is not None
    assert (
        encode_uevent(
            event.action,
            event.devpath,
            {k: v for k, v in event.fields.items() if k not in ("ACTION", "DEVPATH")},
        )
        == UNBIND
    )


def test_netlink_socket_opens_nonblocking() -> None:
    try:
        sock = open_uevent_socket()
    except OSError as err:  # no netlink here (gVisor, seccomp): the daemon falls back too
        pytest.skip(f"netlink uevent socket unavailable: {err}")
    with sock:
        assert sock.family == socket.AF_NETLINK
        assert sock.getblocking() is False
        assert sock.getsockname()[1] == 1  # joined the kernel's multicast group only
