"""`hostdev status`: pure report tables, and the CLI against the simulator's PodResources."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from hostdev.cli.main import main
from hostdev.config import DEFAULT_CONFIG
from hostdev.daemon.live import LiveNode, LiveOptions
from hostdev.health import Signals
from hostdev.host.scan import scan_host
from hostdev.host.signals import vfio_group_nodes
from hostdev.kubelet.podlist import (
    PodDevice,
    PodResourcesUnavailable,
    by_device,
    list_pod_devices,
)
from hostdev.kubelet.registration import Backoff
from hostdev.kubelet.simulator import KubeletSimulator
from hostdev.status import NOT_SERVED, node_status, status_document
from hostdev.testing.examples import build_example

T4 = "devices.kubevirt.io/10de_1eb8"


def _status(tmp_path: Path, held: dict[tuple[str, str], PodDevice] | None) -> dict[str, object]:
    host = build_example("gpu-node", tmp_path)
    os.unlink(tmp_path / "dev" / "vfio" / "13")
    snapshot = scan_host(host.fs)
    report = node_status(snapshot, DEFAULT_CONFIG, Signals({}, vfio_group_nodes(host.fs)), held,
                         None if held is not None else "unreachable")  # fmt: skip
    return status_document(report)


def test_states_and_holders(tmp_path: Path) -> None:
    held = {
        (T4, "0000:65:00.0"): PodDevice(T4, "0000:65:00.0", "default", "vm-a", "compute"),
        (T4, "0000:99:00.0"): PodDevice(T4, "0000:99:00.0", "default", "vm-b", "compute"),
    }
    document = _status(tmp_path, held)
    t4 = next(r for r in document["resources"] if r["name"] == T4)  # type: ignore[attr-defined]
    states = {d["id"]: (d["state"], d["reason"], d["pod"]) for d in t4["devices"]}
    assert states == {
        "0000:65:00.0": ("allocated", None, "default/vm-a"),
        "0000:b3:00.0": ("unhealthy", "/dev/vfio/13 vanished", None),
        "0000:99:00.0": ("unhealthy", NOT_SERVED, "default/vm-b"),
    }
    assert (t4["capacity"], t4["allocatable"], t4["allocated"]) == (3, 1, 1)
    assert document["podResources"] == {"reachable": True, "error": None}


def test_unreachable_pod_resources_is_reported(tmp_path: Path) -> None:
    document = _status(tmp_path, None)
    assert document["podResources"] == {"reachable": False, "error": "unreachable"}


async def test_missing_socket(tmp_path: Path) -> None:
    with pytest.raises(PodResourcesUnavailable, match="does not exist"):
        await list_pod_devices(tmp_path / "nope.sock")


async def test_socket_path_that_cannot_be_looked_up(tmp_path: Path) -> None:
    with pytest.raises(PodResourcesUnavailable, match="File name too long"):
        await list_pod_devices(tmp_path / ("x" * 300))


async def test_socket_that_does_not_answer(sockdir: Path) -> None:
    path = sockdir / "dead.sock"
    path.write_text("")  # a file, not a listening socket
    with pytest.raises(PodResourcesUnavailable, match=r"PodResources List on .* failed"):
        await list_pod_devices(path, timeout=0.5)


async def test_cli_against_simulator(tmp_path: Path, sockdir: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    host = build_example("gpu-node", tmp_path / "host")
    pr_socket = sockdir / "pr" / "kubelet.sock"
    sim = KubeletSimulator(sockdir / "plugins", pod_resources_socket=pr_socket, dial_timeout=1)
    await sim.start()
    node = LiveNode(
        host.fs, DEFAULT_CONFIG, sim.plugin_dir, sim.plugin_dir / "kubelet.sock",
        backoff=Backoff(0.01, 2, 0.1), live=LiveOptions(rescan_interval=None, kernel_uevents=False),
    )  # fmt: skip
    await node.start()
    try:
        await sim.wait_devices(T4, 2)
        pod = await sim.create_pod("vm-a", {"compute": {T4: 1}})
        held = by_device(await list_pod_devices(pr_socket))
        assert [h.pod_ref for h in held.values()] == ["default/vm-a"]
        argv = ["status", "--host-root", str(tmp_path / "host"),
                "--pod-resources-socket", str(pr_socket), "-o", "json"]  # fmt: skip
        assert await asyncio.to_thread(main, argv) == 0
        document = json.loads(capsys.readouterr().out)
        device = next(iter(pod.device_ids(T4)))
        t4 = next(r for r in document["resources"] if r["name"] == T4)
        row = next(d for d in t4["devices"] if d["id"] == device)
        assert (row["state"], row["pod"], row["container"]) == ("allocated", "default/vm-a",
                                                                "compute")  # fmt: skip
    finally:
        await node.stop()
        await sim.stop()


@pytest.mark.parametrize("fmt", ["table", "wide", "yaml"], ids=["table", "wide", "yaml"])
def test_cli_without_kubelet(tmp_path: Path, capsys: pytest.CaptureFixture[str], fmt: str
                             ) -> None:  # fmt: skip
    build_example("gpu-node", tmp_path)
    argv = ["status", "--host-root", str(tmp_path), "--pod-resources-socket",
            str(tmp_path / "none.sock"), "-o", fmt]  # fmt: skip
    assert main(argv) == 0
    out, err = capsys.readouterr()
    assert T4 in out
    if fmt == "yaml":
        assert "reachable: false" in out
    else:
        assert "note: PodResources socket" in err and "pod columns unknown" in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--sysfs-root", "/nonexistent"], "is not a sysfs root"),
        (["--config", "/nonexistent.yaml"], "nonexistent.yaml"),
    ],
    ids=["bad-sysfs", "missing-config"],
)
def test_cli_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str],
                       message: str) -> None:  # fmt: skip
    build_example("gpu-node", tmp_path)
    code = main(["status", "--host-root", str(tmp_path), *argv])
    assert code == 2
    assert message in capsys.readouterr().err
