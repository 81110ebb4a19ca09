"""The host files that bind devices to vfio-pci at boot: modprobe options and modules-load.

/etc/modprobe.d/vfio.conf carries ``options vfio-pci ids=…`` and one ``softdep <driver> pre:
vfio-pci`` line per native driver of the selected devices, so that vfio-pci is loaded (and
claims the IDs) before that driver can. The native drivers come from the device's current
driver's module (the `module` link of /sys/bus/pci/drivers/<driver>: driver c6xx is module
qat_c62x, xhci_hcd is xhci_pci) when it is not vfio-pci, and from a small table by vendor and
class:

| vendor | class | native drivers |
| --- | --- | --- |
| 10de (NVIDIA) | 03xx display | nouveau, nvidia |
| 1002 (AMD) | 03xx display | amdgpu, radeon |
| 8086 (Intel) | 03xx display | i915, xe |
| 10de (NVIDIA) | 0c80 serial bus (USB-C UCSI) | i2c_nvidia_gpu |
| any | 0403 HD audio | snd_hda_intel |
| any | 0c03 USB | xhci_pci |

IDs given literally and not present on the host only get the display drivers of their vendor.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hostdev.host.model import VFIO_PCI, PciDevice

MODPROBE_PATH = "/etc/modprobe.d/vfio.conf"
MODULES_LOAD_PATH = "/etc/modules-load.d/vfio-pci.conf"
FILE_MODE = 0o644

_BY_VENDOR_CLASS: tuple[tuple[str | None, str, tuple[str, ...]], ...] = (
    ("10de", "03", ("nouveau", "nvidia")),
    ("1002", "03", ("amdgpu", "radeon")),
    ("8086", "03", ("i915", "xe")),
    ("10de", "0c80", ("i2c_nvidia_gpu",)),
    (None, "0403", ("snd_hda_intel",)),
    (None, "0c03", ("xhci_pci",)),
)


@dataclass(frozen=True, slots=True)
class HostFile:
    """A file to put on the host: absolute path, exact contents, mode."""

    path: str
    contents: str
    mode: int = FILE_MODE


def native_drivers(
    vendor_device: str, devices: Sequence[PciDevice], modules: Mapping[str, str]
) -> list[str]:
    """The modules that would claim this ID before vfio-pci, from the host's devices or table;
    modules maps a driver to its module where the names differ (c6xx is in qat_c62x)."""
    vendor = vendor_device[:4]
    found: list[str] = []
    matching = [d for d in devices if d.vendor_device == vendor_device]
    for device in matching:
        if device.driver and device.driver != VFIO_PCI:
            found.append(modules.get(device.driver, device.driver).replace("-", "_"))
        found += _from_table(vendor, device.class_code)
    if not matching:
        found += _from_table(vendor, "03")
    return _unique(found)


def _from_table(vendor: str, class_code: str) -> list[str]:
    return [
        module
        for table_vendor, prefix, modules in _BY_VENDOR_CLASS
        if table_vendor in (None, vendor) and class_code.startswith(prefix)
        for module in modules
    ]


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def modprobe_conf(ids: Sequence[str], softdeps: Sequence[str]) -> HostFile:
    """/etc/modprobe.d/vfio.conf: the ids= option and the softdep lines."""
    lines = [f"options vfio-pci ids={','.join(_unique(ids))}"]
    lines += [f"softdep {module} pre: vfio-pci" for module in _unique(softdeps)]
    return HostFile(MODPROBE_PATH, "\n".join(lines) + "\n")


def modules_load_conf() -> HostFile:
    """/etc/modules-load.d/vfio-pci.conf, exactly as the OpenShift documentation ships it."""
    return HostFile(MODULES_LOAD_PATH, "vfio-pci")
