"""`hostdev bind|unbind|restore`: move devices to vfio-pci and back, with guards and a state file.

Exit codes: 0 every device is where it was asked to be, 1 a device was refused or failed
(reasons on stderr), 2 bad input (a selector that is invalid or matches nothing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hostdev.binding.selectors import parse_selectors, resolve
from hostdev.binding.state import DEFAULT_STATE_FILE
from hostdev.cli.common import add_host_flags, host_fs, load_host
from hostdev.cli.output import add_output_flag, dump, table
from hostdev.cli.writing import say_waiting_for_lock
from hostdev.errors import BadInputError
from hostdev.host.model import VFIO_PCI, PciAddress
from hostdev.host.writer import HostWriter, RecordingWriter, SysfsWriter

if TYPE_CHECKING:  # the binding engine is imported when a command runs (fast start)
    from hostdev.binding import BindOptions, BindResult, DeviceResult
    from hostdev.binding.modules import ModuleLoader

_HELP = {
    "bind": "bind devices (and their IOMMU group companions) to vfio-pci or, with --driver, "
    "a VFIO variant",
    "unbind": "leave devices with no driver (and no driver_override)",
    "restore": "return devices to the drivers recorded before hostdev changed them",
}


def register(subparsers: Any) -> None:
    """Add the bind, unbind and restore subcommands."""
    for name, handler in (("bind", _bind), ("unbind", _unbind), ("restore", _restore)):
        parser = subparsers.add_parser(name, help=_HELP[name], description=_HELP[name])
        parser.add_argument(
            "targets",
            nargs="*",
            metavar="SELECTOR",
            help="vendor:device (10de:1eb8), a PCI address or an address glob",
        )
        if name == "restore":
            parser.add_argument(
                "--all", action="store_true", help="restore every device recorded in the state file"
            )
        else:
            parser.add_argument(
                "--force",
                action="store_true",
                help="override the guards (interfaces in use, mounted disks, "
                "the boot console); never bridges",
            )
        if name == "bind":
            parser.add_argument(
                "--noiommu",
                action="store_true",
                help="allow binding without an IOMMU (no DMA isolation: the "
                "device can read and write all host memory)",
            )
            parser.add_argument(
                "--driver",
                default="vfio-pci",
                help="the VFIO driver to bind to: vfio-pci (default) or a vendor's variant, "
                "e.g. nvgrace_gpu_vfio_pci or mlx5_vfio_pci; group companions go to vfio-pci",
            )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="print the exact sysfs writes instead of doing them",
        )
        parser.add_argument(
            "--state-file",
            type=Path,
            default=Path(os.environ.get("HOSTDEV_STATE_FILE", DEFAULT_STATE_FILE)),
            help=f"where original drivers are recorded (default "
            f"{DEFAULT_STATE_FILE}; env HOSTDEV_STATE_FILE)",
        )
        add_output_flag(parser)
        add_host_flags(parser)
        parser.set_defaults(handler=handler)


def writer_for(args: argparse.Namespace) -> HostWriter:
    """The writer of a run: recording only in a dry run, else the real sysfs."""
    return RecordingWriter() if args.dry_run else SysfsWriter()


def loader_for(args: argparse.Namespace) -> ModuleLoader:
    """How kernel modules get loaded (modprobe)."""
    from hostdev.binding.modules import modprobe

    return modprobe


def _options(args: argparse.Namespace) -> BindOptions:
    from hostdev.binding import BindOptions

    return BindOptions(
        force=getattr(args, "force", False),
        noiommu=getattr(args, "noiommu", False),
        dry_run=args.dry_run,
        driver=getattr(args, "driver", VFIO_PCI),
        state_file=args.state_file,
        loader=loader_for(args),
        progress=_progress,
        lock_wait=say_waiting_for_lock,
    )


def _addresses(args: argparse.Namespace, recorded: Collection[PciAddress] = ()) -> list[PciAddress]:
    selectors = parse_selectors(args.targets)
    _, host = load_host(args)
    return resolve(host, selectors, recorded)


def _recorded(args: argparse.Namespace) -> set[PciAddress]:
    """Addresses in the state file: restore may name a recorded device that has left."""
    from hostdev.binding.state import load_records

    return {PciAddress.parse(address) for address in load_records(args.state_file)}


def _bind(args: argparse.Namespace) -> int:
    from hostdev.binding import bind_devices

    addresses = _addresses(args)
    return _report(args, bind_devices(host_fs(args), writer_for(args), addresses, _options(args)))


def _unbind(args: argparse.Namespace) -> int:
    from hostdev.binding import unbind_devices

    addresses = _addresses(args)
    return _report(args, unbind_devices(host_fs(args), writer_for(args), addresses, _options(args)))


def _restore(args: argparse.Namespace) -> int:
    from hostdev.binding import restore_devices

    if args.all and args.targets:
        raise BadInputError("give either --all or devices to restore, not both")
    if not args.all and not args.targets:
        raise BadInputError("name devices to restore, or --all for every recorded device")
    addresses = None if args.all else _addresses(args, _recorded(args))
    return _report(
        args, restore_devices(host_fs(args), writer_for(args), addresses, _options(args))
    )


def _progress(item: DeviceResult, index: int, total: int) -> None:
    if total < 2:
        return
    joined = f" (companion of {item.companion_of})" if item.companion_of else ""
    print(
        f"[{index}/{total}] {item.address}: {item.from_driver or '-'} -> "
        f"{item.to_driver or '-'} {item.action}{joined}",
        file=sys.stderr,
    )


def _report(args: argparse.Namespace, result: BindResult) -> int:
    _say_on_stderr(result)
    if args.output in ("json", "yaml"):
        dump(result.to_json(), args.output)
    elif result.dry_run:
        for command in result.commands:
            print(f"run: {command}")
        for write in result.writes:
            print(f"{write.path} <- {json.dumps(write.value)}")
    else:
        rows = [
            [d.address, d.from_driver or "-", d.to_driver or "-", d.action, _note(d)]
            for d in result.devices
        ]
        table(["ADDRESS", "FROM", "TO", "ACTION", "NOTE"], rows)
    return 0 if result.ok else 1


def _say_on_stderr(result: BindResult) -> None:
    lines = [f"warning: {w}" for w in result.warnings] + [f"note: {n}" for n in result.notes]
    lines += [f"failed: {e}" for e in result.errors]
    lines += [
        f"{d.action}: {d.reason}{_force_hint(d)}"
        for d in result.devices
        if d.action in ("refused", "failed", "rollback-failed")
    ]
    for line in lines:
        print(line, file=sys.stderr)


def _force_hint(item: DeviceResult) -> str:
    return "; use --force to override" if item.action == "refused" and item.forceable else ""


def _note(item: DeviceResult) -> str:
    if item.companion_of:
        return f"IOMMU group companion of {item.companion_of}"
    if item.companions:
        return "with " + ", ".join(item.companions)
    return item.reason if item.action not in ("refused", "failed", "rollback-failed") else ""
