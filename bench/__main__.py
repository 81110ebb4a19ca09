"""Run every benchmark module (bench/bench_*.py) and print its markdown figures.

Each module exposes `run() -> list[str]`. The output, headed by the machine's description,
is also written to bench/out/latest.md; figures worth keeping go to docs/benchmarks.md.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
from pathlib import Path


def machine() -> str:
    """One line describing the machine the figures come from."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{platform.node()}: {os.cpu_count()} CPUs ({cpu}), Linux {platform.release()}, "
        f"Python {platform.python_version()}"
    )


def main(argv: list[str]) -> int:
    """Run the benchmarks named on the command line, or all of them."""
    here = Path(__file__).parent
    names = argv or sorted(p.stem for p in here.glob("bench_*.py"))
    lines = [f"Machine: {machine()}", ""]
    for name in names:
        module = importlib.import_module(f"bench.{name}")
        print(f"running {name} ...", file=sys.stderr, flush=True)
        section = module.run()
        lines += [*section, ""]
        print("\n".join(section) + "\n", flush=True)
    out = here / "out"
    out.mkdir(exist_ok=True)
    (out / "latest.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
