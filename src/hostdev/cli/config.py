"""`hostdev config check FILE`: validate a config without serving and summarise it."""

from __future__ import annotations

import argparse

from hostdev.cli.output import table
from hostdev.config import ResourceSpec, load_config
from hostdev.config.model import Selector


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the config command group."""
    parser = subparsers.add_parser("config", help="work with hostdev config files")
    commands = parser.add_subparsers(dest="config_command", metavar="COMMAND", required=True)
    check = commands.add_parser("check", help="validate a config file (exit 0 ok, 2 invalid)")
    check.add_argument("file", metavar="FILE")
    check.add_argument(
        "--kubevirt-entries",
        choices=("external", "all"),
        default=None,
        help="which permittedHostDevices entries to serve",
    )
    check.set_defaults(handler=run_check)


def describe_selector(selector: Selector) -> str:
    """A selector in one short line, e.g. "device=10de:1eb8 class=0302"."""
    parts = [
        ("vendor", selector.vendor),
        ("device", selector.device),
        ("class", selector.class_prefix),
        ("subsystem", selector.subsystem),
        ("driver", selector.driver),
        ("mdevName", selector.mdev_name),
    ]
    text = [f"{k}={v}" for k, v in parts if v]
    if selector.address is not None:
        text.append("address")
    text.extend(f"pfName={p.ifname}" for p in selector.pf_names)
    return " ".join(text)


def summary_rows(resources: tuple[ResourceSpec, ...]) -> list[list[str]]:
    """One row per resource: name, kind, selectors, exclusions, env, where it came from."""
    return [
        [
            r.name,
            r.kind,
            " | ".join(describe_selector(s) for s in r.selectors),
            str(len(r.excludes)),
            ",".join(r.options.env),
            r.origin,
        ]
        for r in resources
    ]


def run_check(args: argparse.Namespace) -> int:
    """Validate and print a summary; ConfigError becomes exit 2 at the CLI boundary."""
    config = load_config(args.file, kubevirt_entries=args.kubevirt_entries)
    print(f"{args.file}: valid, {len(config.resources)} resource(s)")
    if config.resources:
        table(
            ["resource", "kind", "selectors", "excludes", "env", "from"],
            summary_rows(config.resources),
        )
    for reason in config.skipped:
        print(f"skipped: {reason}")
    return 0
