"""`hostdev render kubevirt`: the permittedHostDevices block an admin adds to the KubeVirt CR
(`spec.configuration.permittedHostDevices`) or, with `--for hyperconverged`, to the
HyperConverged CR (`spec.permittedHostDevices`) for what hostdev serves on this host. Every
entry has externalResourceProvider: true, so KubeVirt starts no plugin of its own for these
names but still admits VMs that ask for them.

The two CRs differ: KubeVirt's PCI entries take `pciVendorSelector`, HyperConverged's take
`pciDeviceSelector`, and HyperConverged keys its lists by the selector (`pciDeviceSelector`,
`mdevNameSelector`), so one selector may appear there only once.
"""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any, Literal

import yaml

from hostdev.cli.common import add_host_flags, load_host
from hostdev.cli.serve import add_config_flags, config_from_args
from hostdev.errors import BadInputError
from hostdev.host.model import Host
from hostdev.selection import Resource, select

Target = Literal["kubevirt", "hyperconverged"]
PCI_SELECTOR_KEY: dict[Target, str] = {
    "kubevirt": "pciVendorSelector",
    "hyperconverged": "pciDeviceSelector",
}


def add_parser(kinds: Any) -> None:
    """Add `render kubevirt` to the render command group."""
    kubevirt = kinds.add_parser(
        "kubevirt", help="the permittedHostDevices block of the KubeVirt or HyperConverged CR"
    )
    kubevirt.add_argument(
        "--for",
        dest="target",
        choices=tuple(PCI_SELECTOR_KEY),
        default="kubevirt",
        help="the CR the block goes into (default kubevirt; hyperconverged for OpenShift "
        "Virtualization / HCO, whose PCI entries take pciDeviceSelector)",
    )
    add_config_flags(kubevirt)
    add_host_flags(kubevirt)
    kubevirt.set_defaults(handler=run_kubevirt)


def permitted_host_devices(
    host: Host, resources: tuple[Resource, ...], target: Target = "kubevirt"
) -> dict[str, Any]:
    """The block for the given resources: one entry per vendor:device or mdev type served."""
    pci: list[dict[str, Any]] = []
    mdev: list[dict[str, Any]] = []
    for resource in resources:
        if resource.kind == "mdev":
            mdev.extend(
                _entry("mdevNameSelector", n, resource) for n in _mdev_types(host, resource)
            )
            continue
        pairs = dict.fromkeys(host.devices[d.address].vendor_device for d in resource.devices)
        pci.extend(_entry(PCI_SELECTOR_KEY[target], p.upper(), resource) for p in pairs)
    if target == "hyperconverged":
        _check_unique_selectors(pci, PCI_SELECTOR_KEY[target])
        _check_unique_selectors(mdev, "mdevNameSelector")
    block: dict[str, Any] = {}
    if pci:
        block["pciHostDevices"] = pci
    if mdev:
        block["mediatedDevices"] = mdev
    return {"permittedHostDevices": block}


def _mdev_types(host: Host, resource: Resource) -> list[str]:
    types = {m.uuid: m.type_name for m in host.mdevs}
    return list(dict.fromkeys(types[d.id] for d in resource.devices if d.id in types))


def _entry(selector_key: str, selector: str, resource: Resource) -> dict[str, Any]:
    return {
        selector_key: selector,
        "resourceName": resource.name,
        "externalResourceProvider": True,
    }


def _check_unique_selectors(entries: list[dict[str, Any]], key: str) -> None:
    """The HyperConverged CR rejects two entries with one selector (its list-map key)."""
    counts = Counter(e[key] for e in entries)
    for selector, count in counts.items():
        if count > 1:
            names = ", ".join(e["resourceName"] for e in entries if e[key] == selector)
            raise BadInputError(
                f"the HyperConverged CR lists each {key} once, but {selector} is served as "
                f"{names}: give those resources distinct devices, or use the KubeVirt CR"
            )


def run_kubevirt(args: argparse.Namespace) -> int:
    """Print the block for what `hostdev serve` would serve here."""
    config = config_from_args(args)
    _, host = load_host(args)
    block = permitted_host_devices(host, select(host, config), args.target)
    print(yaml.safe_dump(block, sort_keys=False), end="")
    return 0
