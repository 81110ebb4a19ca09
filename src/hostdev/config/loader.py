"""Loading a config file once into a frozen `Config`; every problem becomes one ConfigError
naming the file, the field (as a path like `resources[0].selectors[1].address`) and the reason.

Accepted shapes: a hostdev file (`resources:`, `permittedHostDevices:`, `kubevirtEntries:`), or
a KubeVirt / HyperConverged CR whose `spec.configuration.permittedHostDevices` (KubeVirt) or
`spec.permittedHostDevices` (HyperConverged) is read and everything else ignored. USB lists
(`usb`, `usbHostDevices`) and HyperConverged entries with `disabled: true` are skipped, each
with a reason; `disabled` inside a KubeVirt CR is an error (KubeVirt would drop it).

KubeVirt entries rule: hostdev serves only entries with `externalResourceProvider: true`;
KubeVirt's own virt-handler serves the others, and registering them twice would make the two
plugins replace each other at the kubelet; for the same reason no native resource or external
entry may take the name of an entry KubeVirt serves. `kubevirtEntries: all` (or
`--kubevirt-entries all`) serves every entry, for nodes where KubeVirt's device manager is not
running.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from hostdev.config import patterns
from hostdev.config.model import (
    Config,
    KubeVirtEntries,
    ResourceKind,
    ResourceOptions,
    ResourceSpec,
    Selector,
)
from hostdev.config.patterns import AddressMatcher
from hostdev.config.schema import FileSchema, PermittedHostDevicesSchema, ResourceSchema
from hostdev.config.yamlfile import read_yaml_file
from hostdev.errors import ConfigError
from hostdev.kubelet.envs import env_suffix
from hostdev.mdev_plan import MdevConfig, parse_mdev_config
from hostdev.selectors_sriov import NeutronExclusions, parse_nova_whitelist
from hostdev.sriov_apply import parse_sriov_specs

log = logging.getLogger(__name__)
_TYPE_TAG = re.compile(r"^(str|int|bool|float|dict\[.*\]|list\[.*\]|literal\[.*\])$", re.I)
_KUBEVIRT_CR_PATH = ("spec", "configuration", "permittedHostDevices")
_CR_PATHS = (_KUBEVIRT_CR_PATH, ("spec", "permittedHostDevices"))


def load_config(path: str | Path, *, kubevirt_entries: KubeVirtEntries | None = None) -> Config:
    """Read, validate and convert one config file (raises ConfigError)."""
    file = str(path)
    document = _read_yaml(file)
    prefix, document = _unwrap_custom_resource(file, document)
    try:
        schema = FileSchema.model_validate(document)
    except ValidationError as err:
        raise _config_error(file, prefix, err) from None
    if prefix == _KUBEVIRT_CR_PATH and schema.permittedHostDevices is not None:
        _check_no_disabled(file, ".".join(prefix), schema.permittedHostDevices)
    entries = kubevirt_entries or schema.kubevirtEntries
    resources = [_native(r, f"resources[{i}]") for i, r in enumerate(schema.resources)]
    block = _KubeVirtBlock()
    if schema.permittedHostDevices is not None:
        block_path = ".".join(prefix) or "permittedHostDevices"
        block = _kubevirt(schema.permittedHostDevices, block_path, entries)
        resources.extend(block.served)
    _check_unique(file, resources)
    _check_not_kubevirt_owned(file, resources, block.kubevirt_owned)
    _check_env_names(file, resources, block.kubevirt_owned)
    skipped = block.skipped
    for reason in skipped:
        log.info("%s: %s", file, reason)
    sriov = tuple(parse_sriov_specs(schema.sriov, file))
    mdevs = _mdev_config(file, schema.mdev_block(), schema.mediatedDevicesConfiguration is None)
    return Config(tuple(resources), file, tuple(skipped), sriov, mdevs)


def _mdev_config(file: str, block: dict[str, Any] | None, top_level: bool) -> MdevConfig | None:
    """The mediated-device section, with its fields named from the top of the file."""
    if block is None:
        return None
    try:
        return parse_mdev_config({"mediatedDevicesConfiguration": block}, file)
    except ConfigError as err:
        prefix = "" if top_level else "mediatedDevicesConfiguration"
        field = ".".join(p for p in (prefix, err.field) if p)
        raise ConfigError(file, field, err.reason) from None


def _read_yaml(file: str) -> Any:
    document = read_yaml_file(file)
    if not isinstance(document, dict):
        raise ConfigError(file, "", "expected a mapping at the top level")
    return document


def _unwrap_custom_resource(file: str, document: dict[str, Any]) -> tuple[tuple[str, ...], Any]:
    """For a KubeVirt/HyperConverged CR, keep only its permittedHostDevices block."""
    if "spec" not in document or not ({"kind", "apiVersion"} & document.keys()):
        return (), document
    for path in _CR_PATHS:
        node: Any = document
        for key in path:
            node = node.get(key) if isinstance(node, dict) else None
        if node is not None:
            parent = document
            for key in path[:-1]:
                parent = parent[key]
            mdevs = parent.get("mediatedDevicesConfiguration")
            extra = {} if mdevs is None else {"mediatedDevicesConfiguration": mdevs}
            return path, {"permittedHostDevices": node, **extra}
    kind = document.get("kind", "custom resource")
    raise ConfigError(
        file,
        "spec",
        f"this {kind} has no spec.configuration.permittedHostDevices or spec.permittedHostDevices",
    )


def _config_error(file: str, prefix: tuple[str, ...], err: ValidationError) -> ConfigError:
    first = err.errors()[0]
    loc = [p for p in first["loc"] if not (isinstance(p, str) and _TYPE_TAG.match(p))]
    if prefix and loc and loc[0] == "permittedHostDevices":
        loc = [*prefix, *loc[1:]]
    field = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")
    kind = first["type"]
    if kind == "extra_forbidden":
        reason = "unknown key"
    elif kind == "missing":
        reason = "required"
    else:
        reason = str(first["msg"]).removeprefix("Value error, ")
    return ConfigError(file, field, reason)


def _native(schema: ResourceSchema, origin: str) -> ResourceSpec:
    selectors = tuple(_selector(s) for s in schema.selectors)
    kind: ResourceKind = "mdev" if any(s.mdev_name for s in selectors) else "pci"
    excludes = tuple(e for text in schema.exclude for e in patterns.parse_exclusion(text))
    options = ResourceOptions(tuple(dict.fromkeys(schema.env)), schema.bind, schema.reset)
    neutron = (
        None if schema.exclude_devices is None else NeutronExclusions.parse(schema.exclude_devices)
    )
    return ResourceSpec(schema.name, kind, selectors, excludes, options, origin, neutron)


def _selector(schema: Any) -> Selector:
    address = schema.address
    matcher: AddressMatcher | None = None
    if isinstance(address, str):
        matcher = patterns.parse_address_glob(address)
    elif address is not None:
        matcher = patterns.parse_address_regex(address)
    return Selector(
        vendor=schema.vendor,
        device=schema.device,
        address=matcher,
        class_prefix=schema.class_,
        subsystem=schema.subsystem,
        driver=schema.driver,
        pf_names=schema.pf_name or (),
        mdev_name=schema.mdev_name,
        nova=()
        if schema.nova_device_spec is None
        else parse_nova_whitelist(schema.nova_device_spec),
        pf_device=schema.pf_device,
    )


@dataclass
class _KubeVirtBlock:
    """What a permittedHostDevices block gives hostdev, and what it leaves to KubeVirt."""

    served: list[ResourceSpec] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    kubevirt_owned: dict[str, str] = field(default_factory=dict)  # name -> first entry's path


def _kubevirt(
    block: PermittedHostDevicesSchema, path: str, entries: KubeVirtEntries
) -> _KubeVirtBlock:
    result = _KubeVirtBlock()
    served: dict[tuple[str, ResourceKind], ResourceSpec] = {}
    for entry, kind, selector, origin in _kubevirt_entries(block, path):
        if entry.disabled:
            result.skipped.append(
                f"{origin}: skipping {entry.resource_name}: disabled (the HyperConverged "
                "operator passes no disabled entry on to KubeVirt, so nothing serves it)"
            )
            continue
        if not entry.external_resource_provider and entries == "external":
            result.skipped.append(
                f"{origin}: skipping {entry.resource_name}: KubeVirt serves it itself "
                "(externalResourceProvider is not true; kubevirtEntries: all "
                "overrides)"
            )
            result.kubevirt_owned.setdefault(entry.resource_name, origin)
            continue
        # KubeVirt lets several selectors feed one resourceName: merge them.
        earlier = served.get((entry.resource_name, kind))
        served[(entry.resource_name, kind)] = (
            ResourceSpec(entry.resource_name, kind, (selector,), origin=origin)
            if earlier is None
            else replace(earlier, selectors=(*earlier.selectors, selector))
        )
    for key in ("usb", "usbHostDevices"):
        if getattr(block, key):
            result.skipped.append(f"{path}.{key}: USB devices are not served by hostdev")
    result.served = list(served.values())
    return result


def _kubevirt_entries(
    block: PermittedHostDevicesSchema, path: str
) -> list[tuple[Any, ResourceKind, Selector, str]]:
    """Each entry of the block with its kind, its selector and its path in the file."""
    pci: list[tuple[Any, ResourceKind, Selector, str]] = [
        (e, "pci", Selector(device=e.selector), f"{path}.pciHostDevices[{i}]")
        for i, e in enumerate(block.pciHostDevices)
    ]
    mdev: list[tuple[Any, ResourceKind, Selector, str]] = [
        (e, "mdev", Selector(mdev_name=e.mdev_name_selector), f"{path}.mediatedDevices[{i}]")
        for i, e in enumerate(block.mediatedDevices)
    ]
    return pci + mdev


def _check_no_disabled(file: str, path: str, block: PermittedHostDevicesSchema) -> None:
    """`disabled` is a HyperConverged field: KubeVirt drops it and serves the entry anyway."""
    for key, entries in (
        ("pciHostDevices", block.pciHostDevices),
        ("mediatedDevices", block.mediatedDevices),
    ):
        for i, entry in enumerate(entries):
            if "disabled" in entry.model_fields_set:
                raise ConfigError(
                    file,
                    f"{path}.{key}[{i}].disabled",
                    "unknown key in a KubeVirt CR (a HyperConverged CR field; KubeVirt would "
                    "ignore it and permit the entry)",
                )


def _check_unique(file: str, resources: list[ResourceSpec]) -> None:
    seen: dict[str, str] = {}
    for spec in resources:
        if spec.name in seen:
            raise ConfigError(
                file, spec.origin, f"resource {spec.name} is already defined at {seen[spec.name]}"
            )
        seen[spec.name] = spec.origin


def _check_not_kubevirt_owned(
    file: str, resources: list[ResourceSpec], kubevirt_owned: dict[str, str]
) -> None:
    """A name KubeVirt's own plugin registers must not be registered by hostdev as well."""
    for spec in resources:
        owner = kubevirt_owned.get(spec.name)
        if owner is not None:
            raise ConfigError(
                file,
                spec.origin,
                f"resource {spec.name} is also listed at {owner}, which KubeVirt serves itself "
                "(externalResourceProvider is not true): two plugins registering one name "
                "replace each other at the kubelet",
            )


def _check_env_names(
    file: str, resources: list[ResourceSpec], kubevirt_owned: dict[str, str]
) -> None:
    """Two names turning into one env variable would hand virt-launcher the wrong devices."""
    seen: dict[str, tuple[str, str]] = {}  # env suffix -> (resource name, origin)
    named = [(spec.name, spec.origin) for spec in resources] + list(kubevirt_owned.items())
    for name, origin in named:
        suffix = env_suffix(name)
        earlier, earlier_origin = seen.setdefault(suffix, (name, origin))
        if earlier != name:
            raise ConfigError(
                file,
                origin,
                f"resource {name} and {earlier} (at {earlier_origin}) give the same KubeVirt "
                f"env variable ..._RESOURCE_{suffix}: virt-launcher could not tell their "
                "devices apart",
            )
