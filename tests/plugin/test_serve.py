"""`hostdev serve` as a process: registers on a fake host, SIGTERM removes its sockets."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

from fakekubelet import FakeKubelet

from hostdev.testing.fakehost import FakeHost


async def start_serve(*args: str) -> asyncio.subprocess.Process:
    """`hostdev serve ARGS` as a child process, its stderr piped."""
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "hostdev.cli.main", "serve", *args, stderr=asyncio.subprocess.PIPE
    )


async def test_serve_registers_and_sigterm_removes_sockets(
    kubelet: FakeKubelet, gpu_host: FakeHost, plugin_dir: Path
) -> None:
    proc = await start_serve("--host-root", str(gpu_host.root), "--plugin-dir", str(plugin_dir))
    try:
        names = {(await kubelet.accepted.get()).request.resource_name for _ in range(3)}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = await proc.communicate()
    assert names == {
        "devices.kubevirt.io/10de_1aeb",
        "devices.kubevirt.io/10de_1eb8",
        "devices.kubevirt.io/10de_2184",
    }
    assert proc.returncode == 0, stderr.decode()
    assert sorted(p.name for p in plugin_dir.iterdir()) == ["kubelet.sock"]
    assert b"registered with the kubelet" in stderr


async def test_serve_with_a_bad_config_exits_2_with_one_line(
    gpu_host: FakeHost, plugin_dir: Path, short_dir: Path
) -> None:
    config = short_dir / "bad.yaml"
    config.write_text("resources:\n- {name: gpu, selectors: [{vendor: '10de'}]}\n")
    proc = await start_serve(
        *("--config", str(config), "--host-root", str(gpu_host.root)),
        *("--plugin-dir", str(plugin_dir)),
    )
    _, stderr = await proc.communicate()
    assert proc.returncode == 2
    (line,) = stderr.decode().splitlines()
    assert line.startswith(f"error: {config}: resources[0].name: ")
    assert list(plugin_dir.iterdir()) == []


async def test_sighup_rescans_and_rereads_the_config_instead_of_ending_serve(
    kubelet: FakeKubelet, gpu_host: FakeHost, plugin_dir: Path, short_dir: Path
) -> None:
    config = short_dir / "hostdev.yaml"
    config.write_text("resources:\n- {name: example.com/t4, selectors: [{device: '10de:1eb8'}]}\n")
    proc = await start_serve(
        *("--config", str(config), "--host-root", str(gpu_host.root)),
        *("--plugin-dir", str(plugin_dir), "--no-uevents", "--rescan-interval", "0"),
        *("--log-format", "json", "--log-level", "debug"),
    )
    assert proc.stderr is not None
    try:
        await kubelet.accepted.get()
        proc.send_signal(signal.SIGHUP)
        seen = set()
        while not {"rescan", "reread"} <= seen and (line := await proc.stderr.readline()):
            record = json.loads(line)
            if record.get("event") == "rescan" and record.get("reasons") == ["SIGHUP"]:
                seen.add("rescan")
            if record["message"] == "config file touched but unchanged":
                seen.add("reread")
    finally:
        proc.send_signal(signal.SIGTERM)
        await proc.communicate()
    assert seen == {"rescan", "reread"}
    assert proc.returncode == 0
    assert sorted(p.name for p in plugin_dir.iterdir()) == ["kubelet.sock"]
