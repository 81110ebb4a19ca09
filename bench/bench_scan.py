"""Scan of a synthetic 4,096-function host next to a C loop over the same files.

Target (issue): the Python scan takes at most 1.5x the C loop. Both run in the same process
tree on the same tree, interleaved, best of several rounds, so machine noise hits both.
Where valgrind is installed, callgrind also counts the user-space instructions of one scan in
each: a figure that machine noise does not move, for comparing changes to the scanner.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hostdev.host.fs import HostFS
from hostdev.host.scan import scan_host
from hostdev.testing.examples import synthetic

ROUNDS = 7
_SCAN_ROUNDS = (  # the Python side under callgrind: argv = host root, rounds
    "import sys; from hostdev.host.fs import HostFS; from hostdev.host.scan import scan_host\n"
    "for _ in range(int(sys.argv[2])): scan_host(HostFS.under(sys.argv[1]))"
)


def _build_c(workdir: Path) -> Path | None:
    gcc = shutil.which("gcc") or shutil.which("cc")
    if gcc is None:
        return None
    binary = workdir / "scanloop"
    source = Path(__file__).parent / "scanloop.c"
    subprocess.run([gcc, "-O2", "-o", str(binary), str(source)], check=True)
    return binary


def _python_best(fs: HostFS, rounds: int) -> tuple[int, float]:
    best, count = float("inf"), 0
    for _ in range(rounds):
        start = time.perf_counter()
        host = scan_host(fs)
        best = min(best, time.perf_counter() - start)
        count = len(host.devices)
        del host  # freeing a snapshot is not part of the next scan
    return count, best


def _c_best(binary: Path, root: Path, rounds: int) -> tuple[int, float]:
    out = subprocess.run(
        [str(binary), str(root / "sys"), str(rounds)], check=True, capture_output=True, text=True
    ).stdout.split()
    return int(out[0]), float(out[1])


def _instructions(command: list[str]) -> int:
    """User-space instructions callgrind counts over a whole command."""
    with tempfile.TemporaryDirectory() as out:
        result = subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}/callgrind", *command],
            capture_output=True,
            text=True,
            check=True,
        )
    match = re.search(r"Collected : (\d+)", result.stderr)
    if match is None:
        raise RuntimeError("callgrind printed no instruction count")
    return int(match[1])


def _instructions_per_scan(command: list[str]) -> float:
    """One scan's instructions: a run of three scans less a run of one, halved."""
    return (_instructions([*command, "3"]) - _instructions([*command, "1"])) / 2


def _instruction_lines(binary: Path | None, root: Path) -> list[str]:
    if shutil.which("valgrind") is None:
        return ["- user-space instructions: valgrind not installed"]
    python = _instructions_per_scan([sys.executable, "-c", _SCAN_ROUNDS, str(root)])
    line = f"- user-space instructions per scan (callgrind): Python {python / 1e6:.0f} M"
    if binary is not None:
        c_loop = _instructions_per_scan([str(binary), str(root / "sys")])
        line += f", C loop {c_loop / 1e6:.1f} M"
    return [line]


def run() -> list[str]:
    """Build the host, time both scans, and report the ratio."""
    # tmpfs is the closest stand-in for sysfs: both live in memory, so syscall costs compare
    shm = "/dev/shm" if Path("/dev/shm").is_dir() else None
    with tempfile.TemporaryDirectory(prefix="hostdev-bench-", dir=shm) as tmp:
        root = Path(tmp) / "host"
        started = time.perf_counter()
        synthetic(root, pfs=16, vfs_per_pf=255, gpus=8)
        build_s = time.perf_counter() - started
        binary = _build_c(Path(tmp))
        fs = HostFS.under(root)
        py_best, c_best, count = float("inf"), float("inf"), 0
        for _ in range(3):  # interleave so noise hits both
            count, seconds = _python_best(fs, ROUNDS)
            py_best = min(py_best, seconds)
            if binary is not None:
                c_best = min(c_best, _c_best(binary, root, ROUNDS)[1])
        counted = _instruction_lines(binary, root)
    lines = [
        "## Host scan (synthetic host: 16 PFs x 255 VFs + 8 GPUs + base devices)",
        "",
        f"- functions scanned: {count} (fake tree built in {build_s:.1f} s)",
        f"- Python scan_host: {py_best * 1e3:.1f} ms "
        f"({py_best / count * 1e6:.1f} us per function), best of {3 * ROUNDS}",
    ]
    if binary is not None:
        lines += [
            f"- C loop over the same files: {c_best * 1e3:.1f} ms, best of {3 * ROUNDS}",
            f"- ratio Python / C: {py_best / c_best:.2f} (target <= 1.5)",
        ]
    else:
        lines.append("- C loop: no C compiler found")
    return lines + counted
