"""The config file's schema (pydantic v2): the native `resources:` form and KubeVirt's
`permittedHostDevices` block, exactly as users write them. Unknown keys are errors.

Validators only check (except `pfName`, parsed once here into its matchers); `loader.py` turns
the validated models into the frozen objects of `model.py`. New sections (nova whitelist
entries, `sriov:`, `mediatedDevices`) are added here as new optional fields of `FileSchema` and
converted in the loader.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)

from hostdev import selectors_sriov
from hostdev.config import patterns
from hostdev.config.patterns import PfMatcher
from hostdev.errors import ConfigError

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
# Booleans are StrictBool: pydantic would otherwise take "yes", "off", 1 or 0 for true/false.


def _is_blank(value: Any) -> bool:
    """An empty or all-space string, an empty list or an empty mapping."""
    if isinstance(value, str):
        return not value.strip()
    return isinstance(value, list | dict) and not value


def _has_blank_item(value: list[Any] | dict[Any, Any]) -> bool:
    items = value.values() if isinstance(value, dict) else value
    return any(_is_blank(item) for item in items)


def _pf_matchers(value: Any) -> Any:
    """pfName as written (one interface or a list of them) to its matchers."""
    if value is None:
        return None
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ValueError("expected an interface name or a list of them")
    return tuple(patterns.parse_pf_name(item) for item in items)


class SelectorSchema(BaseModel):
    """One selector of the native form; all fields given must match."""

    model_config = _STRICT

    vendor: str | None = None
    device: str | None = None
    address: str | dict[str, str] | None = None
    class_: str | None = Field(default=None, alias="class")
    subsystem: str | None = None
    driver: str | None = None
    # Parsed here, once: the loader takes the matchers as they are.
    pf_name: Annotated[tuple[PfMatcher, ...] | None, BeforeValidator(_pf_matchers)] = Field(
        default=None, alias="pfName"
    )
    mdev_name: str | None = Field(default=None, alias="mdevName")
    nova_device_spec: str | dict[str, Any] | list[dict[str, Any]] | None = Field(
        default=None, alias="novaDeviceSpec"
    )
    pf_device: str | None = Field(default=None, alias="pfDevice")

    @field_validator("*", mode="before")
    @classmethod
    def _not_blank(cls, value: Any) -> Any:
        # An empty value would drop the criterion and widen the selector to every device.
        if _is_blank(value) or (isinstance(value, list | dict) and _has_blank_item(value)):
            raise ValueError("may not be empty (leave the field out to match any device)")
        return value

    @field_validator("nova_device_spec")
    @classmethod
    def _nova(cls, value: Any) -> Any:
        if value is not None:
            try:
                selectors_sriov.parse_nova_whitelist(value)
            except ConfigError as err:
                where = err.field.removeprefix("deviceSpec")
                raise ValueError(
                    f"{where.lstrip('.') + ': ' if where else ''}{err.reason}"
                ) from None
        return value

    @field_validator("pf_device")
    @classmethod
    def _pf_device(cls, value: str | None) -> str | None:
        return None if value is None else patterns.parse_id_pair(value)

    @field_validator("vendor")
    @classmethod
    def _vendor(cls, value: str | None) -> str | None:
        return None if value is None else patterns.parse_id(value)

    @field_validator("device", "subsystem")
    @classmethod
    def _pair(cls, value: str | None) -> str | None:
        return None if value is None else patterns.parse_id_pair(value)

    @field_validator("class_")
    @classmethod
    def _class(cls, value: str | None) -> str | None:
        return None if value is None else patterns.parse_class(value)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str | dict[str, str] | None) -> str | dict[str, str] | None:
        if isinstance(value, str):
            patterns.parse_address_glob(value)
        elif value is not None:
            patterns.parse_address_regex(value)
        return value

    @model_validator(mode="after")
    def _not_empty_or_mixed(self) -> SelectorSchema:
        given = self.model_dump(exclude_none=True)
        if not given:
            raise ValueError("a selector needs at least one field")
        if self.mdev_name is not None and len(given) > 1:
            raise ValueError("mdevName cannot be combined with PCI fields in one selector")
        return self


class ResourceSchema(BaseModel):
    """One entry of the native `resources:` list."""

    model_config = _STRICT

    name: str
    selectors: list[SelectorSchema] = Field(min_length=1)
    exclude: list[str] = []
    exclude_devices: str | None = Field(default=None, alias="excludeDevices")
    env: list[Literal["kubevirt", "sriov"]] = Field(default=["kubevirt"], min_length=1)
    bind: Literal["none", "onStart"] = "none"
    reset: StrictBool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return patterns.check_resource_name(value)

    @field_validator("exclude_devices")
    @classmethod
    def _exclude_devices(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                selectors_sriov.NeutronExclusions.parse(value)
            except ConfigError as err:
                raise ValueError(err.reason) from None
        return value

    @field_validator("exclude")
    @classmethod
    def _exclude(cls, value: list[str]) -> list[str]:
        for item in value:
            patterns.parse_exclusion(item)
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> ResourceSchema:
        kinds = {s.mdev_name is not None for s in self.selectors}
        if len(kinds) > 1:
            raise ValueError("a resource selects either PCI devices or mdevs, not both")
        return self


class PciHostDeviceSchema(BaseModel):
    """A `pciHostDevices` entry: KubeVirt's (pciVendorSelector) or HyperConverged's
    (pciDeviceSelector, and `disabled`)."""

    model_config = _STRICT

    pci_vendor_selector: str | None = Field(default=None, alias="pciVendorSelector")
    pci_device_selector: str | None = Field(default=None, alias="pciDeviceSelector")
    resource_name: str = Field(alias="resourceName")
    external_resource_provider: StrictBool = Field(default=False, alias="externalResourceProvider")
    disabled: StrictBool = False  # HyperConverged only: the entry is not passed on to KubeVirt

    @field_validator("pci_vendor_selector", "pci_device_selector")
    @classmethod
    def _pair(cls, value: str | None) -> str | None:
        if value is not None and "*" in value:
            raise ValueError(f"{value!r}: KubeVirt selectors take no wildcards")
        return None if value is None else patterns.parse_id_pair(value)

    @field_validator("resource_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return patterns.check_resource_name(value)

    @model_validator(mode="after")
    def _one_selector(self) -> PciHostDeviceSchema:
        if (self.pci_vendor_selector is None) == (self.pci_device_selector is None):
            raise ValueError("give exactly one of pciVendorSelector or pciDeviceSelector")
        return self

    @property
    def selector(self) -> str:
        """The vendor:device pair, whichever key carried it."""
        return self.pci_vendor_selector or self.pci_device_selector or ""


class MediatedDeviceSchema(BaseModel):
    """A `mediatedDevices` entry (KubeVirt's, or HyperConverged's with `disabled`)."""

    model_config = _STRICT

    mdev_name_selector: str = Field(alias="mdevNameSelector", min_length=1)
    resource_name: str = Field(alias="resourceName")
    external_resource_provider: StrictBool = Field(default=False, alias="externalResourceProvider")
    disabled: StrictBool = False  # HyperConverged only

    @field_validator("mdev_name_selector")
    @classmethod
    def _mdev_name(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("may not be empty")
        return value

    @field_validator("resource_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return patterns.check_resource_name(value)


class PermittedHostDevicesSchema(BaseModel):
    """KubeVirt's `permittedHostDevices` block, as found in the KubeVirt or HyperConverged CR."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pciHostDevices: list[PciHostDeviceSchema] = []
    mediatedDevices: list[MediatedDeviceSchema] = []
    # USB lists (KubeVirt's `usb`, HyperConverged's `usbHostDevices`) are accepted so that a
    # pasted block validates; hostdev never serves them.
    usb: list[dict[str, object]] = []
    usbHostDevices: list[dict[str, object]] = []


class FileSchema(BaseModel):
    """A hostdev config file: native resources, a KubeVirt block, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resources: list[ResourceSchema] = []
    permittedHostDevices: PermittedHostDevicesSchema | None = None
    kubevirtEntries: Literal["external", "all"] = "external"
    sriov: list[Any] | None = None  # checked by hostdev.sriov_apply.parse_sriov_specs
    mediatedDevicesConfiguration: dict[str, Any] | None = None  # by mdev_plan.parse_mdev_config
    # The same block's keys may also stand at the top level of a hostdev file.
    mediatedDevicesTypes: list[Any] | None = None
    mediatedDeviceTypes: list[Any] | None = None
    nodeMediatedDeviceTypes: list[Any] | None = None

    @model_validator(mode="after")
    def _something(self) -> FileSchema:
        provisions = self.sriov is not None or self.mdev_block() is not None
        if not self.resources and self.permittedHostDevices is None and not provisions:
            raise ValueError("the file defines no resources and no permittedHostDevices")
        if self.mediatedDevicesConfiguration is not None and self.top_level_mdev_keys():
            raise ValueError(
                "give the mediated device types either at the top level or under "
                "mediatedDevicesConfiguration, not both"
            )
        return self

    def top_level_mdev_keys(self) -> dict[str, Any]:
        """mediatedDevicesTypes / mediatedDeviceTypes / nodeMediatedDeviceTypes given at the top."""
        keys = ("mediatedDevicesTypes", "mediatedDeviceTypes", "nodeMediatedDeviceTypes")
        return {k: getattr(self, k) for k in keys if getattr(self, k) is not None}

    def mdev_block(self) -> dict[str, Any] | None:
        """The mediated-device block, wherever the file put it."""
        return self.mediatedDevicesConfiguration or self.top_level_mdev_keys() or None
