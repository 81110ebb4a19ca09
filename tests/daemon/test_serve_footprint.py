"""`hostdev serve` as a process: it loads only what serving needs (its resident memory budget
is 45 MiB), and takes paths relative to its working directory."""

from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import pytest

from hostdev.cli.serve import SERVE_MALLOC_ARENAS
from hostdev.testing.examples import build_example

# Never loaded by `hostdev serve` without a config: the config schema, what only bind onStart,
# provisioning (sriov:, mediated devices) or node-label lookups use, the Prometheus client
# library (hostdev writes the text format itself), TLS (asyncio imports it unless hidden),
# OpenSSL's hashes (hashlib's _hashlib maps libcrypto: 3.6 MiB more with 4,096 devices), and
# shutil with bz2 and lzma (argparse imports it unless told the terminal's width).
NEVER_LOADED = (
    "pydantic",
    "prometheus_client",
    "ssl",
    "_hashlib",
    "shutil",
    "yaml",
    "ctypes.util",
    "hostdev.config.loader",
    "hostdev.binding.execute",
    "hostdev.daemon.provision",
    "hostdev.nodelabels",
)

# Runs the real `serve` command, its imports in their real order; only the wait for a signal
# is replaced by start then stop, once main() has imported the serve module.
SCRIPT = f"""
import sys
from hostdev.cli import main

async def start_stop(node):
    await node.start()
    await node.stop()

def parser_then_patch(command):
    parser = real_parser(command)
    sys.modules["hostdev.cli.serve"].serve = start_stop
    return parser

real_parser, main.build_parser = main.build_parser, parser_then_patch
host, plugins, pod_resources = sys.argv[1:]
code = main.main(["serve", "--host-root", host, "--plugin-dir", plugins,
                  "--pod-resources-socket", pod_resources, "--no-uevents"])
print(code, "hostdev.daemon.live" in sys.modules)
print(*[name for name in {NEVER_LOADED!r} if name in sys.modules])
import ctypes
malloc_stats = getattr(ctypes.CDLL(None), "malloc_stats", None)  # glibc's
if malloc_stats is not None:
    malloc_stats()  # an "Arena N:" block per arena, on stderr
"""


def test_serve_without_config_loads_only_what_it_needs(tmp_path: Path, sockdir: Path) -> None:
    build_example("gpu-node", tmp_path / "host")
    argv = [str(tmp_path / "host"), str(sockdir / "dp"), str(sockdir / "pr.sock")]
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, check=False
    )
    assert run.stdout.splitlines() == ["0 True", ""], run.stderr[-2000:]


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's arenas")
def test_serve_caps_the_malloc_arenas(tmp_path: Path, sockdir: Path) -> None:
    """gRPC's threads all share SERVE_MALLOC_ARENAS arenas (hostdev.daemon.heap)."""
    build_example("gpu-node", tmp_path / "host")
    argv = [str(tmp_path / "host"), str(sockdir / "dp"), str(sockdir / "pr.sock")]
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, check=False
    )
    assert run.stdout.startswith("0 True"), run.stderr[-2000:]
    assert 1 <= run.stderr.count("Arena ") <= SERVE_MALLOC_ARENAS


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


ASYNCIO_FIRST = """
import asyncio, sys, urllib.request
from hostdev.daemon.footprint import import_asyncio_without_tls
print(import_asyncio_without_tls(), "ssl" in sys.modules)
"""

WITHOUT_TLS = """
import sys
from hostdev.daemon.footprint import import_asyncio_without_tls
print(import_asyncio_without_tls(), "ssl" in sys.modules)
import asyncio
print(asyncio.run(asyncio.sleep(0, "loop runs")))
import ssl, urllib.request  # TLS is still there for code that asks for it
print(urllib.request.ssl is ssl, asyncio.sslproto.ssl)
"""


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        (WITHOUT_TLS, ["True False", "loop runs", "True None"]),
        (ASYNCIO_FIRST, ["False True"]),  # too late: nothing changes
    ],
    ids=["first", "too-late"],
)
def test_asyncio_without_tls(script: str, expected: list[str]) -> None:
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert run.stdout.splitlines() == expected, run.stderr[-2000:]
