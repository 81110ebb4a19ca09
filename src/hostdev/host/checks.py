"""Readiness checks for `hostdev doctor`: pure functions of a Host and its HostFacts.

Each check yields PASS, WARN or FAIL with a message and, when not PASS, the fix spelled out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from hostdev.host.facts import VFIO_MODULES, HostFacts, IommuUnit
from hostdev.host.model import Host, PciAddress, PciDevice, is_vfio_driver

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"
_REMAPPING = "interrupt-remapping"


@dataclass(frozen=True, slots=True)
class Check:
    """One check's outcome."""

    name: str
    status: str
    message: str
    fix: str | None = None


def kernel_args(cpu_vendor: str | None) -> str:
    """The kernel arguments that enable the IOMMU for this CPU vendor."""
    if cpu_vendor == "amd":
        return "amd_iommu=on iommu=pt"
    if cpu_vendor == "intel":
        return "intel_iommu=on iommu=pt"
    return "intel_iommu=on iommu=pt (Intel) or amd_iommu=on iommu=pt (AMD)"


def _args_fix(facts: HostFacts) -> str:
    return (
        f"add `{kernel_args(facts.cpu_vendor)}` to the kernel command line "
        "(GRUB_CMDLINE_LINUX, or `hostdev render kernel-args` on OpenShift) and reboot"
    )


def check_cmdline(facts: HostFacts) -> Check:
    """The kernel command line asks for the IOMMU (and passthrough mode)."""
    flag = facts.cmdline_value("intel_iommu") or facts.cmdline_value("amd_iommu")
    if flag == "off":
        return Check(
            "iommu-cmdline",
            FAIL,
            "the IOMMU is switched off on the kernel command line",
            _args_fix(facts),
        )
    if flag is None and facts.cpu_vendor != "amd":
        return Check(
            "iommu-cmdline",
            WARN if facts.iommu_units else FAIL,
            "no intel_iommu=on on the kernel command line",
            _args_fix(facts),
        )
    if facts.cmdline_value("iommu") != "pt":
        return Check(
            "iommu-cmdline",
            WARN,
            "iommu=pt is not set: host devices pay for DMA translation they do not need",
            _args_fix(facts),
        )
    return Check("iommu-cmdline", PASS, " ".join(a for a in facts.cmdline if "iommu" in a))


def check_iommu_active(facts: HostFacts) -> Iterable[Check]:
    """The kernel runs an IOMMU and has put devices into groups."""
    if not facts.iommu_units:
        yield Check(
            "iommu-enabled",
            FAIL,
            "no IOMMU in /sys/class/iommu: enable VT-d/AMD-Vi "
            "in the firmware and on the kernel command line",
            _args_fix(facts),
        )
    else:
        names = ", ".join(u.name for u in facts.iommu_units)
        yield Check("iommu-enabled", PASS, f"IOMMU active ({names})")
    if facts.iommu_group_count == 0:
        yield Check("iommu-groups", FAIL, "/sys/kernel/iommu_groups is empty", _args_fix(facts))
    else:
        yield Check("iommu-groups", PASS, f"{facts.iommu_group_count} IOMMU groups")


def check_vfio_modules(facts: HostFacts) -> Iterable[Check]:
    """vfio, vfio_pci and vfio_iommu_type1 are loaded; report the vfio-pci parameters."""
    missing = [m for m in VFIO_MODULES if m not in facts.loaded_modules]
    if missing:
        yield Check(
            "vfio-modules",
            FAIL,
            f"not loaded: {', '.join(missing)}",
            "run `modprobe vfio-pci` and list vfio-pci in /etc/modules-load.d/"
            "vfio-pci.conf (`hostdev render modules-load`)",
        )
        return
    yield Check("vfio-modules", PASS, "vfio, vfio_pci and vfio_iommu_type1 loaded")
    denylist = facts.param("vfio_pci", "disable_denylist")
    message = f"disable_denylist={denylist or '?'}"
    yield Check(
        "vfio-pci-params",
        PASS,
        message + " (ids= is set at load time: "
        "see /etc/modprobe.d/vfio.conf or `hostdev render modprobe`)",
    )


def check_vfio_nodes(host: Host, facts: HostFacts) -> Iterable[Check]:
    """The host-wide nodes a VM opens its devices through: /dev/vfio/vfio and /dev/iommu."""
    if "vfio" not in facts.loaded_modules:
        return  # vfio-modules has failed already: loading vfio creates the nodes
    if host.vfio_container:
        also = " and /dev/iommu (iommufd)" if host.iommufd else ""
        yield Check("vfio-nodes", PASS, f"/dev/vfio/vfio{also} present")
    elif host.iommufd:
        yield Check(
            "vfio-nodes",
            WARN,
            "no /dev/vfio/vfio (a kernel without the VFIO container): only a VMM that opens "
            "devices through iommufd (/dev/iommu, /dev/vfio/devices/*) can use them",
            "use a kernel built with CONFIG_VFIO_CONTAINER=y or "
            "CONFIG_IOMMUFD_VFIO_CONTAINER=y for VMMs that open /dev/vfio/vfio",
        )
    else:
        yield Check(
            "vfio-nodes",
            FAIL,
            "neither /dev/vfio/vfio nor /dev/iommu exists, though vfio is loaded",
            "mount devtmpfs on /dev; in a container, mount the host's /dev (`--dev-root`)",
        )


def check_interrupt_remapping(facts: HostFacts) -> Check:
    """Interrupt remapping isolates a guest's interrupts; without it VFIO needs an unsafe flag.

    One unit without it is enough to fail: a device behind that unit is not isolated.
    """
    unsafe = facts.param("vfio_iommu_type1", "allow_unsafe_interrupts") in ("Y", "1")
    units = facts.iommu_units
    if not units:
        return Check(
            _REMAPPING,
            FAIL,
            "no IOMMU, so no interrupt remapping",
            "enable the IOMMU first (see iommu-enabled)",
        )
    lacking = [u.name for u in units if u.interrupt_remapping is False]
    if facts.cmdline_value("intremap") == "off":
        return _no_remapping("switched off by intremap=off", unsafe)
    if lacking:
        return _no_remapping(f"not supported by {', '.join(lacking)} (ecap bit 3)", unsafe)
    unknown = [u for u in units if u.interrupt_remapping is None]
    if unknown:
        return _remapping_unknown(unknown)
    if unsafe:
        return Check(
            _REMAPPING,
            WARN,
            "interrupt remapping works but allow_unsafe_interrupts=Y is set",
            "remove allow_unsafe_interrupts=1 from /etc/modprobe.d: it is not needed on this host",
        )
    return Check(_REMAPPING, PASS, "supported by the IOMMU (ecap bit 3)")


def _no_remapping(why: str, unsafe: bool) -> Check:
    if unsafe:
        return Check(
            _REMAPPING,
            WARN,
            f"no interrupt remapping ({why}); allow_unsafe_interrupts=Y lets VFIO assign "
            "devices anyway, but a guest can then inject interrupts into the host (only for "
            "trusted guests)",
            "enable interrupt remapping in the firmware or remove intremap=off",
        )
    return Check(
        _REMAPPING,
        FAIL,
        f"no interrupt remapping ({why}): VFIO refuses to assign devices",
        "enable it in the firmware (remove intremap=off), or for trusted "
        "guests only set `options vfio_iommu_type1 allow_unsafe_interrupts=1`",
    )


def _remapping_unknown(unknown: list[IommuUnit]) -> Check:
    if all(u.vendor == "amd" for u in unknown):
        return Check(
            _REMAPPING,
            PASS,
            "IOMMU present; the kernel does not report "
            "remapping support in sysfs (AMD-Vi remaps when enabled)",
        )
    intel = [u.name for u in unknown if u.vendor == "intel"]
    other = [u.name for u in unknown if u.vendor != "intel"]
    reasons = [f"the ecap of {', '.join(intel)} is unreadable"] if intel else []
    reasons += [f"sysfs does not report it for {', '.join(other)}"] if other else []
    return Check(
        _REMAPPING,
        WARN,
        f"interrupt remapping unknown: {'; '.join(reasons)}",
        "check the kernel log: `dmesg | grep -i remapping` should say it is enabled",
    )


def check_noiommu(facts: HostFacts) -> Check:
    """vfio's no-IOMMU mode gives devices no DMA isolation at all."""
    if facts.param("vfio", "enable_unsafe_noiommu_mode") in ("Y", "1"):
        return Check(
            "noiommu-mode",
            WARN,
            "vfio no-IOMMU mode is on: assigned devices can read and write all host memory",
            "unset vfio enable_unsafe_noiommu_mode unless this host has no IOMMU by design",
        )
    return Check("noiommu-mode", PASS, "off")


def check_device(host: Host, dev: PciDevice) -> Check:
    """A device's group is viable (every other member unbound or on a DMA-safe driver)."""
    name = f"device {dev.address}"
    if dev.iommu_group is None:
        return Check(name, FAIL, "no IOMMU group", "enable the IOMMU (see iommu-enabled)")
    others = [(a, d) for a, d in host.group_viability(dev.iommu_group).blockers if a != dev.address]
    if others:
        blockers = ", ".join(f"{a} on {d}" for a, d in others)
        message = f"group {dev.iommu_group} not viable: {blockers}"
        return Check(name, FAIL, message, _viability_fix(host, [a for a, _ in others]))
    if not is_vfio_driver(dev.driver):
        return Check(
            name,
            WARN,
            f"group {dev.iommu_group} viable but the device is on {dev.driver or 'no driver'}",
            f"`hostdev bind {dev.address}`",
        )
    return Check(name, PASS, f"group {dev.iommu_group} viable, on {dev.driver}")


def _viability_fix(host: Host, blockers: list[PciAddress]) -> str:
    """Bind the blockers, unless one is a bridge: bridges stay with the host."""
    bridges = [a for a in blockers if (d := host.devices.get(a)) is not None and d.is_bridge]
    if bridges:
        listed = " ".join(str(a) for a in bridges)
        return (
            f"bridge {listed} stays on its host driver (hostdev never binds bridges), so this "
            "group cannot become viable: pass through a device in another group"
        )
    return (
        f"`hostdev bind {' '.join(str(a) for a in blockers)}` (or move the device to another slot)"
    )


def run_checks(host: Host, facts: HostFacts, devices: Iterable[PciDevice]) -> list[Check]:
    """Every host check, then one per device."""
    checks = [
        check_cmdline(facts),
        *check_iommu_active(facts),
        *check_vfio_modules(facts),
        *check_vfio_nodes(host, facts),
        check_interrupt_remapping(facts),
        check_noiommu(facts),
    ]
    checks += [check_device(host, d) for d in devices]
    return checks
