"""Every guard, refused and forced, on a fake host (routes, addresses, disks, console, IOMMU)."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace

import pytest
from binding_helpers import E1000, GPU, NIC, NVME, RTL, bindings

from hostdev.binding import bind_devices, unbind_devices
from hostdev.binding.guards import iommu_enabled
from hostdev.host.model import PciAddress
from hostdev.testing.examples import add_intel_pch, no_iommu
from hostdev.testing.fakehost import FakeHost
from hostdev.testing.fakekernel import FakeKernelWriter

Setup = Callable[[FakeHost], object]


def up(ifname: str) -> Setup:
    return lambda h: h.set_operstate(ifname, "up")


def both(*steps: Setup) -> Setup:
    return lambda h: [step(h) for step in steps]


def nvme_disk(**kwargs: object) -> Setup:
    return lambda h: h.add_block(NVME, "nvme0n1", nvme=True, **kwargs)  # type: ignore[arg-type]


REFUSED = [
    # (id, target, setup, expected words in the reason)
    (
        "nic-up-with-route",
        NIC,
        both(up("eno1"), lambda h: h.add_route("eno1")),
        "interface eno1 is up with a route",
    ),
    (
        "nic-unknown-state-with-route",
        NIC,
        both(lambda h: h.set_operstate("eno1", "unknown"), lambda h: h.add_route("eno1")),
        "interface eno1 is unknown with a route",
    ),
    (
        "nic-up-with-global-ipv6",
        NIC,
        both(up("eno1"), lambda h: h.add_inet6("eno1")),
        "an IPv6 address",
    ),
    (
        "companion-nic-in-use",
        E1000,
        both(up("ens2"), lambda h: h.add_route("ens2")),
        "interface ens2 is up with a route",
    ),
    (
        "disk-mounted",
        NVME,
        both(nvme_disk(), lambda h: h.add_mount("/dev/nvme0n1", "/data")),
        "block device nvme0n1 backs a mounted filesystem",
    ),
    (
        "partition-mounted",
        NVME,
        both(nvme_disk(partitions=("nvme0n1p1",)), lambda h: h.add_mount("/dev/nvme0n1p1", "/")),
        "block device nvme0n1p1 backs a mounted filesystem",
    ),
    (
        "partition-swap",
        NVME,
        both(nvme_disk(partitions=("nvme0n1p2",)), lambda h: h.add_swap("/dev/nvme0n1p2")),
        "block device nvme0n1p2 is active swap",
    ),
    (
        "disk-mounted-in-host-namespace",
        NVME,
        both(nvme_disk(), lambda h: h.add_mount("/dev/nvme0n1", "/var", pid="1")),
        "block device nvme0n1 backs a mounted filesystem",
    ),
    ("disk-held-by-lvm", NVME, nvme_disk(holders=("dm-0",)), "held by dm-0 (LVM/md)"),
    (
        "block-dir-mounted",
        NVME,
        both(lambda h: h.add_block(NVME, "vda"), lambda h: h.add_mount("/dev/vda", "/srv")),
        "block device vda backs a mounted filesystem",
    ),
    (
        "boot-vga-framebuffer",
        GPU,
        both(lambda h: h.set_boot_vga(GPU), lambda h: h.add_framebuffer("fb0")),
        "boot VGA",
    ),
    (
        "boot-vga-console",
        GPU,
        both(lambda h: h.set_boot_vga(GPU), lambda h: h.add_vtconsole("vtcon1")),
        "boot VGA",
    ),
]

ALLOWED = [
    ("nic-up-without-route", NIC, up("eno1")),
    ("nic-down-with-route", NIC, lambda h: h.add_route("eno1")),
    (
        "nic-up-link-local-only",
        NIC,
        both(
            up("eno1"), lambda h: h.add_inet6("eno1", "fe800000000000005054fffe123456", scope="20")
        ),
    ),
    ("disk-not-mounted", NVME, nvme_disk(partitions=("nvme0n1p1",))),
    ("other-disk-mounted", NVME, both(nvme_disk(), lambda h: h.add_mount("/dev/sda1", "/"))),
    ("boot-vga-without-console", GPU, lambda h: h.set_boot_vga(GPU)),
    (
        "boot-vga-dummy-console",
        GPU,
        both(
            lambda h: h.set_boot_vga(GPU),
            lambda h: h.add_vtconsole("vtcon0", description="(S) dummy device"),
        ),
    ),
    ("console-on-another-gpu", GPU, lambda h: h.add_framebuffer("fb0")),
]


@pytest.mark.parametrize(
    ("target", "setup", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_guard_refuses_and_changes_nothing(host, kernel, options, state_file, target, setup, words):
    setup(host)
    before = bindings(host)
    result = bind_devices(host.fs, kernel, [PciAddress.parse(target)], options)
    assert not result.ok
    reasons = " ".join(d.reason for d in result.devices if d.action == "refused")
    assert words in reasons
    assert kernel.writes == []
    assert bindings(host) == before
    assert not state_file.exists()


@pytest.mark.parametrize(
    ("target", "setup", "words"), [c[1:] for c in REFUSED], ids=[c[0] for c in REFUSED]
)
def test_guard_yields_to_force_with_a_warning(host, kernel, options, target, setup, words):
    setup(host)
    result = bind_devices(host.fs, kernel, [PciAddress.parse(target)], replace(options, force=True))
    assert result.ok
    assert any(words in w and w.startswith("forced:") for w in result.warnings)
    assert host.driver_of(target) == "vfio-pci"


@pytest.mark.parametrize(("target", "setup"), [c[1:] for c in ALLOWED], ids=[c[0] for c in ALLOWED])
def test_harmless_state_is_not_refused(host, kernel, options, target, setup):
    setup(host)
    result = bind_devices(host.fs, kernel, [PciAddress.parse(target)], options)
    assert result.ok, result.to_json()
    assert host.driver_of(target) == "vfio-pci"


def test_ipv4_address_from_the_probe_refuses(host, kernel, options):
    host.set_operstate("eno1", "up")
    probe = {"eno1": ("192.0.2.10",)}
    result = bind_devices(
        host.fs,
        kernel,
        [PciAddress.parse(NIC)],
        replace(options, ipv4_probe=lambda name: probe.get(name, ())),
    )
    assert [d.action for d in result.devices] == ["refused"]
    assert "address 192.0.2.10" in result.devices[0].reason


def test_guards_apply_to_unbind_too(host, kernel, options):
    host.set_operstate("eno1", "up").add_route("eno1")
    result = unbind_devices(host.fs, kernel, [PciAddress.parse(NIC)], options)
    assert [d.action for d in result.devices] == ["refused"]
    assert host.driver_of(NIC) == "e1000e"


def test_one_refusal_refuses_the_whole_run(host, kernel, options):
    host.set_operstate("eno1", "up").add_route("eno1")
    result = bind_devices(host.fs, kernel, [PciAddress.parse(a) for a in (NIC, NVME)], options)
    assert [(d.address, d.action) for d in result.devices] == [(NIC, "refused"), (NVME, "skipped")]
    assert host.driver_of(NVME) == "nvme"


@pytest.mark.parametrize(
    ("address", "kind"),
    [("0000:05:00.0", "a bridge"), ("0000:00:00.0", "a host bridge"), ("0000:00:1c.0", "a bridge")],
    ids=["pcie-to-pci-bridge", "host-bridge", "root-port"],
)
@pytest.mark.parametrize("force", [False, True], ids=["plain", "forced"])
def test_bridges_are_always_refused(host, kernel, options, address, kind, force):
    result = bind_devices(
        host.fs, kernel, [PciAddress.parse(address)], replace(options, force=force)
    )
    assert [d.action for d in result.devices] == ["refused"]
    assert kind in result.devices[0].reason
    assert kernel.writes == []


def test_group_bridge_is_not_a_companion(host, kernel, options):
    result = bind_devices(host.fs, kernel, [PciAddress.parse(E1000)], options)
    assert [d.address for d in result.devices] == [E1000, RTL]


@pytest.mark.parametrize("force", [False, True], ids=["plain", "forced"])
def test_group_held_by_a_bridge_on_its_driver_is_refused(host, kernel, options, force):
    """The ISA bridge of the Intel 00:1f.x group keeps lpc_ich, so its group never becomes
    viable: binding the audio function is refused instead of half done."""
    add_intel_pch(host, driver="snd_hda_intel")
    before = bindings(host)
    result = bind_devices(
        host.fs, kernel, [PciAddress.parse("0000:00:1f.3")], replace(options, force=force)
    )
    assert [(d.address, d.action) for d in result.devices] == [
        ("0000:00:1f.3", "skipped"),
        ("0000:00:1f.0", "refused"),
        ("0000:00:1f.4", "skipped"),
    ]
    assert "is a bridge (class 060100)" in result.devices[1].reason
    assert kernel.writes == [] and bindings(host) == before


def test_no_iommu_refused_without_noiommu(tmp_path, options):
    host = no_iommu(tmp_path / "h")
    assert not iommu_enabled(host.fs)
    result = bind_devices(
        host.fs,
        FakeKernelWriter(host),
        [PciAddress.parse("0000:65:00.0")],
        replace(options, force=True),
    )
    assert [d.action for d in result.devices] == ["refused"]
    assert "can read and write all host memory" in result.devices[0].reason
    assert host.driver_of("0000:65:00.0") == "nouveau"


def test_no_iommu_with_noiommu_enables_unsafe_mode(tmp_path, options):
    host = no_iommu(tmp_path / "h")
    kernel = FakeKernelWriter(host)
    result = bind_devices(
        host.fs, kernel, [PciAddress.parse("0000:65:00.0")], replace(options, noiommu=True)
    )
    assert result.ok
    param = host.root / "sys/module/vfio/parameters/enable_unsafe_noiommu_mode"
    assert kernel.writes[0] == (str(param), "1")
    assert param.read_text().strip() == "1"
    assert host.driver_of("0000:65:00.0") == "vfio-pci"


def test_noiommu_loads_vfio_with_the_parameter_when_absent(tmp_path, options):
    host = FakeHost(tmp_path / "h")
    host.add_driver("nouveau")
    host.add_device(GPU, "10de", "1eb8", "030200", driver="nouveau")
    loaded: list[str] = []

    def load(module: str, params: object) -> None:
        loaded.append(" ".join([module, *params]))  # type: ignore[misc]
        if module == "vfio":
            host.load_module("vfio", enable_unsafe_noiommu_mode="Y")
        else:
            host.load_vfio()

    result = bind_devices(
        host.fs,
        FakeKernelWriter(host),
        [PciAddress.parse(GPU)],
        replace(options, noiommu=True, loader=load),
    )
    assert result.ok
    assert loaded == ["vfio enable_unsafe_noiommu_mode=1", "vfio-pci"]
    assert json.loads(json.dumps(result.to_json()))["commands"] == [
        "modprobe vfio enable_unsafe_noiommu_mode=1",
        "modprobe vfio-pci",
    ]


def garbage_ids(host: FakeHost, address: str) -> None:
    """Leave a function the scan cannot read (it is skipped, but stays in its IOMMU group)."""
    for name in ("uevent", "vendor", "device"):
        (host.device_dir(address) / name).write_text("0xZZZZ\n")


@pytest.mark.parametrize(
    ("dry_run", "force"),
    [(False, False), (True, False), (False, True)],
    ids=["plain", "dry-run", "forced"],
)
def test_a_group_with_an_unreadable_member_is_refused(host, kernel, options, dry_run, force):
    garbage_ids(host, RTL)
    before = bindings(host)
    result = bind_devices(
        host.fs, kernel, [PciAddress.parse(E1000)], replace(options, dry_run=dry_run, force=force)
    )
    assert [(d.address, d.action) for d in result.devices] == [
        (E1000, "skipped"),
        (RTL, "refused"),
    ]
    assert f"{RTL} is in the IOMMU group but cannot be read" in result.devices[1].reason
    assert result.writes == [] and kernel.writes == []
    assert bindings(host) == before
