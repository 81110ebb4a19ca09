"""The validated configuration: frozen objects built once by the loader, read by selection and
the daemon. Nothing here parses or validates; see `schema.py` and `loader.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from hostdev.config.patterns import AddressMatcher, Exclusion, PfMatcher

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


@dataclass(frozen=True, slots=True)
class Config:
    """What hostdev serves. With no file (`source is None`) every vfio-pci device is served
    under `devices.kubevirt.io/<vendor>_<device>`."""

    resources: tuple[ResourceSpec, ...] = ()
    source: str | None = None
    skipped: tuple[str, ...] = ()  # one explanation per KubeVirt entry hostdev leaves alone

    @property
    def serves_all_vfio(self) -> bool:
        """True for the no-config default."""
        return self.source is None


DEFAULT_CONFIG = Config()
