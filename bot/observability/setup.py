"""From the settings to a metrics adapter and a tracer (called by the composition root).

Nothing heavy is imported until a setting asks for it: ``METRICS_FORMAT=none`` imports no
``prometheus_client``, and without ``OTEL_EXPORTER_OTLP_ENDPOINT`` OpenTelemetry is never loaded.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO

from bot.config import ConfigError
from bot.domain.metrics import Metrics, NullMetrics
from bot.domain.tracing import NoopTracer, Tracer

if TYPE_CHECKING:
    from bot.config import Settings


def _utcnow() -> datetime:
    return datetime.now(UTC)


def make_metrics(
    settings: Settings,
    *,
    stream: TextIO | None = None,
    clock: Callable[[], datetime] = _utcnow,
) -> Metrics:
    """The adapter METRICS_FORMAT names, not started: ``EmfMetrics.start()`` begins flushing to
    *stream* (standard output by default); Prometheus is served by whoever mounts its app."""
    if settings.metrics_format == "prometheus":
        from bot.adapters.metrics_prometheus import PrometheusMetrics

        return PrometheusMetrics(clock=clock)
    if settings.metrics_format == "emf":
        from bot.adapters.metrics_emf import EmfMetrics

        return EmfMetrics(
            namespace=settings.metrics_namespace,
            dimensions=settings.metrics_dimensions,
            stream=stream,
            clock=clock,
            flush_seconds=settings.metrics_flush_seconds,
        )
    return NullMetrics()


def make_tracer(settings: Settings) -> Tracer:
    """An OpenTelemetry tracer when OTEL_EXPORTER_OTLP_ENDPOINT is set, else the no-op one."""
    endpoint = settings.otel_exporter_otlp_endpoint
    if not endpoint:
        return NoopTracer()
    try:
        from bot.adapters.tracing_otel import OtelTracer
    except ImportError as exc:
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_ENDPOINT: tracing needs the otel extra "
            f"(pip install 'ideabot[otel]'); missing {exc.name}"
        ) from None
    return OtelTracer(endpoint, service_name=settings.otel_service_name)
