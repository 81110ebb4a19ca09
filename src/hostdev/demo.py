"""`make demo`: hostdev on a simulated host (works anywhere), then on this machine."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from hostdev.testing.examples import build_example


def _hostdev(*args: str) -> None:
    print(f"\n$ hostdev {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, "-m", "hostdev.cli.main", *args], check=False)


def run_inventory_demo(root: Path) -> None:
    """`hostdev list` and `hostdev doctor` on the example GPU node, then on this machine."""
    print("== hostdev on the example GPU node (a simulated sysfs tree) ==")
    _hostdev("list", "--host-root", str(root))
    _hostdev("doctor", "--host-root", str(root))
    print("\n== hostdev on this machine ==")
    _hostdev("list")
    _hostdev("doctor")


def main() -> None:
    """Run the demo end to end; it stops by itself."""
    with tempfile.TemporaryDirectory(prefix="hostdev-demo-") as tmp:
        root = Path(tmp) / "gpu-node"
        build_example("gpu-node", root)
        run_inventory_demo(root)


if __name__ == "__main__":
    main()
