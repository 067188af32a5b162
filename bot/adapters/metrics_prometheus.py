"""The Metrics port on ``prometheus-client``: a private registry, a WSGI app and a small server.

Each :class:`PrometheusMetrics` owns its own ``CollectorRegistry`` (never the library's global
one), so two bots in one process (tests, ``rig.replica()``) never share or clash over series.
``wsgi_app()`` serves the registry (``GET /metrics``, text or OpenMetrics by ``Accept``, gzip when
asked); :class:`MetricsServer` serves it on its own port for Socket Mode, where the bot has no
HTTP server of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest, make_wsgi_app, start_http_server
from prometheus_client.registry import Collector

from bot.domain.metrics import CATALOGUE, LabelGuard, MetricError, MetricSpec, spec_for

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class _AgeCollector(Collector):
    """Age gauges: stores the moment, reports ``now - moment`` at each scrape."""

    def __init__(self, specs: Iterable[MetricSpec], clock: Clock) -> None:
        self.specs = {s.name: s for s in specs}
        self.clock = clock
        self.since: dict[str, dict[tuple[str, ...], datetime | None]] = {n: {} for n in self.specs}
        self._lock = threading.Lock()

    def set(self, name: str, values: tuple[str, ...], since: datetime | None) -> None:
        with self._lock:
            self.since[name][values] = since

    def collect(self) -> Iterator[Metric]:
        now = self.clock()
        with self._lock:
            snapshot = {n: dict(v) for n, v in self.since.items()}
        for name, series in snapshot.items():
            spec = self.specs[name]
            family = GaugeMetricFamily(name, spec.help, labels=list(spec.labels))
            for values, since in series.items():
                age = 0.0 if since is None else max(0.0, (now - since).total_seconds())
                family.add_metric(list(values), age)
            yield family


class PrometheusMetrics:
    """``Metrics`` in a private Prometheus registry, one collector per catalogue entry."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        clock: Clock = _utcnow,
        process_metrics: bool = True,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        self.guard = LabelGuard()
        self._metrics: dict[str, Any] = {}
        for spec in CATALOGUE.values():
            if spec.kind == "counter":
                self._metrics[spec.name] = Counter(
                    spec.name, spec.help, spec.labels, registry=self.registry
                )
            elif spec.kind == "histogram":
                self._metrics[spec.name] = Histogram(
                    spec.name, spec.help, spec.labels, registry=self.registry, buckets=spec.buckets
                )
            elif spec.kind == "gauge":
                self._metrics[spec.name] = Gauge(
                    spec.name, spec.help, spec.labels, registry=self.registry
                )
        self._ages = _AgeCollector((s for s in CATALOGUE.values() if s.kind == "age"), clock)
        self.registry.register(self._ages)
        if process_metrics:
            # process_cpu_seconds_total, process_resident_memory_bytes, open fds (Linux only).
            ProcessCollector(registry=self.registry)

    def _child(self, name: str, kind: str, labels: dict[str, str]) -> Any:
        spec = spec_for(name)
        if spec.kind != kind:
            raise MetricError(f"{name} is a {spec.kind}, not a {kind}")
        values = self.guard.check(spec, labels)
        metric = self._metrics[name]
        return metric.labels(*values) if values else metric

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Adds *amount* (>= 0) to counter *name*."""
        self._child(name, "counter", labels).inc(amount)

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Records *value* in histogram *name*."""
        self._child(name, "histogram", labels).observe(value)

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        """Sets gauge *name*."""
        self._child(name, "gauge", labels).set(value)

    def set_since(self, name: str, since: datetime | None, **labels: str) -> None:
        """Makes age gauge *name* report the seconds since *since* at every scrape."""
        spec = spec_for(name)
        if spec.kind != "age":
            raise MetricError(f"{name} is a {spec.kind}, not an age")
        self._ages.set(name, self.guard.check(spec, labels), since)

    def exposition(self) -> bytes:
        """The registry in the Prometheus text format (what ``GET /metrics`` returns)."""
        return generate_latest(self.registry)

    def wsgi_app(self) -> WsgiApp:
        """A WSGI app serving this registry (any path; mount it at ``/metrics``)."""
        app: WsgiApp = make_wsgi_app(self.registry)
        return app


class MetricsServer:
    """Serves one registry on ``host:port`` (0 picks a free port) in a background thread."""

    def __init__(self, metrics: PrometheusMetrics, port: int, host: str = "0.0.0.0") -> None:
        self.metrics = metrics
        self.host = host
        self.requested_port = port
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        return int(self._server.server_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def start(self) -> MetricsServer:
        """Starts listening; returns self. Raises OSError when the port is taken."""
        self._server, self._thread = start_http_server(
            self.requested_port, addr=self.host, registry=self.metrics.registry
        )
        logger.info("metrics: serving Prometheus metrics on %s:%s", self.host, self.port)
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5)
        self._server = None
