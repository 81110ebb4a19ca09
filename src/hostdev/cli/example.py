"""`hostdev example NAME DIR`: write a named example host (a fake sysfs/dev/proc tree)."""

from __future__ import annotations

import argparse
import stat
from pathlib import Path
from typing import Any

from hostdev.errors import BadInputError
from hostdev.testing.examples import EXAMPLES, build_example
from hostdev.userfiles import stat_or_none


def register(subparsers: Any) -> None:
    """Add `hostdev example`."""
    parser = subparsers.add_parser(
        "example", help="create an example host tree to try hostdev on (use --host-root DIR)"
    )
    parser.add_argument("name", choices=sorted(EXAMPLES), help="which example host")
    parser.add_argument("directory", help="an empty or missing directory to build it in")
    parser.set_defaults(handler=run_example)


def run_example(args: argparse.Namespace) -> int:
    """Build the example host and say how to use it."""
    root = Path(args.directory)
    found = stat_or_none(root, "the example host's directory")
    if found and not stat.S_ISDIR(found.st_mode):
        raise BadInputError(f"{root} is not a directory")
    if found and any(root.iterdir()):
        raise BadInputError(f"{root} is not empty")
    try:
        build_example(args.name, root)
    except OSError as err:  # e.g. a path under a regular file, or no permission
        raise BadInputError(f"cannot write the example host in {root}: {err.strerror}") from err
    print(f"example host {args.name!r} written to {root}; try: hostdev list --host-root {root}")
    return 0
