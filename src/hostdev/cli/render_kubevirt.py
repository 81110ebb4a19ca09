"""`hostdev render kubevirt`: the permittedHostDevices block an admin adds to the KubeVirt or
HyperConverged CR for what hostdev serves on this host (externalResourceProvider: true, so
KubeVirt starts no plugin of its own for these names but still admits VMs that ask for them).
"""

from __future__ import annotations

import argparse
from typing import Any

import yaml

from hostdev.cli.common import add_host_flags, load_host
from hostdev.cli.serve import add_config_flags, config_from_args
from hostdev.host.model import Host
from hostdev.selection import Resource, select


def add_parser(kinds: Any) -> None:
    """Add `render kubevirt` to the render command group."""
    kubevirt = kinds.add_parser("kubevirt", help="KubeVirt permittedHostDevices block")
    add_config_flags(kubevirt)
    add_host_flags(kubevirt)
    kubevirt.set_defaults(handler=run_kubevirt)


def permitted_host_devices(host: Host, resources: tuple[Resource, ...]) -> dict[str, Any]:
    """The block for the given resources: one entry per vendor:device or mdev type served."""
    pci: list[dict[str, Any]] = []
    mdev: list[dict[str, Any]] = []
    for resource in resources:
        if resource.kind == "mdev":
            types = {m.uuid: m.type_name for m in host.mdevs}
            for name in dict.fromkeys(types[d.id] for d in resource.devices if d.id in types):
                mdev.append(
                    {
                        "mdevNameSelector": name,
                        "resourceName": resource.name,
                        "externalResourceProvider": True,
                    }
                )
            continue
        pairs = (host.devices[d.address].vendor_device for d in resource.devices)
        for pair in dict.fromkeys(pairs):
            pci.append(
                {
                    "pciVendorSelector": pair.upper(),
                    "resourceName": resource.name,
                    "externalResourceProvider": True,
                }
            )
    block: dict[str, Any] = {}
    if pci:
        block["pciHostDevices"] = pci
    if mdev:
        block["mediatedDevices"] = mdev
    return {"permittedHostDevices": block}


def run_kubevirt(args: argparse.Namespace) -> int:
    """Print the block for what `hostdev serve` would serve here."""
    config = config_from_args(args)
    _, host = load_host(args)
    resources = select(host, config)
    print(yaml.safe_dump(permitted_host_devices(host, resources), sort_keys=False), end="")
    return 0
