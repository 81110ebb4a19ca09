"""Flags and helpers shared by the command modules: host roots, pci.ids, durations, loading
a Host."""

from __future__ import annotations

import argparse
import os
import re
import stat
from pathlib import Path

from hostdev.errors import BadInputError
from hostdev.host.fs import HostFS
from hostdev.host.model import Host
from hostdev.host.scan import scan_host
from hostdev.userfiles import stat_or_none

_DURATION = re.compile(r"(?P<value>[0-9]+(?:\.[0-9]+)?)(?P<unit>ms|s|m|h)?")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds from "60", "30s", "1.5m", "500ms" or "1h" (argparse type; 0 allowed)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"invalid duration {text!r}: use seconds or a number with ms, s, m or h"
        )
    return float(match["value"]) * _UNIT_S[match["unit"] or "s"]


def add_host_flags(parser: argparse.ArgumentParser) -> None:
    """--sysfs-root, --dev-root, --proc-root and --host-root (env HOSTDEV_*_ROOT)."""
    group = parser.add_argument_group("host")
    group.add_argument(
        "--sysfs-root",
        default=os.environ.get("HOSTDEV_SYSFS_ROOT"),
        help="sysfs root (default /sys; env HOSTDEV_SYSFS_ROOT)",
    )
    group.add_argument(
        "--dev-root",
        default=os.environ.get("HOSTDEV_DEV_ROOT"),
        help="/dev root (default /dev; env HOSTDEV_DEV_ROOT)",
    )
    group.add_argument(
        "--proc-root",
        default=os.environ.get("HOSTDEV_PROC_ROOT"),
        help="/proc root (default /proc; env HOSTDEV_PROC_ROOT)",
    )
    group.add_argument(
        "--host-root",
        default=os.environ.get("HOSTDEV_HOST_ROOT"),
        help="a directory holding sys/, dev/ and proc/ (an example host)",
    )


def non_empty_path(text: str) -> str:
    """An argparse type for a path kept as text: "" is refused rather than taken as the
    working directory."""
    if not text:
        raise argparse.ArgumentTypeError("an empty path (give . for the working directory)")
    return text


def path_argument(text: str) -> Path:
    """An argparse type for a Path: "" is refused rather than taken as the working directory."""
    return Path(non_empty_path(text))


def host_fs(args: argparse.Namespace) -> HostFS:
    """The HostFS named by the flags; explicit roots override --host-root."""
    _require_directory(args.dev_root, "--dev-root")
    _require_directory(args.proc_root, "--proc-root")
    base = HostFS.under(args.host_root) if args.host_root else HostFS()
    return HostFS(
        Path(args.sysfs_root) if args.sysfs_root else base.sys_root,
        Path(args.dev_root) if args.dev_root else base.dev_root,
        Path(args.proc_root) if args.proc_root else base.proc_root,
    )


def _require_directory(root: str | None, flag: str) -> None:
    """Raise BadInputError when a root named explicitly is not a directory (a missing
    /dev/vfio inside an existing /dev root is normal and left to the readers)."""
    if not root:
        return
    found = stat_or_none(Path(root), flag)
    if found is None or not stat.S_ISDIR(found.st_mode):
        what = "not a directory" if found else "no such directory"
        raise BadInputError(f"{flag} {root}: {what}")


def load_host(args: argparse.Namespace) -> tuple[HostFS, Host]:
    """Scan the host named by the flags (raises HostReadError for a bad root)."""
    fs = host_fs(args)
    return fs, scan_host(fs)
