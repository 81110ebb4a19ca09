"""The allocation flags of `hostdev serve` and the objects they configure.

--pod-resources-socket, --reconcile-interval and --allocation-policy build the group-safe
accounting (GroupAccounting), the preferred-allocation policy and the PodResources
reconciler that `Node` runs.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from hostdev.kubelet import constants
from hostdev.kubelet.accounting import GroupAccounting, GroupPreferred
from hostdev.kubelet.podresources import DEFAULT_INTERVAL_S, Reconciler
from hostdev.placement import DEFAULT_POLICY, POLICIES


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} must be a number of seconds above 0")
    return value


def add_allocation_flags(parser: argparse.ArgumentParser) -> None:
    """Add the PodResources and allocation-policy flags."""
    parser.add_argument(
        "--pod-resources-socket",
        type=Path,
        default=Path(constants.POD_RESOURCES_SOCKET),
        help=f"kubelet PodResources socket (default {constants.POD_RESOURCES_SOCKET})",
    )
    parser.add_argument(
        "--reconcile-interval",
        type=positive_seconds,
        default=DEFAULT_INTERVAL_S,
        metavar="SECONDS",
        help=f"re-read PodResources this often (default {DEFAULT_INTERVAL_S:g})",
    )
    parser.add_argument(
        "--allocation-policy",
        choices=sorted(POLICIES),
        default=DEFAULT_POLICY,
        help=f"GetPreferredAllocation policy (default {DEFAULT_POLICY})",
    )


@dataclass(frozen=True)
class AllocationParts:
    """What Node needs for IOMMU-group-safe allocation."""

    accounting: GroupAccounting
    preferred: GroupPreferred
    reconciler: Reconciler


def allocation_parts(args: argparse.Namespace) -> AllocationParts:
    """Build the accounting, the preferred policy and the reconciler from the flags."""
    accounting = GroupAccounting()
    reconciler = Reconciler(
        accounting.ledger, args.pod_resources_socket, interval_s=args.reconcile_interval
    )
    accounting.on_claim = reconciler.after_allocate
    return AllocationParts(
        accounting, GroupPreferred(accounting, args.allocation_policy), reconciler
    )
