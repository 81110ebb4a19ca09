"""`hostdev doctor`: is this host ready for VFIO passthrough, and how to fix what is not."""

from __future__ import annotations

import argparse
from typing import Any

from hostdev.cli.common import add_host_flags, load_host
from hostdev.cli.inventory import id_filter, matches
from hostdev.cli.output import add_output_flag, dump
from hostdev.host.checks import FAIL, Check, kernel_args, run_checks
from hostdev.host.facts import read_facts
from hostdev.host.model import Host, PciDevice, is_vfio_driver


def register(subparsers: Any) -> None:
    """Add `hostdev doctor`."""
    parser = subparsers.add_parser("doctor", help="check IOMMU, vfio and group viability")
    add_host_flags(parser)
    add_output_flag(parser)
    parser.add_argument(
        "--selector",
        action="append",
        default=[],
        help="check these devices (vendor:device); default: devices on a VFIO driver",
    )
    parser.set_defaults(handler=run_doctor)


def devices_to_check(host: Host, selectors: list[str]) -> list[PciDevice]:
    """The selected devices, or every device on a VFIO driver when none is selected."""
    ids = id_filter(selectors)
    if ids:
        return [d for d in host.sorted_devices() if not d.is_bridge and matches(d, ids, None, None)]
    return [d for d in host.sorted_devices() if is_vfio_driver(d.driver)]


def run_doctor(args: argparse.Namespace) -> int:
    """Print every check; exit 1 when any FAILs."""
    fs, host = load_host(args)
    facts = read_facts(fs)
    checks = run_checks(host, facts, devices_to_check(host, args.selector))
    failed = any(c.status == FAIL for c in checks)
    if args.output in ("json", "yaml"):
        dump(
            {
                "checks": [_document(c) for c in checks],
                "kernel_args": kernel_args(facts.cpu_vendor),
                "result": FAIL if failed else "PASS",
            },
            args.output,
        )
    else:
        _print(checks, facts.cpu_vendor)
    return 1 if failed else 0


def _document(check: Check) -> dict[str, Any]:
    return {"name": check.name, "status": check.status, "message": check.message, "fix": check.fix}


def _print(checks: list[Check], cpu_vendor: str | None) -> None:
    width = max(len(c.name) for c in checks)
    for check in checks:
        print(f"[{check.status}] {check.name.ljust(width)}  {check.message}")
        if check.fix and check.status != "PASS":
            print(f"       {''.ljust(width)}  fix: {check.fix}")
    print(f"\nkernel arguments for this CPU: {kernel_args(cpu_vendor)}")
