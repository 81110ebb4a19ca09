"""Output formats shared by every command: a table (default / wide), JSON and YAML."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any, TextIO

import yaml

FORMATS = ("table", "wide", "json", "yaml")


def add_output_flag(parser: Any, *, default: str = "table") -> None:
    """Add kubectl's `-o wide|json|yaml` to a subcommand."""
    parser.add_argument(
        "-o",
        "--output",
        choices=FORMATS,
        default=default,
        help="output format (default: a table)",
    )


def dump(data: Any, fmt: str, stream: TextIO | None = None) -> None:
    """Write a JSON-able document as JSON or YAML."""
    out = stream or sys.stdout
    if fmt == "json":
        json.dump(data, out, indent=2, sort_keys=False)
        out.write("\n")
    else:
        yaml.safe_dump(data, out, sort_keys=False, default_flow_style=False)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], stream: TextIO | None = None
) -> None:
    """Write rows as aligned columns under upper-case headers, kubectl style."""
    out = stream or sys.stdout
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    for line in [headers, *rows]:
        cells = [cell.ljust(w) for cell, w in zip(line, widths, strict=True)]
        out.write("   ".join(cells).rstrip() + "\n")
