"""`hostdev status`: resources, devices with their state and the pod holding each.

Works without a running daemon: scans the host, reads the config and asks PodResources.
When PodResources cannot be reached the report says so and the pod columns stay empty.
"""

from __future__ import annotations

import argparse
import sys

from hostdev.cli.common import add_host_flags, load_host
from hostdev.cli.output import add_output_flag, dump, table
from hostdev.cli.serve import add_config_flags, config_from_args
from hostdev.health import Signals
from hostdev.host.signals import read_aer_fatal, vfio_group_nodes
from hostdev.kubelet import constants
from hostdev.status import NodeStatus, aer_addresses, node_status, status_document


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the status command."""
    parser = subparsers.add_parser(
        "status", help="served resources, device states and the pods holding them"
    )
    add_config_flags(parser)
    add_host_flags(parser)
    parser.add_argument(
        "--pod-resources-socket",
        default=constants.POD_RESOURCES_SOCKET,
        help=f"kubelet PodResources socket (default {constants.POD_RESOURCES_SOCKET})",
    )
    add_output_flag(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Print the node's status; 0 even when PodResources is unreachable (it is reported)."""
    from hostdev.kubelet.podlist import (  # imported late: it pulls in gRPC
        PodResourcesUnavailable,
        by_device,
        list_pod_devices_sync,
    )

    config = config_from_args(args)
    fs, host = load_host(args)
    signals = Signals(read_aer_fatal(fs, aer_addresses(host, config)), vfio_group_nodes(fs))
    try:
        held, error = by_device(list_pod_devices_sync(args.pod_resources_socket)), None
    except PodResourcesUnavailable as err:
        held, error = None, str(err)
    status = node_status(host, config, signals, held, error)
    if args.output in ("json", "yaml"):
        dump(status_document(status), args.output)
    else:
        print_tables(status, wide=args.output == "wide")
    return 0


def print_tables(status: NodeStatus, *, wide: bool) -> None:
    """The resource summary, then one row per device."""
    table(
        ["resource", "capacity", "allocatable", "allocated"],
        [
            [r.name, str(len(r.devices)), str(r.count("healthy", "allocated")),
             str(r.count("allocated"))]
            for r in status.resources
        ],
    )  # fmt: skip
    print()
    headers = ["resource", "device", "state", "pod", "container"]
    if wide:
        headers += ["numa", "group", "aer-fatal", "reason"]
    rows = []
    for resource in status.resources:
        for d in resource.devices:
            row = [resource.name, d.id, d.state, d.holder.pod_ref if d.holder else "-",
                   d.holder.container if d.holder else "-"]  # fmt: skip
            if wide:
                row += [_text(d.numa_node), _text(d.iommu_group), _text(d.aer_fatal),
                        d.reason or "-"]  # fmt: skip
            elif d.reason:
                row[2] = f"{d.state} ({d.reason})"
            rows.append(row)
    table(headers, rows)
    if status.pod_resources_error:
        print(f"note: {status.pod_resources_error}; pod columns unknown", file=sys.stderr)


def _text(value: int | None) -> str:
    return "-" if value is None else str(value)
