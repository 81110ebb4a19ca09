"""The few Prometheus client pieces the daemon uses: labelled counters and gauges, collectors
read at scrape time, one registry, and the text exposition format (version 0.0.4).

Written here instead of importing prometheus_client: that package's import pulls in
http.server, urllib.request and email, about 5 MiB of resident memory in a daemon whose
budget is 45 MiB (docs/benchmarks.md). The output is what prometheus_client writes for the
same metrics: counters as `<name>_total` with a `<name>_created` gauge per label set.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Sample:
    """One time series value."""

    name: str
    labels: Mapping[str, str]
    value: float


@dataclass(slots=True)
class MetricFamily:
    """The samples of one metric name, with its help text and type (counter or gauge)."""

    name: str
    documentation: str
    type: str
    label_names: tuple[str, ...] = ()
    samples: list[Sample] = field(default_factory=list)

    def add_metric(self, values: Sequence[str], value: float) -> None:
        """Add a sample with these label values (in label_names order)."""
        self.samples.append(
            Sample(self.name, dict(zip(self.label_names, values, strict=True)), value)
        )


class Collector(Protocol):
    """Anything the registry reads at scrape time."""

    def collect(self) -> Iterable[MetricFamily]:
        """The families to export now."""
        ...


class Registry:
    """The collectors exported together, in registration order."""

    def __init__(self) -> None:
        self._collectors: list[Collector] = []
        self._lock = threading.Lock()

    def register(self, collector: Collector) -> None:
        """Add a collector; ValueError when it exports a name another collector exports."""
        names = _names(collector)
        with self._lock:
            taken = set().union(*(_names(c) for c in self._collectors))
            if collector in self._collectors or names & taken:
                raise ValueError(f"Duplicated timeseries in the registry: {names & taken}")
            self._collectors.append(collector)

    def unregister(self, collector: Collector) -> None:
        """Remove a collector (KeyError when it is not registered)."""
        with self._lock:
            if collector not in self._collectors:
                raise KeyError(collector)
            self._collectors.remove(collector)

    def collect(self) -> Iterator[MetricFamily]:
        """Every family of every collector."""
        with self._lock:
            collectors = list(self._collectors)
        for collector in collectors:
            yield from collector.collect()

    def get_sample_value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """The value of one sample, or None when there is none (tests and benchmarks)."""
        wanted = dict(labels or {})
        for family in self.collect():
            for sample in family.samples:
                if sample.name == name and dict(sample.labels) == wanted:
                    return sample.value
        return None

    def exposition(self) -> bytes:
        """Every family in the text format."""
        return "".join(_family_text(f) for f in self.collect()).encode()


class _Child:
    """The value of one label set."""

    __slots__ = ("_lock", "created", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.created = time.time()
        self._lock = threading.Lock()

    def add(self, amount: float) -> None:
        with self._lock:
            self.value += amount


class _Metric:
    """A metric with optional labels; without labels it is its own single child."""

    kind = ""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        registry: Registry | None = None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label_names = tuple(labelnames)
        self._children: dict[tuple[str, ...], _Child] = {}
        self._lock = threading.Lock()
        if not self.label_names:
            self._children[()] = _Child()
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterator[MetricFamily]:
        """The metric's families (Counter and Gauge say how)."""
        raise NotImplementedError

    def _child(self, values: tuple[str, ...]) -> _Child:
        with self._lock:
            child = self._children.get(values)
            if child is None:
                child = self._children[values] = _Child()
            return child

    def _values(self, args: tuple[str, ...], kwargs: Mapping[str, str]) -> tuple[str, ...]:
        if args and kwargs:
            raise ValueError("labels(): pass label values by position or by name, not both")
        if kwargs:
            if set(kwargs) != set(self.label_names):
                raise ValueError(f"{self.name}: labels {sorted(kwargs)} != {self.label_names}")
            args = tuple(kwargs[n] for n in self.label_names)
        if len(args) != len(self.label_names) or not self.label_names:
            raise ValueError(f"{self.name}: expected label values for {self.label_names}")
        return tuple(str(a) for a in args)

    def _only_child(self) -> _Child:
        if self.label_names:
            raise ValueError(f"{self.name} has labels: call labels() first")
        return self._children[()]

    def _samples(self) -> list[tuple[dict[str, str], _Child]]:
        with self._lock:
            items = list(self._children.items())
        return [(dict(zip(self.label_names, k, strict=True)), c) for k, c in items]


class CounterChild:
    """One label set of a counter."""

    __slots__ = ("_child",)

    def __init__(self, child: _Child) -> None:
        self._child = child

    def inc(self, amount: float = 1.0) -> None:
        """Add a non-negative amount."""
        if amount < 0:
            raise ValueError("Counters can only be incremented by non-negative amounts.")
        self._child.add(amount)

    @property
    def value(self) -> float:
        """The count so far."""
        return self._child.value


class Counter(_Metric):
    """A monotonically increasing count, exported as <name>_total and <name>_created."""

    def labels(self, *values: str, **named: str) -> CounterChild:
        """The counter of one label set."""
        return CounterChild(self._child(self._values(values, named)))

    def inc(self, amount: float = 1.0) -> None:
        """Add to an unlabelled counter."""
        CounterChild(self._only_child()).inc(amount)

    def collect(self) -> Iterator[MetricFamily]:
        """The _total family, then the _created one."""
        total = MetricFamily(f"{self.name}_total", self.documentation, "counter")
        created = MetricFamily(f"{self.name}_created", self.documentation, "gauge")
        for labels, child in self._samples():
            total.samples.append(Sample(total.name, labels, child.value))
            created.samples.append(Sample(created.name, labels, child.created))
        yield total
        if created.samples:
            yield created


class Gauge(_Metric):
    """A value that is set (this daemon uses unlabelled gauges only)."""

    def set(self, value: float) -> None:
        """Set the value."""
        child = self._only_child()
        with child._lock:
            child.value = float(value)

    def collect(self) -> Iterator[MetricFamily]:
        """One family with the gauge's samples."""
        family = MetricFamily(self.name, self.documentation, "gauge")
        family.samples += [Sample(self.name, labels, c.value) for labels, c in self._samples()]
        yield family


def _names(collector: Collector) -> set[str]:
    return {f.name for f in collector.collect()}


def _family_text(family: MetricFamily) -> str:
    help_text = family.documentation.replace("\\", r"\\").replace("\n", r"\n")
    lines = [f"# HELP {family.name} {help_text}\n", f"# TYPE {family.name} {family.type}\n"]
    for sample in family.samples:
        lines.append(f"{sample.name}{_labels_text(sample.labels)} {format_value(sample.value)}\n")
    return "".join(lines)


def _labels_text(labels: Mapping[str, str]) -> str:
    if not labels:
        return ""
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + pairs + "}"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def format_value(value: float) -> str:
    """A sample value as Prometheus writes it: +Inf/-Inf/NaN, Python's repr otherwise, with
    numbers of seven or more integer digits in exponent form (1.7e+09 rather than 1700000000.0)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    point = text.find(".")
    if value > 0 and "e" not in text and point > 6:
        digits = (text[:point] + text[point + 1 :]).rstrip("0") or "0"
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{mantissa}e+{point - 1:02d}"
    return text
