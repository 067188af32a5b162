"""The Metrics port as CloudWatch Embedded Metric Format (EMF) documents on standard output.

``METRICS_FORMAT=emf``: values are aggregated in memory and written every ``METRICS_FLUSH_SECONDS``
(and at shutdown) as EMF JSON, one document per line, which CloudWatch Logs turns into metrics
(ECS/EKS with the CloudWatch agent or FireLens, Lambda, or any log group EMF is sent to). The
format is written here by hand from AWS's specification; ``tests/fakes/emf_schema.py`` checks
every document against the specification's rules.

One flush writes as few documents as EMF allows. In EMF a dimension's value is a member of the
document's root, so a document carries one value per dimension: the series of one flush are
grouped by their label values (plus the static ``METRICS_DIMENSIONS``) and each group is one
document of at most 100 metrics. What a flush writes per kind:

* counter: the increase since the last flush (CloudWatch sums them); nothing when unchanged;
* histogram: the observations since the last flush as ``{"Values", "Counts", "Max", "Min",
  "Count", "Sum"}`` (at most 100 distinct values, each rounded to 3 significant digits; a series
  that reaches 100 before the flush is sealed and written in a document of its own, so nothing
  is dropped) -- the shape AWS's own EMF libraries write for histograms;
* gauge: its current value, every flush;
* age: the seconds since its moment, computed at the flush.
"""

from __future__ import annotations

import json
import logging
import math
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from bot.domain.metrics import LabelGuard, MetricError, MetricSpec, spec_for

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]

MAX_METRICS_PER_DOCUMENT = 100
MAX_VALUES_PER_METRIC = 100
MAX_DIMENSIONS = 30
# CloudWatch refuses values outside +-2^360 and every NaN or infinity.
MAX_ABS_VALUE = 2.0**360


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _round(value: float) -> float:
    return float(f"{value:.3g}")


@dataclass
class _Distribution:
    """Observations of one histogram series since the last flush."""

    bins: dict[float, int] = field(default_factory=dict)
    count: int = 0
    total: float = 0.0
    low: float = math.inf
    high: float = -math.inf

    def full_for(self, value: float) -> bool:
        return _round(value) not in self.bins and len(self.bins) >= MAX_VALUES_PER_METRIC

    def add(self, value: float) -> None:
        key = _round(value)
        self.bins[key] = self.bins.get(key, 0) + 1
        self.count += 1
        self.total += value
        self.low = min(self.low, value)
        self.high = max(self.high, value)

    def to_emf(self) -> dict[str, Any]:
        values = sorted(self.bins)
        return {
            "Values": values,
            "Counts": [self.bins[v] for v in values],
            "Max": self.high,
            "Min": self.low,
            "Count": self.count,
            "Sum": self.total,
        }


Series = tuple[str, tuple[str, ...]]  # (metric name, label values in the spec's order)


class EmfMetrics:
    """``Metrics`` written as EMF documents to *stream* (standard output by default)."""

    def __init__(
        self,
        *,
        namespace: str = "ideabot",
        dimensions: Mapping[str, str] | None = None,
        stream: TextIO | None = None,
        clock: Clock = _utcnow,
        flush_seconds: float = 60.0,
    ) -> None:
        self.namespace = namespace
        self.dimensions = dict(dimensions or {})
        self.stream = stream
        self.clock = clock
        self.flush_seconds = flush_seconds
        self.guard = LabelGuard()
        self._counters: dict[Series, float] = {}
        self._histograms: dict[Series, _Distribution] = {}
        self._sealed: list[tuple[Series, _Distribution]] = []
        self._gauges: dict[Series, float] = {}
        self._ages: dict[Series, datetime | None] = {}
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ the port

    def _series(self, name: str, kind: str, labels: dict[str, str]) -> Series:
        spec = spec_for(name)
        if spec.kind != kind:
            raise MetricError(
                f"{name} is a {spec.kind}, not a {'an' if kind == 'age' else 'a'} {kind}"
            )
        return name, self.guard.check(spec, labels)

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Adds *amount* (>= 0) to counter *name* for the next flush."""
        if amount < 0:
            raise MetricError(f"{name}: a counter only goes up (got {amount})")
        key = self._series(name, "counter", labels)
        with self._lock:
            self._counters[key] = self._counters.get(key, 0.0) + amount

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Records *value* in histogram *name* for the next flush."""
        key = self._series(name, "histogram", labels)
        if not _valid(value):
            return
        with self._lock:
            dist = self._histograms.get(key)
            if dist is None:
                dist = self._histograms[key] = _Distribution()
            elif dist.full_for(value):
                self._sealed.append((key, dist))
                dist = self._histograms[key] = _Distribution()
            dist.add(value)

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        """Sets gauge *name*; every flush writes its latest value."""
        key = self._series(name, "gauge", labels)
        if _valid(value):
            with self._lock:
                self._gauges[key] = value

    def set_since(self, name: str, since: datetime | None, **labels: str) -> None:
        """Makes age gauge *name* write the seconds since *since* at every flush."""
        key = self._series(name, "age", labels)
        with self._lock:
            self._ages[key] = since

    # ------------------------------------------------------------------ documents

    def documents(self) -> list[dict[str, Any]]:
        """Takes everything recorded since the last call as EMF documents (and resets counters
        and histograms). ``flush`` writes these; tests read them directly."""
        now = self.clock()
        with self._lock:
            counters, self._counters = self._counters, {}
            histograms, self._histograms = self._histograms, {}
            sealed, self._sealed = self._sealed, []
            gauges = dict(self._gauges)
            ages = dict(self._ages)
        rounds: list[dict[Series, Any]] = [{}]
        for key, total in counters.items():
            if total:
                rounds[0][key] = total
        for key, dist in histograms.items():
            rounds[0][key] = dist.to_emf()
        for key, value in gauges.items():
            rounds[0][key] = value
        for key, since in ages.items():
            rounds[0][key] = 0.0 if since is None else max(0.0, (now - since).total_seconds())
        # A sealed histogram goes in the first round that does not carry the same series yet.
        for key, dist in sealed:
            target = next((r for r in rounds if key not in r), None)
            if target is None:
                target = {}
                rounds.append(target)
            target[key] = dist.to_emf()
        stamp = int(now.timestamp() * 1000)
        docs: list[dict[str, Any]] = []
        for values in rounds:
            groups: dict[tuple[tuple[str, str], ...], list[tuple[MetricSpec, Any]]] = {}
            for (name, label_values), value in values.items():
                spec = spec_for(name)
                group = tuple(zip(spec.labels, label_values, strict=True))
                groups.setdefault(group, []).append((spec, value))
            for group, metrics in sorted(groups.items()):
                metrics.sort(key=lambda m: m[0].name)
                for start in range(0, len(metrics), MAX_METRICS_PER_DOCUMENT):
                    docs.append(
                        self._document(
                            stamp, dict(group), metrics[start : start + MAX_METRICS_PER_DOCUMENT]
                        )
                    )
        return docs

    def _document(
        self, stamp: int, labels: dict[str, str], metrics: list[tuple[MetricSpec, Any]]
    ) -> dict[str, Any]:
        dims = {**self.dimensions, **labels}
        doc: dict[str, Any] = {
            "_aws": {
                "Timestamp": stamp,
                "CloudWatchMetrics": [
                    {
                        "Namespace": self.namespace,
                        "Dimensions": [list(dims)],
                        "Metrics": [{"Name": s.name, "Unit": s.unit} for s, _ in metrics],
                    }
                ],
            },
            **dims,
        }
        for spec, value in metrics:
            doc[spec.name] = value
        return doc

    def flush(self) -> int:
        """Writes what was recorded since the last flush; returns the number of documents."""
        docs = self.documents()
        if not docs:
            return 0
        lines = "".join(json.dumps(d, separators=(",", ":")) + "\n" for d in docs)
        stream = self.stream if self.stream is not None else sys.stdout
        with self._write_lock:
            stream.write(lines)
            stream.flush()
        return len(docs)

    # ------------------------------------------------------------------ background flushing

    def start(self) -> EmfMetrics:
        """Flushes every ``flush_seconds`` in a daemon thread until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="emf-metrics", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self.flush_seconds):
            try:
                self.flush()
            except Exception:
                # Metrics must never take the bot down; the next flush retries with new data.
                logger.warning("metrics: EMF flush failed", exc_info=True)

    def close(self) -> None:
        """Stops the flusher and writes what is left."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        try:
            self.flush()
        except Exception:
            logger.warning("metrics: final EMF flush failed", exc_info=True)


def _valid(value: float) -> bool:
    return math.isfinite(value) and abs(value) <= MAX_ABS_VALUE
