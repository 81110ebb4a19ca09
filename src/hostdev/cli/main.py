"""Entry point: builds the argument parser from the command modules and maps errors to exit codes.

Exit codes follow kubectl habits: 0 ok, 1 a check failed, 2 bad input. Users see one clear
error line, never a traceback (HOSTDEV_DEBUG=1 shows it).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from collections.abc import Sequence

from hostdev import __version__
from hostdev.errors import HostdevError

# Each module defines register(subparsers); the handler it sets returns the exit code.
COMMAND_MODULES: tuple[str, ...] = (
    # one line per module; keep sorted to make merges trivial
    "hostdev.cli.bind",
    "hostdev.cli.config",
    "hostdev.cli.doctor",
    "hostdev.cli.example",
    "hostdev.cli.inventory",
    "hostdev.cli.kubelet_cmds",
    "hostdev.cli.render",
    "hostdev.cli.serve",
    "hostdev.cli.status",
)


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="hostdev",
        description="Hand host PCI devices to VMs and containers through VFIO.",
    )
    parser.add_argument("--version", action="version", version=f"hostdev {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one hostdev command and return its exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        code: int = args.handler(args)
    except HostdevError as err:
        if os.environ.get("HOSTDEV_DEBUG"):
            raise
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
