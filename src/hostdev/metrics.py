"""hostdev's metrics: counted here, written in Prometheus' text format, served over HTTP.

Counters and the scan gauge are plain numbers in this module; device counts are not kept up
to date by hand: `NodeCollector` reads the device table when Prometheus scrapes. The text
exposition format (version 0.0.4) is written here too, a few lines, rather than by
prometheus_client: importing the client library would cost the daemon 2 MiB at its first
scrape, and 4.5 MiB more for the TLS library its exposition module imports, which
`hostdev serve` keeps out of the process (hostdev.daemon.footprint, docs/benchmarks.md).
The tests read our output back with prometheus_client's own parser.

The HTTP server is asyncio on the daemon's own loop, so /healthz answering proves the loop is
alive; it speaks just enough HTTP/1.1 for Prometheus and the kubelet's probes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from hostdev.errors import BadInputError

if TYPE_CHECKING:
    from hostdev.kubelet.state import DeviceTable

log = logging.getLogger(__name__)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True, slots=True)
class Sample:
    """One value of a family, with its label values."""

    labels: tuple[tuple[str, str], ...]
    value: float


@dataclass(frozen=True, slots=True)
class Family:
    """A metric family as the text format shows it: name, type, help text and samples."""

    name: str  # a counter's samples are written as <name>_total
    kind: str  # "counter" or "gauge"
    documentation: str
    samples: tuple[Sample, ...]


class Collector(Protocol):
    """Anything that yields metric families when Prometheus scrapes."""

    def collect(self) -> Iterable[Family]:
        """The families as they stand now."""
        ...


class Counter:
    """A counter by label values; `labels(...).inc()` as with prometheus_client."""

    def __init__(self, name: str, documentation: str, labelnames: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = labelnames
        self._counts: dict[tuple[str, ...], float] = {}
        self._lock = threading.Lock()  # bind onStart counts from the scan's worker thread

    def labels(self, *values: str, **by_name: str) -> _Child:
        """The count for these label values, given in order or by name."""
        if by_name and not values and by_name.keys() == set(self.labelnames):
            values = tuple(by_name[name] for name in self.labelnames)
        elif by_name or len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes the labels {self.labelnames}")
        return _Child(self, values)

    def add(self, key: tuple[str, ...], amount: float) -> None:
        """Add to the count of one label tuple."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0.0) + amount

    def value(self, *values: str, **by_name: str) -> float:
        """The count so far (0 for label values never counted)."""
        return self._counts.get(self.labels(*values, **by_name).key, 0.0)

    def family(self) -> Family:
        """The counter's family (written as <name>_total)."""
        with self._lock:
            counts = sorted(self._counts.items())
        samples = (Sample(tuple(zip(self.labelnames, k, strict=True)), n) for k, n in counts)
        return Family(self.name, "counter", self.documentation, tuple(samples))


@dataclass(frozen=True, slots=True)
class _Child:
    counter: Counter
    key: tuple[str, ...]

    def inc(self, amount: float = 1.0) -> None:
        """Count amount more."""
        self.counter.add(self.key, amount)


class Gauge:
    """A gauge without labels."""

    def __init__(self, name: str, documentation: str) -> None:
        self.name = name
        self.documentation = documentation
        self.value = 0.0

    def set(self, value: float) -> None:
        """Set the current value."""
        self.value = value

    def family(self) -> Family:
        """The gauge's family."""
        return Family(self.name, "gauge", self.documentation, (Sample((), self.value),))


ALLOCATIONS = Counter(
    "hostdev_allocations",
    "Allocate container requests answered, by resource and result (granted or refused).",
    ("resource", "result"),
)
BINDING_FAILURES = Counter(
    "hostdev_binding_failures",
    "Driver bind or unbind operations the kernel refused, by operation.",
    ("operation",),
)
HEALTH_TRANSITIONS = Counter(
    "hostdev_health_transitions",
    "Devices whose health changed, by resource and new state (healthy or unhealthy).",
    ("resource", "to"),
)
REGISTRATIONS = Counter(
    "hostdev_registrations",
    "Register calls to the kubelet, by resource and result (accepted or failed).",
    ("resource", "result"),
)
RESCANS = Counter(
    "hostdev_rescans",
    "Host rescans, by what triggered them (uevent, inotify, backstop, overflow).",
    ("trigger",),
)
SCAN_SECONDS = Gauge(
    "hostdev_last_scan_duration_seconds",
    "Duration of the last host scan (sysfs walk, health signals and selection).",
)
CONFIG_RELOADS = Counter(
    "hostdev_config_reloads",
    "Config reload attempts, by result (applied, unchanged or rejected).",
    ("result",),
)
PLUGIN_SERVERS = Counter(
    "hostdev_plugin_servers",
    "Plugin socket starts, by resource and result (started or failed).",
    ("resource", "result"),
)
METRICS = (
    ALLOCATIONS,
    BINDING_FAILURES,
    HEALTH_TRANSITIONS,
    REGISTRATIONS,
    RESCANS,
    SCAN_SECONDS,
    CONFIG_RELOADS,
    PLUGIN_SERVERS,
)


class MetricsCollector:
    """The counters and the gauge above."""

    def collect(self) -> Iterator[Family]:
        """Every family, counted or not yet."""
        return (metric.family() for metric in METRICS)


class NodeCollector:
    """Read at scrape time from the running node: hostdev_devices{resource,state} from the
    device table, and hostdev_podresources_reachable from the PodResources reconciler.

    Device states are exclusive so they sum to the capacity: unhealthy (whatever its use),
    allocated (healthy and held by a pod), healthy (healthy and free)."""

    def __init__(
        self,
        table: Callable[[], DeviceTable | None],
        reachable: Callable[[], bool | None] = lambda: None,
    ) -> None:
        self.table = table
        self.reachable = reachable

    def collect(self) -> Iterator[Family]:
        """One device sample per resource and state; reachability once known."""
        yield Family(
            "hostdev_devices",
            "gauge",
            "Devices served, by resource and state (healthy, allocated, unhealthy).",
            tuple(
                Sample((("resource", name), ("state", state)), counts[state])
                for name, counts in sorted(device_counts(self.table()).items())
                for state in ("healthy", "allocated", "unhealthy")
            ),
        )
        reachable = self.reachable()
        if reachable is not None:
            yield Family(
                "hostdev_podresources_reachable",
                "gauge",
                "1 when the last PodResources List call succeeded, 0 when it failed.",
                (Sample((), 1 if reachable else 0),),
            )


def exposition(families: Iterable[Family]) -> bytes:
    """The families in Prometheus' text format, version 0.0.4."""
    lines = []
    for family in families:
        name = f"{family.name}_total" if family.kind == "counter" else family.name
        lines.append(f"# HELP {name} {_escape(family.documentation, quote=False)}")
        lines.append(f"# TYPE {name} {family.kind}")
        for sample in family.samples:
            labels = ",".join(f'{k}="{_escape(v, quote=True)}"' for k, v in sample.labels)
            selector = f"{{{labels}}}" if labels else ""
            lines.append(f"{name}{selector} {_number(sample.value)}")
    return ("\n".join(lines) + "\n").encode()


def _escape(text: str, *, quote: bool) -> str:
    text = text.replace("\\", "\\\\").replace("\n", "\\n")
    return text.replace('"', '\\"') if quote else text


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def device_counts(table: DeviceTable | None) -> dict[str, dict[str, int]]:
    """Per resource: how many devices are healthy and free, allocated, unhealthy."""
    if table is None:
        return {}
    result: dict[str, dict[str, int]] = {}
    in_use = table.in_use
    for name in table.resource_names():
        snapshot = table.snapshot(name)
        counts = {"healthy": 0, "allocated": 0, "unhealthy": 0}
        for view in snapshot.views if snapshot else ():
            state = "unhealthy" if not view.healthy else "healthy"
            if view.healthy and view.device.id in in_use:
                state = "allocated"
            counts[state] += 1
        result[name] = counts
    return result


def parse_address(text: str) -> tuple[str, int]:
    """ "HOST:PORT", "[::1]:PORT" or ":PORT" (all interfaces) → (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not (port.isascii() and port.isdigit()) or not 0 <= int(port) <= 65535:
        raise BadInputError(f"invalid --metrics-address {text!r}: expected HOST:PORT")
    host = host.removeprefix("[").removesuffix("]")
    return host or "0.0.0.0", int(port)


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer."""

    status: int
    reason: str
    content_type: str
    body: bytes


class MetricsServer:
    """Serves /metrics (Prometheus text format) and /healthz (liveness) over HTTP."""

    def __init__(
        self,
        host: str,
        port: int,
        problem: Callable[[], str | None],
        collectors: Iterable[Collector] = (),
    ) -> None:
        self.host = host
        self.port = port
        self.problem = problem  # None while alive, else why the daemon is not
        self.collectors = (MetricsCollector(), *collectors)
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        """Listen (port 0 picks a free port, stored back in `port`)."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as err:  # an unknown host, an address not on this node, a busy port
            raise BadInputError(
                f"cannot listen on --metrics-address {self.host}:{self.port}: {err.strerror or err}"
            ) from err
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("metrics and /healthz on http://%s:%d", self.host, self.port)

    async def stop(self) -> None:
        """Stop listening."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    def answer(self, method: str, path: str) -> Reply:
        """The reply to one request (pure apart from reading the metrics)."""
        if method not in ("GET", "HEAD"):
            return Reply(405, "Method Not Allowed", "text/plain", b"GET or HEAD only\n")
        path = path.split("?", 1)[0]
        if path == "/metrics":
            return self._scrape()
        if path == "/healthz":
            problem = self.problem()
            if problem is None:
                return Reply(200, "OK", "text/plain", b"ok\n")
            return Reply(503, "Service Unavailable", "text/plain", problem.encode() + b"\n")
        return Reply(404, "Not Found", "text/plain", b"try /metrics or /healthz\n")

    def _scrape(self) -> Reply:
        families = (f for collector in self.collectors for f in collector.collect())
        return Reply(200, "OK", CONTENT_TYPE, exposition(families))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(5.0):
                head = await reader.readuntil(b"\r\n\r\n")
            parts = head.split(b"\r\n", 1)[0].decode("latin-1").split()
            if len(parts) != 3:
                reply = Reply(400, "Bad Request", "text/plain", b"bad request line\n")
            else:
                reply = self.answer(parts[0], parts[1])
            writer.write(_encode(reply, include_body=parts[:1] != ["HEAD"]))
            await writer.drain()
        except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError):
            pass  # a client that hangs up or sends garbage gets nothing
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _encode(reply: Reply, *, include_body: bool) -> bytes:
    head = (
        f"HTTP/1.1 {reply.status} {reply.reason}\r\n"
        f"Content-Type: {reply.content_type}\r\n"
        f"Content-Length: {len(reply.body)}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")
    return head + (reply.body if include_body else b"")
