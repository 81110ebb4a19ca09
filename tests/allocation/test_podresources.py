"""The PodResources client, the reconciler's conservative mode and serve's allocation flags."""

from __future__ import annotations

import argparse
import logging
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hostdev.allocation import Holder, Inventory
from hostdev.cli.allocation import positive_seconds
from hostdev.cli.main import main
from hostdev.kubelet.api import podresources_pb2 as pr
from hostdev.kubelet.podlist import PodResourcesUnavailable
from hostdev.kubelet.podresources import Reconciler, holdings_from, list_holdings
from hostdev.ledger import AllocationLedger

from .conftest import AUDIO_GROUP_15, GPU_GROUP_15


@pytest.fixture
def sockdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="hdp", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_holdings_from_a_list_response() -> None:
    response = pr.ListPodResourcesResponse(
        pod_resources=[
            pr.PodResources(
                name="vm-a",
                namespace="ns",
                containers=[
                    pr.ContainerResources(
                        name="compute",
                        devices=[
                            pr.ContainerDevices(resource_name="r1", device_ids=["a", "b"]),
                            pr.ContainerDevices(resource_name="r2", device_ids=["c"]),
                        ],
                    ),
                    pr.ContainerResources(name="sidecar"),
                ],
            )
        ]
    )
    holder = Holder("ns", "vm-a", "compute")
    assert holdings_from(response) == {"a": holder, "b": holder, "c": holder}
    assert holdings_from(pr.ListPodResourcesResponse()) == {}


async def test_missing_socket_is_an_error(sockdir: Path) -> None:
    with pytest.raises(PodResourcesUnavailable, match="does not exist"):
        await list_holdings(sockdir / "kubelet.sock")


async def test_socket_nobody_serves_is_an_error(sockdir: Path) -> None:
    socket = sockdir / "kubelet.sock"
    socket.write_text("")  # a file, not a listening socket
    with pytest.raises(PodResourcesUnavailable, match="UNAVAILABLE"):
        await list_holdings(socket, timeout=2.0)


async def test_unreachable_reconcile_logs_once_and_keeps_holdings(
    shared: Inventory, sockdir: Path, caplog: pytest.LogCaptureFixture
) -> None:
    answers: list[dict[str, Holder] | None] = [{GPU_GROUP_15: Holder("ns", "a", "c")}, None, None]

    async def lister(socket: Path, timeout: float) -> dict[str, Holder]:
        answer = answers.pop(0)
        if answer is None:
            raise PodResourcesUnavailable("connection refused")
        return answer

    ledger = AllocationLedger(shared)
    changes: list[int] = []
    reconciler = Reconciler(
        ledger, sockdir / "kubelet.sock", lister=lister, on_change=lambda: changes.append(1)
    )
    caplog.set_level(logging.INFO)
    assert await reconciler.reconcile_now()
    assert not await reconciler.reconcile_now()
    assert not await reconciler.reconcile_now()
    assert not reconciler.reachable
    assert len(changes) == 3
    assert ledger.holdings == {GPU_GROUP_15: Holder("ns", "a", "c")}
    assert AUDIO_GROUP_15 in ledger.availability().blocked()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "PodResources unreachable (connection refused): treating every device known in use or "
        "allocated since the last reconcile as in use"
    ]


async def test_reconciler_watches_for_the_socket(shared: Inventory, sockdir: Path) -> None:
    calls: list[Path] = []

    async def lister(socket: Path, timeout: float) -> dict[str, Holder]:
        calls.append(socket)
        if not socket.exists():
            raise PodResourcesUnavailable("gone")
        return {}

    reconciler = Reconciler(
        AllocationLedger(shared), sockdir / "kubelet.sock", lister=lister, interval_s=3600.0
    )
    await reconciler.start()
    try:
        assert not reconciler.reachable
        (sockdir / "kubelet.sock").write_text("")  # the kubelet is back
        await reconciler.wait_reconciled(2)
        assert reconciler.reachable and reconciler.reconciles == 1
    finally:
        await reconciler.stop()


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("0", "above 0"),
        ("-1", "above 0"),
        ("abc", "not a number"),
        ("inf", "above 0"),
        ("nan", "above 0"),
    ],
    ids=["zero", "negative", "word", "infinite", "nan"],
)
def test_bad_reconcile_interval(text: str, error: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=error):
        positive_seconds(text)
    assert positive_seconds("2.5") == 2.5


@pytest.mark.parametrize(
    "argv",
    [["--reconcile-interval", "0"], ["--allocation-policy", "best"]],
    ids=["interval", "policy"],
)
def test_serve_rejects_bad_allocation_flags(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["serve", *argv])
    assert caught.value.code == 2
    assert "error: argument" in capsys.readouterr().err
