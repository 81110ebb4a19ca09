"""`hostdev mdev`: list types and mdevs, create and remove mdevs, apply a declarative config."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import TYPE_CHECKING, Any

from hostdev.cli.common import add_host_flags, load_host
from hostdev.cli.output import add_output_flag, dump, table
from hostdev.cli.writing import add_dry_run_flag, writer_for
from hostdev.config.yamlfile import read_yaml_file
from hostdev.host.model import Host
from hostdev.host.writer import RecordingWriter
from hostdev.kubelet.constants import POD_RESOURCES_SOCKET

if TYPE_CHECKING:
    from hostdev.mdev import InUse

# The mdev modules (and grpc, ssl) load when a subcommand runs, so every command starts fast.

log = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    """Add `mdev types|list|create|remove|apply`."""
    parser = subparsers.add_parser("mdev", help="mediated devices (vGPU): types, create, remove")
    sub = parser.add_subparsers(dest="mdev_command", metavar="SUBCOMMAND", required=True)
    types = sub.add_parser("types", help="mdev types per parent card, with free instances")
    listing = sub.add_parser("list", help="existing mdevs")
    for cmd, handler in ((types, run_types), (listing, run_list)):
        add_output_flag(cmd)
        add_host_flags(cmd)
        cmd.set_defaults(handler=handler)
    create = sub.add_parser("create", help="create one mdev of a type on a parent card")
    create.add_argument("parent", metavar="PARENT", help="parent PCI address (0000:3b:00.0)")
    create.add_argument("type", metavar="TYPE", help="type id (nvidia-231) or name (GRID T4-2Q)")
    create.add_argument("--uuid", help="the new mdev's UUID (default: a random one)")
    remove = sub.add_parser("remove", help="remove an mdev (refused while a pod holds it)")
    remove.add_argument("uuid", metavar="UUID")
    apply = sub.add_parser("apply", help="create/remove mdevs to match a declarative config")
    apply.add_argument(
        "--config",
        required=True,
        metavar="FILE",
        help="YAML with mediatedDevicesTypes / nodeMediatedDeviceTypes",
    )
    apply.add_argument(
        "--node-labels",
        metavar="FILE",
        help="this node's labels (YAML/JSON map); default: the API in a cluster",
    )
    for cmd, handler in ((create, run_create), (remove, run_remove), (apply, run_apply)):
        add_dry_run_flag(cmd)
        add_host_flags(cmd)
        cmd.set_defaults(handler=handler)
    for cmd in (remove, apply):
        cmd.add_argument(
            "--pod-resources-socket",
            metavar="PATH",
            help="kubelet PodResources socket, to refuse removing allocated mdevs "
            f"(default {POD_RESOURCES_SOCKET} when it exists)",
        )


def run_types(args: argparse.Namespace) -> int:
    """Print each parent's types: id, name, free instances, device API (wide: description)."""
    from hostdev import mdev

    _, host = load_host(args)
    document = mdev.types_document(host)
    if args.output in ("json", "yaml"):
        dump(document, args.output)
        return 0
    if not document["parents"]:
        print("no device offers mediated device types")
        return 0
    headers = ["PARENT", "TYPE", "NAME", "AVAILABLE", "DEVICE API"]
    wide = args.output == "wide"
    rows = []
    for parent in document["parents"]:
        for t in parent["types"]:
            row = [
                parent["address"],
                t["type_id"],
                t["name"],
                str(t["available_instances"]),
                t["device_api"] or "-",
            ]
            rows.append([*row, t["description"] or "-"] if wide else row)
    table([*headers, "DESCRIPTION"] if wide else headers, rows)
    return 0


def run_list(args: argparse.Namespace) -> int:
    """Print the existing mdevs."""
    from hostdev import mdev

    _, host = load_host(args)
    document = mdev.mdevs_document(host)
    if args.output in ("json", "yaml"):
        dump(document, args.output)
        return 0
    if not document["mdevs"]:
        print("no mediated devices")
        return 0
    table(
        ["UUID", "TYPE", "NAME", "PARENT", "IOMMU GROUP"],
        [
            [
                m["uuid"],
                m["type_id"],
                m["type_name"],
                m["parent"],
                "-" if m["iommu_group"] is None else str(m["iommu_group"]),
            ]
            for m in document["mdevs"]
        ],
    )
    return 0


def run_create(args: argparse.Namespace) -> int:
    """Create one mdev; print its UUID."""
    from hostdev import mdev

    fs, host = load_host(args)
    action = mdev.plan_create(host, args.parent, args.type, args.uuid)
    writer = writer_for(args)
    mdev.execute(fs, writer, [action])
    if isinstance(writer, RecordingWriter):
        _print_writes(writer)
        return 0
    print(f"created {action.uuid} ({action.type_id}) on {action.parent}")
    return 0


def run_remove(args: argparse.Namespace) -> int:
    """Remove one mdev unless a pod holds it."""
    from hostdev import mdev

    fs, host = load_host(args)
    action = mdev.plan_remove(host, args.uuid, _in_use(args))
    writer = writer_for(args)
    mdev.execute(fs, writer, [action])
    if isinstance(writer, RecordingWriter):
        _print_writes(writer)
        return 0
    print(f"removed {action.uuid} ({action.type_id}) from {action.parent}")
    return 0


def _in_use(args: argparse.Namespace) -> InUse:
    """The allocation check: PodResources when a socket is given or present, else none."""
    from hostdev import mdev
    from hostdev.allocated import in_use_checker

    socket = args.pod_resources_socket
    if socket is None and os.path.exists(POD_RESOURCES_SOCKET):
        socket = POD_RESOURCES_SOCKET
    if socket is None:
        print(
            "warning: allocation not checked: no PodResources socket (give "
            "--pod-resources-socket on a Kubernetes node)",
            file=sys.stderr,
        )
        return mdev.never_in_use
    return in_use_checker(socket)


def run_apply(args: argparse.Namespace) -> int:
    """Bring this node's mdevs to the config; exit 1 when something could not be done."""
    from hostdev import mdev, mdev_plan

    config = mdev_plan.parse_mdev_config(read_yaml_file(args.config), args.config)
    labels = _labels(args)
    wanted = mdev_plan.desired_types(config, labels)
    fs, host = load_host(args)
    in_use = _in_use(args)
    print(f"wanted types: {', '.join(wanted) if wanted else '(none: unwanted mdevs go)'}")
    if args.dry_run:
        return _apply_dry_run(host, wanted, in_use)
    report = mdev_plan.apply_mdevs(fs, writer_for(args), wanted, in_use)
    for action in report.done:
        print(mdev.describe(action))
    for note in report.notes:
        print(f"note: {note}")
    for problem in report.problems:
        print(f"error: {problem}", file=sys.stderr)
    print(f"{len(report.done)} change(s), {len(report.problems)} problem(s)")
    return 1 if report.problems else 0


def _apply_dry_run(host: Host, wanted: tuple[str, ...], in_use: InUse) -> int:
    from hostdev import mdev, mdev_plan

    plan = mdev_plan.plan_mdevs(host, wanted, in_use)
    for card, type_id in sorted(plan.assignments.items()):
        print(f"{card}: {type_id}")
    for action in plan.actions:
        print(f"would {mdev.describe(action)}")
    for note in plan.notes:
        print(f"note: {note}")
    for problem in plan.problems:
        print(f"error: {problem}", file=sys.stderr)
    if not plan.actions:
        print("nothing to do")
    return 1 if plan.problems else 0


def _labels(args: argparse.Namespace) -> dict[str, str]:
    from hostdev import nodelabels

    labels = nodelabels.node_labels(args.node_labels, os.environ)
    if labels is None:
        print(
            "note: no node labels (no --node-labels, not in a cluster): "
            "nodeMediatedDeviceTypes entries do not apply",
            file=sys.stderr,
        )
        return {}
    return labels


def _print_writes(writer: RecordingWriter) -> None:
    for path, value in writer.writes:
        print(f"would write {value!r} to {path}")
