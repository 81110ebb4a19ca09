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
from typing import Any

from hostdev import __version__
from hostdev.daemon.footprint import import_asyncio_without_tls
from hostdev.errors import HostdevError

# Each module defines register(subparsers); the handler it sets returns the exit code.
# Command → the module that registers it. Only the module of the command being run is
# imported (a full parser is built for --help and for unknown commands), so a command never
# pays for the start-up cost of the others (grpc, pydantic, ...). Keep sorted.
COMMANDS: dict[str, str] = {
    "bind": "hostdev.cli.bind",
    "config": "hostdev.cli.config",
    "doctor": "hostdev.cli.doctor",
    "example": "hostdev.cli.example",
    "inspect": "hostdev.cli.kubelet_cmds",
    "kubelet-sim": "hostdev.cli.kubelet_cmds",
    "list": "hostdev.cli.inventory",
    "mdev": "hostdev.cli.mdev",
    "render": "hostdev.cli.render",
    "restore": "hostdev.cli.bind",
    "serve": "hostdev.cli.serve",
    "sriov": "hostdev.cli.sriov",
    "status": "hostdev.cli.status",
    "unbind": "hostdev.cli.bind",
}


def command_of(argv: Sequence[str]) -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    return next((word for word in argv if not word.startswith("-")), None)


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter, given the terminal's width so that it does not import shutil to
    ask (shutil brings bz2 and lzma: 0.5 MiB that `hostdev serve` would keep for nothing)."""

    def __init__(self, prog: str, **kwargs: Any) -> None:
        kwargs.setdefault("width", terminal_columns() - 2)  # argparse's own margin
        super().__init__(prog, **kwargs)


def terminal_columns() -> int:
    """$COLUMNS, else the width of the terminal on stdout, else 80."""
    columns = os.environ.get("COLUMNS", "")
    if columns.isdigit() and int(columns) > 0:
        return int(columns)
    stdout = sys.__stdout__
    try:
        return (os.get_terminal_size(stdout.fileno()).columns if stdout else 0) or 80
    except (ValueError, OSError):  # closed, or not a terminal
        return 80


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser whose help uses _HelpFormatter; its subcommands' parsers too."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _HelpFormatter)
        super().__init__(*args, **kwargs)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser with the given command's module registered, or every module."""
    parser = _Parser(
        prog="hostdev",
        description="Hand host PCI devices to VMs and containers through VFIO.",
    )
    parser.add_argument("--version", action="version", version=f"hostdev {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    module = COMMANDS.get(command or "")
    modules = [module] if module else sorted(set(COMMANDS.values()))
    for module_name in modules:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one hostdev command and return its exit code."""
    words = sys.argv[1:] if argv is None else list(argv)
    command = command_of(words)
    if command == "serve":  # before the serve module's imports load asyncio
        import_asyncio_without_tls()
    args = build_parser(command).parse_args(words)
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
