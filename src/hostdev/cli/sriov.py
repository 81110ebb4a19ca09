"""`hostdev sriov`: list SR-IOV PFs and VFs; `hostdev sriov set PF COUNT` changes the count."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hostdev.cli.common import add_host_flags, load_host, parse_duration
from hostdev.cli.output import add_output_flag, dump, table
from hostdev.cli.writing import add_dry_run_flag, say_waiting_for_lock, writer_for
from hostdev.host.model import is_vfio_driver
from hostdev.host.writer import RecordingWriter

if TYPE_CHECKING:
    from hostdev.binding.execute import DeviceResult
    from hostdev.binding.state import StateFile
    from hostdev.sriov import SriovAction, VfProgress

# Planning and binding modules load when a subcommand runs, so every hostdev command starts fast.


def register(subparsers: Any) -> None:
    """Add `sriov` and `sriov set`."""
    parser = subparsers.add_parser(
        "sriov",
        help="list SR-IOV PFs and VFs; `sriov set PF COUNT` creates VFs",
        description="List SR-IOV physical functions with their VFs, drivers and IOMMU groups.",
    )
    add_output_flag(parser)
    add_host_flags(parser)
    parser.set_defaults(handler=run_list)
    sub = parser.add_subparsers(dest="sriov_command", metavar="SUBCOMMAND")
    setter = sub.add_parser(
        "set",
        help="set a PF's VF count (through 0, as the kernel requires)",
        description="Set the number of VFs of a PF named by interface or PCI address.",
    )
    setter.add_argument("pf", metavar="PF", help="interface name (enp4s0f1) or PCI address")
    setter.add_argument("count", metavar="COUNT", type=_count, help="VFs wanted (0 removes)")
    setter.add_argument(
        "--bind",
        metavar="DRIVER",
        type=_vfio_driver,
        help="bind the VFs to this VFIO driver afterwards: vfio-pci, or a vendor's variant "
        "such as mlx5_vfio_pci",
    )
    setter.add_argument(
        "--autoprobe",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="set sriov_drivers_autoprobe first: --no-autoprobe leaves new VFs without a "
        "host driver (default: leave it as it is)",
    )
    setter.add_argument(
        "--timeout",
        type=parse_duration,
        default=30.0,
        help="seconds to wait for the VFs and their drivers (default 30)",
    )
    setter.add_argument("--settle", type=parse_duration, default=1.0, help=argparse.SUPPRESS)
    setter.add_argument(
        "--state-file",
        type=Path,
        default=Path(os.environ["HOSTDEV_STATE_FILE"])
        if "HOSTDEV_STATE_FILE" in os.environ
        else None,
        help="where --bind records the VFs' original drivers for `hostdev restore` "
        "(default: the one `hostdev bind` uses; env HOSTDEV_STATE_FILE)",
    )
    add_dry_run_flag(setter)
    add_host_flags(setter)
    setter.set_defaults(handler=run_set)


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 0:
        raise argparse.ArgumentTypeError("the VF count must be 0 or more")
    return value


def _vfio_driver(text: str) -> str:
    if not is_vfio_driver(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a VFIO driver: vfio-pci or a vendor's variant (*_vfio_pci)"
        )
    return text


def run_list(args: argparse.Namespace) -> int:
    """Print the PFs as a table (wide adds one row per VF), JSON or YAML."""
    from hostdev import sriov

    fs, host = load_host(args)
    pfs = sriov.pf_infos(host, fs)
    if args.output in ("json", "yaml"):
        dump({"pfs": [pf.to_dict() for pf in pfs]}, args.output)
        return 0
    if not pfs:
        print("no SR-IOV physical functions found")
        return 0
    headers = ["PF", "INTERFACE", "DRIVER", "VFS", "LINK", "AUTOPROBE"]
    rows = [
        [
            str(pf.address),
            pf.interface or "-",
            pf.driver or "-",
            f"{pf.num_vfs}/{pf.total_vfs}",
            pf.link or "-",
            _yes_no(pf.drivers_autoprobe),
        ]
        for pf in pfs
    ]
    table(headers, rows)
    if args.output == "wide":
        print()
        table(
            ["VF", "PF", "INDEX", "DRIVER", "IOMMU GROUP"],
            [
                [
                    str(vf.address),
                    str(pf.address),
                    str(vf.index),
                    vf.driver or "-",
                    "-" if vf.iommu_group is None else str(vf.iommu_group),
                ]
                for pf in pfs
                for vf in pf.vfs
            ],
        )
    return 0


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else ("yes" if value else "no")


def run_set(args: argparse.Namespace) -> int:
    """Plan, then write sriov_numvfs (0 first when needed), wait for the VFs, bind them."""
    writer = writer_for(args)
    if isinstance(writer, RecordingWriter):
        fs, pf, actions = _plan(args)
        return _dry_run(fs, writer, actions, args)
    with _state_locked(args) as state:
        fs, pf, actions = _plan(args)  # read once no other hostdev run can change the host
        removal = _removal_end(actions)
        try:
            _carry_out(fs, writer, pf, actions[:removal], args)
        finally:  # a refused or interrupted write may still have removed them
            if state is not None and removal:
                _forget_vfs(state, fs, pf)
    _carry_out(fs, writer, pf, actions[removal:], args)
    if args.bind and args.count and not _bind_vfs(fs, writer, pf.address, args):
        return 1
    print(f"PF {_name(pf)}: {args.count} VFs")
    return 0


def _plan(args: argparse.Namespace) -> tuple[Any, Any, list[SriovAction]]:
    """Scan the host and plan the PF's count change (saying so when there is none to make)."""
    from hostdev import sriov

    fs, host = load_host(args)
    pf = sriov.resolve_pf(host, args.pf)
    actions = sriov.plan_numvfs(pf, args.count, autoprobe=args.autoprobe)
    if not args.dry_run and not any(isinstance(a, sriov.SetNumVfs) for a in actions):
        print(f"PF {_name(pf)} already has {args.count} VFs")
    return fs, pf, actions


def _name(pf: Any) -> str:
    return f"{pf.address}" + (f" ({pf.netdevs[0]})" if pf.netdevs else "")


def _removal_end(actions: list[SriovAction]) -> int:
    """How many actions lead up to and include the write that removes the PF's VFs (0: none)."""
    from hostdev import sriov

    for index, action in enumerate(actions):
        if isinstance(action, sriov.SetNumVfs) and action.count == 0:
            return index + 1
    return 0


def _carry_out(
    fs: Any, writer: Any, pf: Any, actions: list[SriovAction], args: argparse.Namespace
) -> None:
    from hostdev import sriov

    for action in actions:
        print(sriov.describe(action))
        sriov.execute(fs, writer, [action])
        if isinstance(action, sriov.SetNumVfs) and action.count:
            _wait(fs, pf.address, action.count, args, autoprobe_on(pf, args))


@contextlib.contextmanager
def _state_locked(args: argparse.Namespace) -> Iterator[StateFile | None]:
    """The state file, locked while the VFs are removed: held when the VFs are to be bound
    (an unusable state file then fails before any write) or when it exists (records of the
    removed VFs to forget); otherwise None."""
    from hostdev.binding.state import StateFile

    state_file = StateFile(_state_file(args))
    if not (args.bind and args.count) and not state_file.exists():
        yield None
        return
    with state_file.locked(say_waiting_for_lock) as state:
        yield state


def _forget_vfs(state: StateFile, fs: Any, pf: Any) -> None:
    """Drop the binding records of the PF's VFs that the kernel removed: one at the same
    address later is a new device (its record, if it gets one, is made after this)."""
    from hostdev import sriov

    present = {vf for vf, _ in sriov.read_vfs(fs, pf.address)}
    recorded = [str(vf) for vf in pf.sriov.vfs if str(vf) in state.records]
    gone = [vf for vf in recorded if vf not in present]
    state.drop(gone)
    if gone:
        plural = "VF" if len(gone) == 1 else "VFs"
        print(f"forgot the binding records of {len(gone)} removed {plural}", flush=True)


def _state_file(args: argparse.Namespace) -> Path:
    """--state-file, else the one `hostdev bind` uses (imported here: start-up stays light)."""
    from hostdev.binding.state import DEFAULT_STATE_FILE

    return Path(args.state_file or DEFAULT_STATE_FILE)


def _bind_vfs(fs: Any, writer: Any, pf: Any, args: argparse.Namespace) -> bool:
    """Bind the PF's VFs with the binding engine (guards, state file, rollback)."""
    from hostdev import sriov
    from hostdev.binding.execute import BindOptions, bind_devices
    from hostdev.host.scan import scan_host

    host = scan_host(fs)
    todo = [a.vf for a in sriov.plan_bind(host, pf, args.bind) if isinstance(a, sriov.BindVf)]
    if not todo:
        print(f"all VFs already on {args.bind}")
        return True
    options = BindOptions(state_file=_state_file(args), progress=_bind_progress, driver=args.bind)
    result = bind_devices(fs, writer, todo, options)
    failed = [d for d in result.devices if not result.ok and d.reason]
    for device in failed:
        print(f"error: {device.address}: {device.action}: {device.reason}", file=sys.stderr)
    if result.ok:
        print(f"bound {len(todo)} VFs to {args.bind}")
    return result.ok


def _bind_progress(item: DeviceResult, index: int, total: int) -> None:
    print(
        f"  [{index}/{total}] {item.address}: {item.from_driver or '-'} -> "
        f"{item.to_driver or '-'} {item.action}",
        file=sys.stderr,
        flush=True,
    )


def autoprobe_on(pf: Any, args: argparse.Namespace) -> bool:
    """Whether new VFs will get a host driver on their own (so drivers are waited for)."""
    if args.autoprobe is not None:
        return bool(args.autoprobe)
    return pf.sriov is not None and pf.sriov.drivers_autoprobe is not False


def _wait(fs: Any, pf: Any, count: int, args: argparse.Namespace, drivers: bool) -> None:
    from hostdev import sriov

    waiter = sriov.Waiter(timeout=args.timeout, settle=args.settle)

    def show(progress: VfProgress) -> None:
        print(
            f"  VFs {progress.present}/{progress.wanted} present, {progress.bound} with a driver",
            file=sys.stderr,
            flush=True,
        )

    waiter.wait(fs, pf, count, expect_drivers=drivers, on_progress=show)


def _dry_run(
    fs: Any, writer: RecordingWriter, actions: list[SriovAction], args: argparse.Namespace
) -> int:
    from hostdev import sriov

    sriov.execute(fs, writer, actions)
    for path, value in writer.writes:
        print(f"would write {value!r} to {path}")
    if args.bind and args.count:
        print(f"would then bind the VFs to {args.bind} (driver_override + drivers_probe)")
    if not writer.writes and not args.bind:
        print("nothing to do")
    return 0
