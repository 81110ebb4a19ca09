"""`make demo`: hostdev on a simulated host (works anywhere), then on this machine."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.kubelet.virtlauncher import hostdevs
from hostdev.testing.examples import build_example

EXAMPLE_CONFIG = Path(__file__).resolve().parents[2] / "examples" / "gpu-node.yaml"
T4 = "nvidia.com/TU104GL_Tesla_T4"
SERVED = (T4, "example.com/geforce")


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


def run_plugin_demo(root: Path) -> None:
    """`hostdev serve` on the example GPU node against the kubelet simulator: capacity, an
    allocation for a VM's pod, what virt-launcher reads from it, a kubelet restart, SIGTERM."""
    print("\n== the device plugin on the example GPU node ==")
    print(f"\n$ cat {EXAMPLE_CONFIG.name}\n{EXAMPLE_CONFIG.read_text()}", end="")
    _hostdev("config", "check", str(EXAMPLE_CONFIG))
    _hostdev("render", "kubevirt", "--config", str(EXAMPLE_CONFIG), "--host-root", str(root))
    asyncio.run(_plugin_session(root, root.parent / "device-plugins"))


async def _plugin_session(root: Path, plugin_dir: Path) -> None:
    async with KubeletSimulator(plugin_dir) as sim:
        args = [
            "serve",
            "--config",
            str(EXAMPLE_CONFIG),
            "--host-root",
            str(root),
            "--plugin-dir",
            str(plugin_dir),
        ]
        print(f"\n$ hostdev {' '.join(args)} &   (log lines prefixed with 'serve|')")
        started = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "hostdev.cli.main", *args, stderr=asyncio.subprocess.PIPE
        )
        logs = asyncio.create_task(_echo(proc.stderr))
        try:
            await sim.wait_for(lambda: all(sim.allocatable().get(n) == 2 for n in SERVED))
            print(
                f"\n# all resources registered {1000 * (time.monotonic() - started):.0f} ms "
                "after the process started\n\n$ kubectl describe node"
            )
            print(sim.describe_node())
            await _allocate_for_a_vm(sim)
            await _kubelet_restart(sim)
        finally:
            proc.send_signal(signal.SIGTERM)
            code = await proc.wait()
            await logs
        left = sorted(p.name for p in plugin_dir.iterdir() if p.name.startswith("hostdev-"))
        print(f"\n# SIGTERM: hostdev serve exited with {code}; its sockets left: {left or 'none'}")


async def _echo(stream: asyncio.StreamReader | None) -> None:
    while stream is not None and (line := await stream.readline()):
        print(f"  serve| {line.decode().rstrip()}", flush=True)


async def _allocate_for_a_vm(sim: KubeletSimulator) -> None:
    print(f"# a VM asks for one {T4}; its virt-launcher pod's compute container gets:")
    pod = await sim.create_pod("virt-launcher-vm-t4", {"compute": {T4: 1}})
    response = pod.response("compute", T4)
    _print_response(response)
    envs = dict(response.envs)
    print("\n# what virt-launcher reads from that environment (libvirt domain XML):")
    for xml in hostdevs(envs, T4, "pci"):
        print(f"  {xml}")
    print("\n$ kubectl describe node")
    print(sim.describe_node())


def _print_response(response: Any) -> None:
    for key, value in sorted(response.envs.items()):
        print(f"  env    {key}={value}")
    for spec in response.devices:
        print(f"  device {spec.host_path} -> {spec.container_path} ({spec.permissions})")


async def _kubelet_restart(sim: KubeletSimulator) -> None:
    before = sim.registration_count(T4)
    started = time.monotonic()
    await sim.restart()
    await sim.wait_for(lambda: all(sim.registration_count(n) > before for n in SERVED))
    print(
        f"# kubelet restarted (socket dir wiped): hostdev re-registered every resource in "
        f"{1000 * (time.monotonic() - started):.0f} ms"
    )


def main() -> None:
    """Run the demo end to end; it stops by itself."""
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # no gRPC core chatter in the output
    with tempfile.TemporaryDirectory(prefix="hostdev-demo-") as tmp:
        root = Path(tmp) / "gpu-node"
        build_example("gpu-node", root)
        run_inventory_demo(root)
        run_plugin_demo(root)


if __name__ == "__main__":
    main()
