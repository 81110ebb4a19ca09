"""Flags of `hostdev serve` that concern following the node live: rescans, metrics, logs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from hostdev.cli.common import parse_duration
from hostdev.daemon.logs import add_log_flags, configure_logging

if TYPE_CHECKING:
    from hostdev.daemon.live import LiveOptions

DEFAULT_RESCAN_INTERVAL_S = 60.0


def add_live_flags(parser: argparse.ArgumentParser) -> None:
    """--rescan-interval, --metrics-address, --no-uevents, --log-format, --log-level."""
    group = parser.add_argument_group("live node")
    group.add_argument(
        "--rescan-interval",
        type=parse_duration,
        default=DEFAULT_RESCAN_INTERVAL_S,
        metavar="DURATION",
        help="backstop rescan when no event arrives (default 60s; 0 turns it off)",
    )
    group.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        default=None,
        help="serve Prometheus /metrics and /healthz here (default: off)",
    )
    group.add_argument(
        "--no-uevents",
        action="store_true",
        help="do not open the kernel uevent socket (inotify and the backstop only)",
    )
    add_log_flags(parser)


def live_options(args: argparse.Namespace) -> LiveOptions:
    """LiveOptions from the flags (raises BadInputError for a bad --metrics-address)."""
    from hostdev.daemon.live import LiveOptions  # imported late: it pulls in gRPC
    from hostdev.metrics import parse_address

    if args.metrics_address:
        parse_address(args.metrics_address)
    return LiveOptions(
        rescan_interval=args.rescan_interval or None,
        kernel_uevents=not args.no_uevents,
        config_path=Path(args.config).absolute() if args.config else None,
        kubevirt_entries=args.kubevirt_entries,
        metrics_address=args.metrics_address,
    )


def setup_logging(args: argparse.Namespace) -> None:
    """Apply --log-format and --log-level."""
    configure_logging(args.log_format, args.log_level)
