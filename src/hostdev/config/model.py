"""The validated configuration: frozen objects built once by the loader, read by selection and
the daemon. Nothing here parses or validates; see `schema.py` and `loader.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from hostdev.config.patterns import AddressMatcher, Exclusion, PfMatcher

if TYPE_CHECKING:
    from hostdev.mdev_plan import MdevConfig
    from hostdev.selectors_sriov import NeutronExclusions, NovaDeviceSpec
    from hostdev.sriov_apply import SriovSpec

ResourceKind = Literal["pci", "mdev"]
EnvFamily = Literal["kubevirt", "sriov"]
BindMode = Literal["none", "onStart"]
KubeVirtEntries = Literal["external", "all"]
DEFAULT_PREFIX = "devices.kubevirt.io"


@dataclass(frozen=True, slots=True)
class Selector:
    """One way a device can join a resource; every field that is set must match."""

    vendor: str | None = None  # "10de" (wildcards allowed)
    device: str | None = None  # "10de:1eb8" pair (wildcards allowed)
    address: AddressMatcher | None = None
    class_prefix: str | None = None  # "0302" or "030200"
    subsystem: str | None = None  # "10de:12a2" pair
    driver: str | None = None
    pf_names: tuple[PfMatcher, ...] = ()
    mdev_name: str | None = None  # mdev type name, e.g. "GRID T4-2Q"
    nova: tuple[NovaDeviceSpec, ...] = ()  # nova device_spec entries (any may match)
    pf_device: str | None = None  # VFs whose PF is this vendor:device pair


@dataclass(frozen=True, slots=True)
class ResourceOptions:
    """Per-resource behaviour; env families, binding and reset."""

    env: tuple[EnvFamily, ...] = ("kubevirt",)
    bind: BindMode = "none"
    reset: bool = False


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """A resource to serve: its extended resource name, how devices are chosen, its options."""

    name: str
    kind: ResourceKind
    selectors: tuple[Selector, ...]
    excludes: tuple[Exclusion, ...] = ()
    options: ResourceOptions = field(default_factory=ResourceOptions)
    origin: str = ""  # where in the file it came from, e.g. "resources[0]"
    exclude_devices: NeutronExclusions | None = None  # neutron's exclude_devices, per PF


@dataclass(frozen=True, slots=True)
class Config:
    """What hostdev serves. With no file (`source is None`) every vfio-pci device is served
    under `devices.kubevirt.io/<vendor>_<device>`."""

    resources: tuple[ResourceSpec, ...] = ()
    source: str | None = None
    skipped: tuple[str, ...] = ()  # one explanation per KubeVirt entry hostdev leaves alone
    sriov: tuple[SriovSpec, ...] = ()  # VFs to create at serve start (`sriov:`)
    mediated_devices: MdevConfig | None = None  # mdevs to create (`mediatedDevicesConfiguration:`)

    @property
    def serves_all_vfio(self) -> bool:
        """True for the no-config default."""
        return self.source is None


DEFAULT_CONFIG = Config()
