"""What observability costs per call: metrics (null, Prometheus, EMF), spans (off, on), log lines.

Prints microseconds per call (the median of 5 runs of N calls each); asserts nothing.

    .venv/bin/python -m bench.bench_observability [--calls 20000]
"""

from __future__ import annotations

import argparse
import io
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

from bot.adapters.metrics_emf import EmfMetrics
from bot.adapters.metrics_prometheus import PrometheusMetrics
from bot.domain import metrics as m
from bot.domain.metrics import NullMetrics
from bot.domain.tracing import NoopTracer
from bot.observability.context import log_context
from bot.observability.logs import make_handler


def per_call(fn: Callable[[], Any], calls: int) -> float:
    """Microseconds per call of *fn*, the median of 5 runs."""
    runs = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        runs.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(runs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--calls", type=int, default=20_000)
    n = ap.parse_args().calls
    rows: list[tuple[str, float]] = []
    for label, metrics in (
        ("null", NullMetrics()),
        ("prometheus", PrometheusMetrics(process_metrics=False)),
        ("emf", EmfMetrics(stream=io.StringIO())),
    ):
        rows.append(
            (
                f"metrics {label}: inc",
                per_call(lambda x=metrics: x.inc(m.FILINGS, outcome="filed"), n),
            )
        )
        rows.append(
            (
                f"metrics {label}: observe",
                per_call(lambda x=metrics: x.observe(m.ACK_SECONDS, 0.05, type="message"), n),
            )
        )
    noop = NoopTracer()

    def noop_span() -> None:
        with noop.span("ideabot.triage", channel="C1"):
            pass

    rows.append(("tracing off: span", per_call(noop_span, n)))
    try:
        from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

        from bot.adapters.tracing_otel import OtelTracer

        class Drop(SpanExporter):
            def export(self, spans: Any) -> SpanExportResult:
                return SpanExportResult.SUCCESS

        otel = OtelTracer(exporter=Drop())

        def otel_span() -> None:
            with otel.span("ideabot.triage", channel="C1"):
                pass

        rows.append(("tracing on (exporter dropped): span", per_call(otel_span, n // 4)))
        otel.close()
    except ImportError:
        print("(the otel extra is not installed: no 'tracing on' figure)")
    for fmt in ("text", "json"):
        log = logging.getLogger(f"bench.{fmt}")
        log.propagate = False
        log.setLevel(logging.INFO)
        log.addHandler(make_handler(fmt, io.StringIO()))  # type: ignore[arg-type]
        with log_context(trace_id="0af7651916cd43dd8448eb211c80319c", channel="C1", ts="1.2"):
            rows.append(
                (
                    f"log line {fmt} (with context)",
                    per_call(lambda lg=log: lg.info("filed %s", "IDEA-1"), n // 4),
                )
            )
    for what, us in rows:
        print(f"{what:42s} {us:8.2f} µs/call")


if __name__ == "__main__":
    main()
