"""`hostdev inspect` and `hostdev kubelet-sim` from the command line, and the script runner."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path

import pytest

from hostdev.cli.kubelet_cmds import drive
from hostdev.cli.main import main
from hostdev.kubelet.script import load_script
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.testing.fakeplugin import FakeDevicePlugin, make_device

RESOURCE = "example.com/gpu"


async def test_inspect_table_and_json(
    plugin: FakeDevicePlugin, capsys: pytest.CaptureFixture[str]
) -> None:
    assert plugin.socket is not None
    socket = str(plugin.socket)
    code = await asyncio.to_thread(main, ["inspect", "--socket", socket])
    table = capsys.readouterr().out
    assert code == 0
    assert "preStartRequired=false getPreferredAllocationAvailable=false" in table
    assert "ID     HEALTH    NUMA" in table
    assert "dev3   Healthy   1" in table
    code = await asyncio.to_thread(main, ["inspect", "--socket", socket, "-o", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    assert report["devices"][0] == {"id": "dev0", "health": "Healthy", "numaNodes": [0]}


INSPECT_ERRORS = [
    ("missing", "absent.sock", 2, "no such file"),
    ("not-a-socket", "plain.txt", 2, "not a unix socket"),
    ("nobody-listens", "dead.sock", 1, "no device plugin answers on"),
]


@pytest.mark.parametrize(
    ("name", "code", "message"), [e[1:] for e in INSPECT_ERRORS], ids=[e[0] for e in INSPECT_ERRORS]
)
def test_inspect_errors(
    sockdir: Path, capsys: pytest.CaptureFixture[str], name: str, code: int, message: str
) -> None:
    (sockdir / "plain.txt").write_text("x")
    import socket as sockets

    dead = sockets.socket(sockets.AF_UNIX)
    dead.bind(str(sockdir / "dead.sock"))  # bound but never listening: connections are refused
    try:
        assert main(["inspect", "--socket", str(sockdir / name), "--timeout", "0.3"]) == code
    finally:
        dead.close()
    assert message in capsys.readouterr().err


SCRIPT = f"""
- wait-registered: {RESOURCE}
- wait-devices: {{resource: {RESOURCE}, healthy: 4}}
- create-pod:
    name: vm-a
    containers: {{compute: {{{RESOURCE}: 3}}}}
- create-pod:
    name: vm-b
    containers: {{compute: {{{RESOURCE}: 2}}}}
    expect-rejected: true
- list-pods
- delete-pod: vm-a
- restart
- print-capacity
"""


async def test_script_plays_life_cycle(
    sim: KubeletSimulator, plugin: FakeDevicePlugin, sockdir: Path
) -> None:
    path = sockdir / "script.yaml"
    path.write_text(SCRIPT)
    await plugin.register(sim.kubelet_socket, RESOURCE)
    out = io.StringIO()
    assert await drive(sim, load_script(path), None, out) == 0
    text = out.getvalue()
    assert "pod default/vm-a admitted" in text
    assert "env FAKE_DEVICES=" in text
    assert "device /dev/fake/dev" in text
    assert (
        f"pod default/vm-b rejected: requested number of devices unavailable for {RESOURCE}. "
        "Requested: 2, Available: 1" in text
    )
    assert "default/vm-a compute example.com/gpu " in text
    assert "kubelet restarted" in text
    assert f"Capacity:\n  {RESOURCE}:  4\nAllocatable:\n  {RESOURCE}:  4\n" in text
    assert f"Capacity:\n  {RESOURCE}:  0\n" in text, "the restart shows capacity 0"


def test_kubelet_sim_cli_runs_script(sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    script = sockdir / "s.yaml"
    script.write_text(
        "- print-capacity\n- create-pod: {name: p, containers: {c: {example.com/x: 1}}}\n"
        "- restart\n- sleep: 0\n"
    )
    args = ["kubelet-sim", "--plugin-dir", str(sockdir / "p"), "--script", str(script)]
    args += ["--pod-resources-socket", str(sockdir / "pr.sock")]
    assert main(args) == 1, "an unexpected rejection fails the run"
    out = capsys.readouterr().out
    assert "registration socket" in out
    assert "pod default/p rejected: cannot allocate unregistered device example.com/x" in out
    assert not (sockdir / "p" / "kubelet.sock").exists(), "sockets are removed at exit"


def test_kubelet_sim_duration(sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kubelet-sim", "--plugin-dir", str(sockdir), "--duration", "0"]) == 0
    assert "registration socket" in capsys.readouterr().out


BAD_SCRIPTS = [
    ("not-a-list", "create-pod: x\n", "a script is a YAML list of steps"),
    ("bad-yaml", "- [\n", "invalid YAML: line 2"),
    ("unknown-action", "- explode\n", "steps[0]: unknown action 'explode'"),
    ("two-keys", "- {restart: null, sleep: 1}\n", "one-key mapping"),
    ("no-containers", "- create-pod: {name: p}\n", "steps[0].create-pod: containers must map"),
    ("bad-count", "- create-pod: {name: p, containers: {c: {r/x: -1}}}\n", "whole numbers"),
    ("negative-sleep", "- sleep: -1\n", "steps[0].sleep: sleep must be a number >= 0"),
    ("restart-arg", "- restart: now\n", "takes no argument"),
    ("no-resource", "- wait-registered: {timeout: 3}\n", "resource must be a non-empty string"),
]


@pytest.mark.parametrize(
    ("text", "message"), [b[1:] for b in BAD_SCRIPTS], ids=[b[0] for b in BAD_SCRIPTS]
)
def test_bad_scripts(
    sockdir: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    script = sockdir / "bad.yaml"
    script.write_text(text)
    assert main(["kubelet-sim", "--plugin-dir", str(sockdir), "--script", str(script)]) == 2
    err = capsys.readouterr().err
    assert message in err
    assert err.startswith(f"error: {script}")


def test_missing_script(sockdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["kubelet-sim", "--plugin-dir", str(sockdir), "--script", "/nonexistent.yaml"]) == 2
    assert "No such file" in capsys.readouterr().err


async def test_status_printed_on_change(sim: KubeletSimulator, plugin: FakeDevicePlugin) -> None:
    out = io.StringIO()
    stop = asyncio.Event()
    run = asyncio.create_task(drive(sim, None, None, out, stop))
    await plugin.register(sim.kubelet_socket, RESOURCE)
    await sim.wait_devices(RESOURCE, 4)
    plugin.set_devices([make_device("dev0")])
    await sim.wait_devices(RESOURCE, 1)
    stop.set()
    assert await run == 0
    assert f"Allocatable:\n  {RESOURCE}:  1\n" in out.getvalue()


def test_script_wait_timeout_is_a_clean_error(
    sockdir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    script = sockdir / "wait.yaml"
    script.write_text("- wait-registered: {resource: example.com/x, timeout: 0.1}\n")
    assert main(["kubelet-sim", "--plugin-dir", str(sockdir / "p"), "--script", str(script)]) == 1
    assert "error: steps[0] (wait-registered example.com/x): timed out after 0.1s" in (
        capsys.readouterr().err
    )


BAD_FLAGS = [
    ("zero-timeout", ["inspect", "--socket", "{d}/x.sock", "--timeout", "0"], "--timeout"),
    ("long-socket-path", ["kubelet-sim", "--plugin-dir", "{d}/" + "x" * 120], "too long"),
]


@pytest.mark.parametrize(
    ("argv", "message"), [b[1:] for b in BAD_FLAGS], ids=[b[0] for b in BAD_FLAGS]
)
def test_bad_flags(
    sockdir: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main([a.replace("{d}", str(sockdir)) for a in argv]) == 2
    assert message in capsys.readouterr().err
