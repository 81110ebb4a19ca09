"""hostdev.prom: what Prometheus reads from it, checked with prometheus_client's own parser."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hostdev import prom


def _registry() -> tuple[prom.Registry, prom.Counter, prom.Gauge]:
    registry = prom.Registry()
    counter = prom.Counter("t_calls", "Calls, by kind.\nSecond line \\.", ["kind"], registry)
    gauge = prom.Gauge("t_seconds", "Last duration.", registry=registry)
    return registry, counter, gauge


def test_exposition_parses_with_the_reference_parser() -> None:
    registry, counter, gauge = _registry()
    counter.labels("a").inc(2)
    counter.labels(kind='x"y\\z\n').inc()
    gauge.set(0.25)
    families = {f.name: f for f in text_string_to_metric_families(registry.exposition().decode())}
    calls = families["t_calls"]
    assert (calls.type, calls.documentation) == ("counter", "Calls, by kind.\nSecond line \\.")
    totals = {s.labels["kind"]: s.value for s in calls.samples if s.name == "t_calls_total"}
    assert totals == {"a": 2.0, 'x"y\\z\n': 1.0}
    created = families["t_calls_created"]  # a gauge of its own in this format
    assert created.type == "gauge" and len(created.samples) == 2
    assert all(s.value > 1e9 for s in created.samples)
    assert [(s.name, s.value) for s in families["t_seconds"].samples] == [("t_seconds", 0.25)]


def test_counter_without_samples_exports_help_and_type_only() -> None:
    registry, _, _ = _registry()
    assert registry.exposition().decode().splitlines()[:3] == [
        "# HELP t_calls_total Calls, by kind.\\nSecond line \\\\.",
        "# TYPE t_calls_total counter",
        "# HELP t_seconds Last duration.",
    ]


def test_sample_values_and_collectors() -> None:
    registry, counter, _ = _registry()
    counter.labels(kind="a").inc()
    counter.labels("a").inc(0.5)
    assert registry.get_sample_value("t_calls_total", {"kind": "a"}) == 1.5
    assert counter.labels("a").value == 1.5
    assert registry.get_sample_value("t_calls_total", {"kind": "b"}) is None
    family = prom.MetricFamily("t_extra", "Extra.", "gauge", ("x",))
    family.add_metric(["1"], 3)

    class Extra:
        def collect(self) -> list[prom.MetricFamily]:
            return [family]

    extra = Extra()
    registry.register(extra)
    assert registry.get_sample_value("t_extra", {"x": "1"}) == 3
    with pytest.raises(ValueError, match="Duplicated"):
        registry.register(extra)
    registry.unregister(extra)
    with pytest.raises(KeyError):
        registry.unregister(extra)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.labels("a", "b"), "expected label values"),
        (lambda c: c.labels(other="a"), "labels"),
        (lambda c: c.labels("a", kind="a"), "not both"),
        (lambda c: c.inc(), "call labels"),
        (lambda c: c.labels("a").inc(-1), "non-negative"),
    ],
    ids=["too-many", "wrong-name", "both-ways", "unlabelled-use", "negative"],
)
def test_misuse_is_refused(call, message: str) -> None:  # type: ignore[no-untyped-def]
    _, counter, _ = _registry()
    with pytest.raises(ValueError, match=message):
        call(counter)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2, "2.0"),
        (0.0123, "0.0123"),
        (-3.5, "-3.5"),
        (123456.0, "123456.0"),
        (1000000.0, "1e+06"),
        (1795353960.6838775, "1.7953539606838775e+09"),
        (1.5e300, "1.5e+300"),
        (math.inf, "+Inf"),
        (-math.inf, "-Inf"),
        (math.nan, "NaN"),
    ],
    ids=[
        "int",
        "small",
        "negative",
        "six-digits",
        "million",
        "timestamp",
        "huge",
        "inf",
        "minus-inf",
        "nan",
    ],
)
def test_format_value(value: float, text: str) -> None:
    assert prom.format_value(value) == text
