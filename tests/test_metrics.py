"""Metrics: counters, address parsing, the HTTP answers, device counts read from the table."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hostdev import metrics
from hostdev.config import DEFAULT_CONFIG
from hostdev.errors import BadInputError
from hostdev.host.scan import scan_host
from hostdev.kubelet.state import DeviceTable
from hostdev.testing.examples import build_example


def test_counter_labels_in_order_or_by_name() -> None:
    counter = metrics.Counter("test_things", "Things.", ("resource", "result"))
    counter.labels("gpu", "granted").inc()
    counter.labels(result="granted", resource="gpu").inc(2)
    assert counter.value("gpu", "granted") == 3
    assert counter.value(resource="gpu", result="refused") == 0


@pytest.mark.parametrize(
    ("values", "by_name"),
    [(("gpu",), {}), (("gpu", "granted", "x"), {}), ((), {"resource": "gpu"}),
     ((), {"resource": "gpu", "outcome": "granted"}), (("gpu",), {"result": "granted"})],
    ids=["too-few", "too-many", "name-missing", "unknown-name", "mixed"],
)  # fmt: skip
def test_counter_rejects_wrong_labels(values: tuple[str, ...], by_name: dict[str, str]) -> None:
    counter = metrics.Counter("test_things", "Things.", ("resource", "result"))
    with pytest.raises(ValueError, match="test_things takes the labels"):
        counter.labels(*values, **by_name)


def test_scrape_shows_counts_gauge_and_extra_collectors() -> None:
    metrics.RESCANS.labels("backstop").inc()
    metrics.SCAN_SECONDS.set(0.25)
    extra = metrics.NodeCollector(lambda: None, lambda: True)
    body = metrics.MetricsServer("127.0.0.1", 0, lambda: None, [extra]).answer("GET", "/metrics")
    lines = body.body.decode().splitlines()
    assert "# TYPE hostdev_allocations_total counter" in lines  # counted or not
    backstops = metrics.RESCANS.value("backstop")
    assert f'hostdev_rescans_total{{trigger="backstop"}} {backstops}' in lines
    assert "hostdev_last_scan_duration_seconds 0.25" in lines
    assert "hostdev_podresources_reachable 1.0" in lines
    assert body.content_type == "text/plain; version=0.0.4; charset=utf-8"
    names = {f.name for f in text_string_to_metric_families(body.body.decode())}
    assert {"hostdev_allocations", "hostdev_devices", "hostdev_podresources_reachable"} <= names


TRICKY = 'say "hi" in C:\\new\nfolder'  # a quote, a backslash before an n, a newline


def test_exposition_reads_back_with_prometheus_clients_parser() -> None:
    counter = metrics.Counter("test_things", "Things in C:\\new, and a\nnewline.", ("name",))
    counter.labels(TRICKY).inc(2)
    counter.labels("plain").inc()
    gauge = metrics.Gauge("test_level", "A level.")
    gauge.set(0.25)
    text = metrics.exposition([counter.family(), gauge.family()]).decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert (families["test_things"].type, families["test_level"].type) == ("counter", "gauge")
    assert families["test_things"].documentation == "Things in C:\\new, and a\nnewline."
    samples = {s.labels["name"]: (s.name, s.value) for s in families["test_things"].samples}
    assert samples == {TRICKY: ("test_things_total", 2.0), "plain": ("test_things_total", 1.0)}
    assert [(s.name, s.value) for s in families["test_level"].samples] == [("test_level", 0.25)]


@pytest.mark.parametrize(
    ("value", "text"),
    [(3, "3.0"), (0.25, "0.25"), (float("inf"), "+Inf"), (float("-inf"), "-Inf"),
     (float("nan"), "NaN"), (1e21, "1e+21")],
    ids=["int", "fraction", "inf", "minus-inf", "nan", "large"],
)  # fmt: skip
def test_exposition_numbers(value: float, text: str) -> None:
    family = metrics.Family("test_value", "gauge", "A value.", (metrics.Sample((), value),))
    assert metrics.exposition([family]).decode().splitlines()[-1] == f"test_value {text}"


def test_empty_counter_has_help_and_type_only() -> None:
    family = metrics.Counter("test_unused", "Never counted.", ("x",)).family()
    assert metrics.exposition([family]).decode().splitlines() == [
        "# HELP test_unused_total Never counted.",
        "# TYPE test_unused_total counter",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9477", ("127.0.0.1", 9477)),
        (":9477", ("0.0.0.0", 9477)),
        ("[::1]:80", ("::1", 80)),
        ("node:0", ("node", 0)),
    ],
    ids=["ipv4", "all", "ipv6", "port-zero"],
)
def test_parse_address(text: str, expected: tuple[str, int]) -> None:
    assert metrics.parse_address(text) == expected


@pytest.mark.parametrize(
    "text",
    ["9477", "host:", "host:http", "host:70000", "", "host:\u00b2", "host:\u0663"],
    ids=["no-colon", "no-port", "named-port", "too-big", "empty", "superscript", "arabic-digit"],
)
def test_parse_address_rejects(text: str) -> None:
    with pytest.raises(BadInputError, match="--metrics-address"):
        metrics.parse_address(text)


def test_answers() -> None:
    alive: list[str | None] = [None]
    server = metrics.MetricsServer("127.0.0.1", 0, lambda: alive[0])
    assert server.answer("GET", "/healthz").status == 200
    alive[0] = "the rescan loop has stopped"
    unhealthy = server.answer("GET", "/healthz")
    assert (unhealthy.status, unhealthy.body) == (503, b"the rescan loop has stopped\n")
    scrape = server.answer("GET", "/metrics?x=1")
    assert scrape.status == 200 and b"# TYPE hostdev_rescans_total counter" in scrape.body
    assert server.answer("POST", "/metrics").status == 405
    assert server.answer("GET", "/").status == 404


async def test_http_bad_requests_get_an_answer_or_nothing() -> None:
    server = metrics.MetricsServer("127.0.0.1", 0, lambda: None)
    await server.start()
    try:
        for raw, expected in ((b"NONSENSE\r\n\r\n", b"HTTP/1.1 400"),
                              (b"HEAD /healthz HTTP/1.1\r\n\r\n", b"HTTP/1.1 200"),
                              (b"GET /healthz", b"")):  # fmt: skip
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(raw)
            writer.write_eof()
            reply = await reader.read()
            writer.close()
            await writer.wait_closed()
            assert reply.startswith(expected)
            if raw.startswith(b"HEAD"):
                assert reply.endswith(b"\r\n\r\n")  # no body
    finally:
        await server.stop()


def test_device_counts_are_exclusive(tmp_path: Path) -> None:
    host = build_example("gpu-node", tmp_path)
    table = DeviceTable(DEFAULT_CONFIG, scan_host(host.fs))
    table.set_in_use(["0000:65:00.0"])
    table.set_health("0000:b3:00.0", "removed from the bus")
    counts = metrics.device_counts(table)
    assert counts["devices.kubevirt.io/10de_1eb8"] == {"healthy": 0, "allocated": 1,
                                                       "unhealthy": 1}  # fmt: skip
    assert counts["devices.kubevirt.io/10de_2184"] == {"healthy": 1, "allocated": 0,
                                                       "unhealthy": 0}  # fmt: skip
    assert metrics.device_counts(None) == {}
    families = list(metrics.NodeCollector(lambda: table).collect())
    assert [f.name for f in families] == ["hostdev_devices"]  # reachability not known yet
    assert len(families[0].samples) == 3 * len(counts)


@pytest.mark.parametrize(
    ("reachable", "value"), [(True, 1.0), (False, 0.0)], ids=["reachable", "unreachable"]
)
def test_podresources_reachability(reachable: bool, value: float) -> None:
    families = list(metrics.NodeCollector(lambda: None, lambda: reachable).collect())
    assert families[1].name == "hostdev_podresources_reachable"
    assert families[1].samples[0].value == value
