"""The read-only host model: frozen dataclasses describing PCI functions, IOMMU groups and mdevs.

A `Host` is an immutable snapshot built by `hostdev.host.scan`. Everything downstream
(selection, allocation, the device plugin, the CLI) is a pure function of snapshots.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from hostdev.errors import BadInputError
from hostdev.host.construct import positional_constructor

VFIO_PCI = "vfio-pci"
# Vendors' VFIO drivers built on vfio-pci-core (live migration and device-specific quirks):
# mlx5_vfio_pci, hisi_acc_vfio_pci, nvgrace_gpu_vfio_pci, pds_vfio_pci, qat_vfio_pci,
# virtio_vfio_pci in 6.12. Each registers the function with VFIO as vfio-pci does (a
# /dev/vfio/<group> node, a vfio-dev entry), and each names itself after its module, so
# every one is a module name ending in _vfio_pci.
_VFIO_VARIANT = re.compile(r"[a-z0-9_]+_vfio_pci")
# The other drivers a group member may stay on while VFIO opens its group. Since Linux 5.19 a
# bound driver claims the group's DMA ownership unless it declares driver_managed_dma, as the
# VFIO drivers, pci-stub and pcieport do; any other driver blocks, a host bridge's or an
# ISA/LPC bridge's (lpc_ich) included. Before 5.19 PCI-to-PCI and CardBus bridges were exempt
# whatever their driver. An unbound member never blocks.
GROUP_SAFE_DRIVERS = frozenset(("pci-stub", "pcieport"))


def is_vfio_driver(driver: str | None) -> bool:
    """vfio-pci or a vendor's variant of it (mlx5_vfio_pci, nvgrace_gpu_vfio_pci, ...)."""
    return driver is not None and (
        driver == VFIO_PCI or _VFIO_VARIANT.fullmatch(driver) is not None
    )


def is_group_safe(driver: str) -> bool:
    """Whether a group member bound to this driver lets VFIO open the group."""
    return driver in GROUP_SAFE_DRIVERS or is_vfio_driver(driver)


_ADDRESS_RE = re.compile(
    r"(?P<domain>[0-9a-fA-F]{4,8}):(?P<bus>[0-9a-fA-F]{2}):(?P<slot>[0-9a-fA-F]{2})"
    r"\.(?P<function>[0-7])"
)
_SLOT_MAX = 0x1F


@dataclass(frozen=True, order=True, slots=True)
class PciAddress:
    """A PCI function address DDDD:BB:SS.F (the domain may be wider than 4 digits, e.g. VMD)."""

    domain: int
    bus: int
    slot: int
    function: int

    @classmethod
    def parse(cls, text: str) -> PciAddress:
        """Parse a full address strictly; raise BadInputError on anything else."""
        match = _ADDRESS_RE.fullmatch(text)
        if match is None:
            raise BadInputError(f"invalid PCI address {text!r}: expected DDDD:BB:SS.F")
        slot = int(match["slot"], 16)
        if slot > _SLOT_MAX:
            raise BadInputError(f"invalid PCI address {text!r}: slot {slot:#x} exceeds 0x1f")
        return cls(int(match["domain"], 16), int(match["bus"], 16), slot, int(match["function"]))

    @classmethod
    def from_kernel(cls, name: str) -> PciAddress:
        """Parse a name the kernel wrote (already matched as lower-case DDDD:BB:SS.F): no regex."""
        return _new_address(
            int(name[:-8], 16), int(name[-7:-5], 16), int(name[-4:-2], 16), int(name[-1])
        )

    def __str__(self) -> str:
        return f"{self.domain:04x}:{self.bus:02x}:{self.slot:02x}.{self.function:x}"


_new_address = positional_constructor(PciAddress)


@dataclass(frozen=True, slots=True)
class MdevType:
    """A mediated device type offered by a parent device (mdev_supported_types/<type_id>)."""

    type_id: str
    name: str
    available_instances: int
    device_api: str
    description: str


@dataclass(frozen=True, slots=True)
class Mdev:
    """An existing mediated device."""

    uuid: str
    type_id: str
    type_name: str
    parent: PciAddress
    iommu_group: int | None


@dataclass(frozen=True, slots=True)
class Sriov:
    """SR-IOV capability of a physical function."""

    total_vfs: int
    num_vfs: int
    vfs: tuple[PciAddress, ...]  # in virtfn order
    # each VF's N from its virtfnN link, parallel to vfs: not its position, since the links can
    # have gaps (the kernel removes virtfn0 first when it tears VFs down)
    vf_indexes: tuple[int, ...]
    drivers_autoprobe: bool | None = None

    def indexed_vfs(self) -> Iterator[tuple[int, PciAddress]]:
        """(virtfn index, VF address) pairs in virtfn order."""
        return zip(self.vf_indexes, self.vfs, strict=True)


@dataclass(frozen=True, slots=True)
class PciDevice:
    """One PCI function as the kernel shows it."""

    address: PciAddress
    vendor: str  # 4 lower-case hex digits
    device: str
    subsystem_vendor: str
    subsystem_device: str
    class_code: str  # 6 lower-case hex digits
    revision: str  # 2 lower-case hex digits
    driver: str | None
    driver_override: str | None
    iommu_group: int | None
    numa_node: int | None
    pci_path: tuple[str, ...] = ()  # upstream bridges, root first, e.g. ("0000:00:03.0",)
    sriov: Sriov | None = None
    physfn: PciAddress | None = None
    vf_index: int | None = None
    netdevs: tuple[str, ...] = ()
    vfio_cdev: str | None = None  # "vfio0" when the kernel exposes vfio-dev/
    mdev_types: tuple[MdevType, ...] = ()
    problems: tuple[str, ...] = ()  # what could not be read, kept to explain decisions

    @property
    def vendor_device(self) -> str:
        """The "vvvv:dddd" pair used by selectors and modprobe ids=."""
        return f"{self.vendor}:{self.device}"

    @property
    def is_bridge(self) -> bool:
        """True for PCI bridges of any kind (class 06xxxx: host, PCI-PCI, ISA ...)."""
        return self.class_code.startswith("06")

    @property
    def is_vf(self) -> bool:
        """True when this function is an SR-IOV virtual function."""
        return self.physfn is not None

    @property
    def is_pf(self) -> bool:
        """True when this function can create SR-IOV virtual functions."""
        return self.sriov is not None and self.sriov.total_vfs > 0


@dataclass(frozen=True, slots=True)
class IommuGroup:
    """An IOMMU group: the smallest set of functions that can be isolated from the rest."""

    number: int
    members: tuple[PciAddress, ...]
    vfio_node: bool  # /dev/vfio/<number> exists


@dataclass(frozen=True, slots=True)
class Viability:
    """Whether a group can be opened through VFIO, and which members stand in the way."""

    viable: bool
    blockers: tuple[tuple[PciAddress, str], ...]  # (member, its host driver)


VIABLE = Viability(True, ())  # shared by every viable group


@dataclass(frozen=True, slots=True)
class SkippedDevice:
    """A sysfs entry the scanner could not turn into a device, with the reason."""

    name: str
    reason: str


@dataclass(frozen=True)
class Host:
    """An immutable snapshot of the host's PCI functions, IOMMU groups and mdevs."""

    devices: Mapping[PciAddress, PciDevice]
    groups: Mapping[int, IommuGroup]
    mdevs: tuple[Mdev, ...] = ()
    skipped: tuple[SkippedDevice, ...] = ()
    vfio_container: bool = False  # /dev/vfio/vfio exists
    iommufd: bool = False  # /dev/iommu exists
    _viability: dict[int, Viability] = field(default_factory=dict, compare=False, repr=False)

    def device(self, address: PciAddress) -> PciDevice | None:
        """The device at an address, or None."""
        return self.devices.get(address)

    def skip_reason(self, address: PciAddress | str) -> str | None:
        """Why the scan skipped the function at an address, or None when it did not."""
        return next((s.reason for s in self.skipped if s.name == str(address)), None)

    def pf_of(self, dev: PciDevice) -> PciDevice | None:
        """A VF's physical function, or None (not a VF, or its PF is not on the host)."""
        return self.devices.get(dev.physfn) if dev.physfn is not None else None

    def sorted_devices(self) -> list[PciDevice]:
        """All devices in address order."""
        return [self.devices[a] for a in sorted(self.devices)]

    def group_of(self, address: PciAddress) -> IommuGroup | None:
        """The IOMMU group of a device, or None when it has none."""
        dev = self.devices.get(address)
        if dev is None or dev.iommu_group is None:
            return None
        return self.groups.get(dev.iommu_group)

    def group_viability(self, number: int) -> Viability:
        """A group is viable when every member is unbound or on a DMA-safe driver."""
        cached = self._viability.get(number)
        if cached is not None:
            return cached
        blockers: list[tuple[PciAddress, str]] = []
        group = self.groups.get(number)
        for member in group.members if group else ():
            dev = self.devices.get(member)
            if dev is None:  # listed in the group but unreadable: assume the worst
                blockers.append((member, "an unreadable driver"))
            elif dev.driver is not None and not is_group_safe(dev.driver):
                blockers.append((member, dev.driver))
        result = Viability(False, tuple(blockers)) if blockers else VIABLE
        self._viability[number] = result
        return result

    @cached_property
    def mdevs_by_uuid(self) -> dict[str, Mdev]:
        """Existing mdevs indexed by UUID."""
        return {m.uuid: m for m in self.mdevs}

    @cached_property
    def netdev_index(self) -> dict[str, PciAddress]:
        """Network interface name → the PCI function that carries it."""
        return {name: d.address for d in self.devices.values() for name in d.netdevs}
