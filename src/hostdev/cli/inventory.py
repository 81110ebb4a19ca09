"""`hostdev list`: the host's PCI functions as passthrough decisions need them (like lspci -nnk).

The JSON document ({"devices": [...], "skipped": [...]}) is a stable interface, documented in
the README; add keys, never rename or remove them.
"""

from __future__ import annotations

import argparse
import fnmatch
import sys
from typing import Any

from hostdev.cli.common import add_host_flags, load_host
from hostdev.cli.output import add_output_flag, dump, table
from hostdev.config.patterns import id_matches, parse_id_pair
from hostdev.errors import BadInputError
from hostdev.host.model import Host, PciDevice
from hostdev.host.pciids import PciIds, load_pci_ids, system_pci_ids
from hostdev.host.readiness import readiness


def register(subparsers: Any) -> None:
    """Add `hostdev list`."""
    parser = subparsers.add_parser("list", help="list PCI functions and their passthrough state")
    add_host_flags(parser)
    add_output_flag(parser)
    add_pci_ids_flag(parser)
    parser.add_argument(
        "--selector",
        action="append",
        default=[],
        help="vendor:device, e.g. 10de:1eb8 or 10de:* (repeatable)",
    )
    parser.add_argument("--address", help="PCI address glob, e.g. '0000:65:*'")
    parser.add_argument("--driver", help="bound driver name, or 'none'")
    parser.set_defaults(handler=run_list)


def add_pci_ids_flag(parser: argparse.ArgumentParser) -> None:
    """--pci-ids FILE (default: the system's pci.ids)."""
    parser.add_argument("--pci-ids", help="pci.ids file (default: /usr/share/misc/pci.ids ...)")


def pci_names(explicit: str | None) -> PciIds:
    """Names from --pci-ids (unreadable: BadInputError), else from the system's pci.ids
    (unreadable: a warning on stderr and hex IDs)."""
    if explicit:
        return load_pci_ids(explicit)
    return system_pci_ids(lambda message: print(f"warning: {message}", file=sys.stderr))


def id_filter(selectors: list[str]) -> list[str]:
    """Parse vendor:device selectors (the config's ID language, `*` allowed); BadInputError
    on a malformed one."""
    try:
        return [parse_id_pair(text) for text in selectors]
    except ValueError as err:
        raise BadInputError(f"invalid selector: {err}") from None


def matches(dev: PciDevice, ids: list[str], address: str | None, driver: str | None) -> bool:
    """Whether a device passes the list filters."""
    if ids and not any(id_matches(pattern, dev.vendor_device) for pattern in ids):
        return False
    if address and not fnmatch.fnmatchcase(str(dev.address), address.lower()):
        return False
    return driver is None or (dev.driver or "none") == driver


def run_list(args: argparse.Namespace) -> int:
    """Print the filtered device list in the requested format."""
    ids = id_filter(args.selector)
    _, host = load_host(args)
    names = pci_names(args.pci_ids)
    devices = [d for d in host.sorted_devices() if matches(d, ids, args.address, args.driver)]
    if args.output in ("json", "yaml"):
        dump(
            {
                "devices": [device_document(host, d, names) for d in devices],
                "skipped": [{"name": s.name, "reason": s.reason} for s in host.skipped],
            },
            args.output,
        )
    else:
        print_table(host, devices, names, wide=args.output == "wide")
    return 0


def device_document(host: Host, dev: PciDevice, names: PciIds) -> dict[str, Any]:
    """The stable JSON object of one device."""
    group = host.group_of(dev.address)
    ready = readiness(host, dev)
    return {
        "address": str(dev.address),
        "vendor": dev.vendor,
        "device": dev.device,
        "subsystem_vendor": dev.subsystem_vendor,
        "subsystem_device": dev.subsystem_device,
        "class": dev.class_code,
        "class_name": names.class_name(dev.class_code),
        "revision": dev.revision,
        "vendor_name": names.vendor_name(dev.vendor),
        "device_name": names.device_name(dev.vendor, dev.device),
        "driver": dev.driver,
        "driver_override": dev.driver_override,
        "iommu_group": dev.iommu_group,
        "iommu_group_members": [str(a) for a in group.members if a != dev.address] if group else [],
        "numa_node": dev.numa_node,
        "is_bridge": dev.is_bridge,
        "physfn": str(dev.physfn) if dev.physfn else None,
        "vf_index": dev.vf_index,
        "sriov": {"total_vfs": dev.sriov.total_vfs, "num_vfs": dev.sriov.num_vfs}
        if dev.sriov
        else None,
        "vfs": [str(a) for a in dev.sriov.vfs] if dev.sriov else [],
        "netdevs": list(dev.netdevs),
        "vfio_cdev": dev.vfio_cdev,
        "mdev_types": [
            {"type_id": t.type_id, "name": t.name, "available_instances": t.available_instances}
            for t in dev.mdev_types
        ],
        "readiness": {"state": ready.state, "reason": ready.reason},
        "problems": list(dev.problems),
    }


def sriov_role(dev: PciDevice) -> str:
    """ "PF 7/7", "VF 3 of 0000:04:00.1" or "-"."""
    if dev.sriov is not None and dev.sriov.total_vfs:
        return f"PF {dev.sriov.num_vfs}/{dev.sriov.total_vfs}"
    if dev.physfn is not None:
        index = "?" if dev.vf_index is None else str(dev.vf_index)
        return f"VF {index} of {dev.physfn}"
    return "-"


def group_cell(host: Host, dev: PciDevice) -> str:
    """ "11", "15 (+1)" with the number of other members, or "-"."""
    group = host.group_of(dev.address)
    if group is None:
        return "-"
    others = len(group.members) - 1
    return f"{group.number} (+{others})" if others else str(group.number)


def print_table(host: Host, devices: list[PciDevice], names: PciIds, *, wide: bool) -> None:
    """The human table; -o wide adds subsystem, override, vfio cdev and the PCIe path."""
    headers = ["ADDRESS", "CLASS", "DEVICE", "DRIVER", "IOMMU", "NUMA", "SR-IOV", "NETDEV", "READY"]
    if wide:
        headers += ["SUBSYSTEM", "OVERRIDE", "VFIO-DEV", "PATH", "REASON"]
    rows = []
    for dev in devices:
        ready = readiness(host, dev)
        row = [
            str(dev.address),
            names.class_name(dev.class_code),
            f"{names.describe(dev.vendor, dev.device)} [{dev.vendor_device}]",
            dev.driver or "-",
            group_cell(host, dev),
            "-" if dev.numa_node is None else str(dev.numa_node),
            sriov_role(dev),
            ",".join(dev.netdevs) or "-",
            ready.state,
        ]
        if wide:
            row += [
                f"{dev.subsystem_vendor}:{dev.subsystem_device}",
                dev.driver_override or "-",
                dev.vfio_cdev or "-",
                "/".join(dev.pci_path) or "-",
                ready.reason,
            ]
        rows.append(row)
    table(headers, rows)
