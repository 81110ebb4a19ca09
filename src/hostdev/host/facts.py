"""Host-wide kernel facts for readiness checks: IOMMU, kernel command line, vfio modules.

Read once through the HostFS seam into a frozen `HostFacts`; the checks themselves are pure.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hostdev.host.fs import HostFS, list_dir, read_text

VFIO_MODULES = ("vfio", "vfio_pci", "vfio_iommu_type1")
_HEX = re.compile(r"[0-9a-fA-F]+")


@dataclass(frozen=True)
class IommuUnit:
    """One entry of /sys/class/iommu: dmarN (Intel) or ivhdN (AMD)."""

    name: str
    vendor: str  # "intel" | "amd" | "other"
    interrupt_remapping: bool | None  # None when the kernel does not say (AMD) or it is unreadable


@dataclass(frozen=True)
class HostFacts:
    """What doctor needs to know beyond the PCI devices."""

    cmdline: tuple[str, ...]
    cpu_vendor: str | None  # "intel" | "amd" | None
    iommu_units: tuple[IommuUnit, ...]
    iommu_group_count: int
    loaded_modules: frozenset[str]
    module_params: dict[str, dict[str, str]]  # module → parameter → value

    def param(self, module: str, name: str) -> str | None:
        """A module parameter's value, or None when not exposed."""
        return self.module_params.get(module, {}).get(name)

    def cmdline_value(self, key: str) -> str | None:
        """The value of key=value on the kernel command line (last one wins), or None."""
        value = None
        for arg in self.cmdline:
            name, sep, rest = arg.partition("=")
            if sep and name == key:
                value = rest
        return value


def read_facts(fs: HostFS) -> HostFacts:
    """Read the kernel facts doctor needs."""
    modules = frozenset(list_dir(fs.sys("module")))
    params = {
        m: {
            p: (read_text(fs.sys("module", m, "parameters", p)) or "").strip()
            for p in list_dir(fs.sys("module", m, "parameters"))
        }
        for m in VFIO_MODULES
        if m in modules
    }
    return HostFacts(
        cmdline=tuple((read_text(fs.proc("cmdline")) or "").split()),
        cpu_vendor=_cpu_vendor(read_text(fs.proc("cpuinfo"))),
        iommu_units=tuple(_iommu_unit(fs, n) for n in sorted(list_dir(fs.sys("class", "iommu")))),
        iommu_group_count=len(list_dir(fs.sys("kernel", "iommu_groups"))),
        loaded_modules=modules,
        module_params=params,
    )


def _cpu_vendor(cpuinfo: str | None) -> str | None:
    for line in (cpuinfo or "").splitlines():
        if line.startswith("vendor_id"):
            value = line.partition(":")[2].strip()
            return {"GenuineIntel": "intel", "AuthenticAMD": "amd"}.get(value)
    return None


def _iommu_unit(fs: HostFS, name: str) -> IommuUnit:
    ecap = read_text(fs.sys("class", "iommu", name, "intel-iommu", "ecap"))
    if name.startswith("dmar") or ecap is not None:
        return IommuUnit(name, "intel", _remapping_bit(ecap))
    return IommuUnit(name, "amd" if name.startswith("ivhd") else "other", None)


def _remapping_bit(ecap: str | None) -> bool | None:
    """Bit 3 of an Intel unit's extended capabilities (hex, no 0x); None when unreadable."""
    if ecap is None or _HEX.fullmatch(ecap) is None:
        return None
    return bool(int(ecap, 16) & 0x8)
