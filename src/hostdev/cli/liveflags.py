"""Flags of `hostdev serve` that concern following the node live: rescans, metrics, logs."""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import TYPE_CHECKING

from hostdev.daemon.logs import add_log_flags, configure_logging

if TYPE_CHECKING:
    from hostdev.daemon.live import LiveOptions

DEFAULT_RESCAN_INTERVAL_S = 60.0
_DURATION = re.compile(r"^(?P<value>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from "60", "30s", "1.5m", "500ms" or "1h" (argparse type; 0 allowed)."""
    match = _DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with ms, s, m or h"
        )
    return float(match["value"]) * _UNIT_S[match["unit"] or "s"]


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
