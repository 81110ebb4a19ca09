"""`hostdev serve` as a process: it loads only what serving needs (its resident memory budget
is 45 MiB), and takes paths relative to its working directory."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hostdev.testing.examples import build_example

# Never loaded by `hostdev serve` without a config or --metrics-address: the config schema,
# what only bind onStart, provisioning (sriov:, mediated devices) or node-label lookups use,
# and the Prometheus exposition.
NEVER_LOADED = (
    "pydantic",
    "prometheus_client",
    "yaml",
    "ctypes.util",
    "hostdev.config.loader",
    "hostdev.binding.execute",
    "hostdev.daemon.provision",
    "hostdev.nodelabels",
)

# Runs the real `serve` command; only the wait for a signal is replaced by start then stop.
SCRIPT = f"""
import sys
from hostdev.cli import main, serve

async def start_stop(node):
    await node.start()
    await node.stop()

serve.serve = start_stop
host, plugins, pod_resources = sys.argv[1:]
code = main.main(["serve", "--host-root", host, "--plugin-dir", plugins,
                  "--pod-resources-socket", pod_resources, "--no-uevents"])
print(code, "hostdev.daemon.live" in sys.modules)
print(*[name for name in {NEVER_LOADED!r} if name in sys.modules])
"""


def test_serve_without_config_loads_only_what_it_needs(tmp_path: Path, sockdir: Path) -> None:
    build_example("gpu-node", tmp_path / "host")
    argv = [str(tmp_path / "host"), str(sockdir / "dp"), str(sockdir / "pr.sock")]
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, check=False
    )
    assert run.stdout.splitlines() == ["0 True", ""], run.stderr[-2000:]


def test_serve_with_a_relative_plugin_dir(tmp_path: Path, sockdir: Path) -> None:
    build_example("gpu-node", tmp_path / "host")
    argv = [str(tmp_path / "host"), "dp", "pr.sock"]  # relative to the working directory
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        capture_output=True,
        text=True,
        check=False,
        cwd=sockdir,
    )
    assert run.stdout.splitlines()[:1] == ["0 True"], run.stderr[-2000:]
