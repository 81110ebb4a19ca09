"""The config file's schema (pydantic v2): the native `resources:` form and KubeVirt's
`permittedHostDevices` block, exactly as users write them. Unknown keys are errors.

Validators only check; `loader.py` turns the validated models into the frozen objects of
`model.py`. New sections (nova whitelist entries, `sriov:`, `mediatedDevices`) are added here
as new optional fields of `FileSchema` and converted in the loader.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hostdev.config import patterns

_STRICT = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SelectorSchema(BaseModel):
    """One selector of the native form; all fields given must match."""

    model_config = _STRICT

    vendor: str | None = None
    device: str | None = None
    address: str | dict[str, str] | None = None
    class_: str | None = Field(default=None, alias="class")
    subsystem: str | None = None
    driver: str | None = None
    pf_name: str | list[str] | None = Field(default=None, alias="pfName")
    mdev_name: str | None = Field(default=None, alias="mdevName")

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

    @field_validator("pf_name")
    @classmethod
    def _pf_name(cls, value: str | list[str] | None) -> str | list[str] | None:
        for item in [value] if isinstance(value, str) else value or []:
            patterns.parse_pf_name(item)
        return value

    @field_validator("mdev_name")
    @classmethod
    def _mdev_name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("mdevName may not be empty")
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
    env: list[Literal["kubevirt", "sriov"]] = Field(default=["kubevirt"], min_length=1)
    bind: Literal["none", "onStart"] = "none"
    reset: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        return patterns.check_resource_name(value)

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
    """A KubeVirt `pciHostDevices` entry."""

    model_config = _STRICT

    pci_vendor_selector: str | None = Field(default=None, alias="pciVendorSelector")
    pci_device_selector: str | None = Field(default=None, alias="pciDeviceSelector")
    resource_name: str = Field(alias="resourceName")
    external_resource_provider: bool = Field(default=False, alias="externalResourceProvider")

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
    """A KubeVirt `mediatedDevices` entry."""

    model_config = _STRICT

    mdev_name_selector: str = Field(alias="mdevNameSelector", min_length=1)
    resource_name: str = Field(alias="resourceName")
    external_resource_provider: bool = Field(default=False, alias="externalResourceProvider")

    @field_validator("resource_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return patterns.check_resource_name(value)


class PermittedHostDevicesSchema(BaseModel):
    """KubeVirt's `permittedHostDevices` block, as found in the KubeVirt or HyperConverged CR."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    pciHostDevices: list[PciHostDeviceSchema] = []
    mediatedDevices: list[MediatedDeviceSchema] = []
    usb: list[dict[str, object]] = []  # accepted so a pasted block validates; never served


class FileSchema(BaseModel):
    """A hostdev config file: native resources, a KubeVirt block, or both."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    resources: list[ResourceSchema] = []
    permittedHostDevices: PermittedHostDevicesSchema | None = None
    kubevirtEntries: Literal["external", "all"] = "external"

    @model_validator(mode="after")
    def _something(self) -> FileSchema:
        if not self.resources and self.permittedHostDevices is None:
            raise ValueError("the file defines no resources and no permittedHostDevices")
        return self
