"""How commands that change the host get their HostWriter: real, recording (--dry-run), or a
factory installed by tests and demos (a FakeKernelWriter over a fake host); and what they say
while another hostdev run holds the state file's lock."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from hostdev.host.writer import HostWriter, RecordingWriter, SysfsWriter

# Tests and demos replace this to route writes to a fake kernel; None means the real sysfs.
writer_factory: Callable[[], HostWriter] | None = None


def add_dry_run_flag(parser: argparse.ArgumentParser) -> None:
    """--dry-run: print the sysfs writes instead of doing them."""
    parser.add_argument(
        "--dry-run", action="store_true", help="print the sysfs writes instead of doing them"
    )


def writer_for(args: argparse.Namespace) -> HostWriter:
    """A RecordingWriter for --dry-run, else the installed factory's writer or SysfsWriter."""
    if getattr(args, "dry_run", False):
        return RecordingWriter()
    return writer_factory() if writer_factory is not None else SysfsWriter()


def say_waiting_for_lock(lock: Path) -> None:
    """Tell the user why the command pauses: another hostdev run holds the state file's lock."""
    print(
        f"waiting for another hostdev run to finish (it holds {lock})", file=sys.stderr, flush=True
    )
