"""Selection: which devices of a host snapshot each resource serves. Pure: `select(host, config)`.

Rules:
- Only functions bound to vfio-pci are servable PCI devices (bridges never are); mdevs are the
  existing mediated devices whose type name matches a resource's mdevName/mdevNameSelector,
  compared as KubeVirt compares them (spaces turned into `_` on both sides, then trimmed).
- A selector matches when every criterion it gives matches (small predicates, AND-composed);
  a resource takes a device when any of its selectors matches and no exclusion does.
- A device joins the FIRST resource (in file order) that selects it.
- Without a config file every vfio-pci device is served as
  `devices.kubevirt.io/<vendor>_<device>` (lower-case hex).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from hostdev.config.model import (
    DEFAULT_PREFIX,
    Config,
    ResourceKind,
    ResourceOptions,
    ResourceSpec,
    Selector,
)
from hostdev.config.patterns import id_matches, mdev_type_key
from hostdev.host.model import Host, Mdev, PciAddress, PciDevice, is_vfio_driver


@dataclass(frozen=True, slots=True)
class ServedDevice:
    """A device as a resource serves it; `id` is the kubelet Device.ID."""

    id: str  # the full PCI address, or the mdev UUID
    address: PciAddress  # the PCI function; for an mdev, its parent
    iommu_group: int | None
    numa_node: int | None
    vfio_cdev: str | None = None  # "vfio3" when the kernel exposes /dev/vfio/devices/vfio3
    physfn: PciAddress | None = None  # the PF of a VF
    tags: tuple[tuple[str, str], ...] = ()  # free-form labels (e.g. physical_network)
    is_mdev: bool = False


@dataclass(frozen=True, slots=True)
class Resource:
    """An extended resource and the devices it serves, in address order."""

    name: str
    kind: ResourceKind
    devices: tuple[ServedDevice, ...]
    options: ResourceOptions = field(default_factory=ResourceOptions)


Check = Callable[[Selector, PciDevice, Host], bool]


def _vendor(sel: Selector, dev: PciDevice, host: Host) -> bool:
    return sel.vendor is None or id_matches(sel.vendor, dev.vendor)


def _device(sel: Selector, dev: PciDevice, host: Host) -> bool:
    return sel.device is None or id_matches(sel.device, dev.vendor_device)


def _address(sel: Selector, dev: PciDevice, host: Host) -> bool:
    return sel.address is None or sel.address.matches(dev.address)


def _class(sel: Selector, dev: PciDevice, host: Host) -> bool:
    return sel.class_prefix is None or dev.class_code.startswith(sel.class_prefix)


def _subsystem(sel: Selector, dev: PciDevice, host: Host) -> bool:
    pair = f"{dev.subsystem_vendor}:{dev.subsystem_device}"
    return sel.subsystem is None or id_matches(sel.subsystem, pair)


def _driver(sel: Selector, dev: PciDevice, host: Host) -> bool:
    return sel.driver is None or dev.driver == sel.driver


def _pf_name(sel: Selector, dev: PciDevice, host: Host) -> bool:
    if not sel.pf_names:
        return True
    pf = host.pf_of(dev)
    if pf is None:
        return False
    return any(m.matches_vf(pf.netdevs, dev.vf_index) for m in sel.pf_names)


def _nova(sel: Selector, dev: PciDevice, host: Host) -> bool:
    return not sel.nova or any(spec.matches(dev, host) for spec in sel.nova)


def _pf_device(sel: Selector, dev: PciDevice, host: Host) -> bool:
    if sel.pf_device is None:
        return True
    pf = host.pf_of(dev)
    return pf is not None and id_matches(sel.pf_device, pf.vendor_device)


PCI_CHECKS: tuple[Check, ...] = (
    _vendor,
    _device,
    _address,
    _class,
    _subsystem,
    _driver,
    _pf_name,
    _nova,
    _pf_device,
)


def selector_matches(selector: Selector, dev: PciDevice, host: Host) -> bool:
    """True when a PCI selector matches a device (an mdev selector never does)."""
    if selector.mdev_name is not None:
        return False
    return all(check(selector, dev, host) for check in PCI_CHECKS)


def resource_takes(spec: ResourceSpec, dev: PciDevice, host: Host) -> bool:
    """True when a PCI resource selects the device and does not exclude it."""
    if spec.kind != "pci" or any(e.matches(dev.address) for e in spec.excludes):
        return False
    if spec.exclude_devices is not None and spec.exclude_devices.excludes(dev, host):
        return False
    return any(selector_matches(s, dev, host) for s in spec.selectors)


def is_servable(dev: PciDevice) -> bool:
    """A PCI function can be handed out when it is on a VFIO driver and is not a bridge."""
    return is_vfio_driver(dev.driver) and not dev.is_bridge


def served_pci(dev: PciDevice) -> ServedDevice:
    """The served form of a PCI function."""
    return ServedDevice(
        str(dev.address), dev.address, dev.iommu_group, dev.numa_node, dev.vfio_cdev, dev.physfn
    )


def served_mdev(mdev: Mdev, host: Host) -> ServedDevice:
    """The served form of a mediated device (NUMA node of its parent)."""
    parent = host.device(mdev.parent)
    numa = parent.numa_node if parent is not None else None
    return ServedDevice(mdev.uuid, mdev.parent, mdev.iommu_group, numa, is_mdev=True)


def default_name(dev: PciDevice) -> str:
    """The no-config resource name: devices.kubevirt.io/<vendor>_<device>."""
    return f"{DEFAULT_PREFIX}/{dev.vendor}_{dev.device}"


def select(host: Host, config: Config) -> tuple[Resource, ...]:
    """The resources the config serves on this host (config order; default: by name)."""
    pci = [d for d in host.sorted_devices() if is_servable(d)]
    if config.serves_all_vfio:
        return _default_resources(pci)
    chosen: dict[str, list[ServedDevice]] = {spec.name: [] for spec in config.resources}
    for dev in pci:
        spec = next((s for s in config.resources if resource_takes(s, dev, host)), None)
        if spec is not None:
            chosen[spec.name].append(replace(served_pci(dev), tags=device_tags(spec, dev, host)))
    for mdev in sorted(host.mdevs, key=lambda m: (m.parent, m.uuid)):
        spec = next((s for s in config.resources if _takes_mdev(s, mdev)), None)
        if spec is not None:
            chosen[spec.name].append(served_mdev(mdev, host))
    return tuple(
        Resource(s.name, s.kind, tuple(chosen[s.name]), s.options) for s in config.resources
    )


def device_tags(spec: ResourceSpec, dev: PciDevice, host: Host) -> tuple[tuple[str, str], ...]:
    """Tags (physical_network ...) of the first nova entry that selects the device."""
    for selector in spec.selectors:
        if not selector_matches(selector, dev, host):
            continue
        for nova in selector.nova:
            if nova.matches(dev, host):
                return tuple(sorted(nova.tags.items()))
    return ()


def _takes_mdev(spec: ResourceSpec, mdev: Mdev) -> bool:
    if spec.kind != "mdev":
        return False
    # As KubeVirt does, so "GRID_T4-2Q" and "GRID T4-2Q" both select the type "GRID T4-2Q".
    key = mdev_type_key(mdev.type_name)
    return any(
        s.mdev_name is not None and mdev_type_key(s.mdev_name) == key for s in spec.selectors
    )


def _default_resources(devices: Iterable[PciDevice]) -> tuple[Resource, ...]:
    groups: dict[str, list[ServedDevice]] = {}
    for dev in devices:
        groups.setdefault(default_name(dev), []).append(served_pci(dev))
    return tuple(Resource(name, "pci", tuple(groups[name])) for name in sorted(groups))
