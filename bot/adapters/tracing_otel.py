"""The Tracer port on the OpenTelemetry SDK, exporting spans over OTLP/HTTP (the ``otel`` extra).

Imported only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (``bot.observability.setup``), so a bot
without tracing never loads OpenTelemetry. Each :class:`OtelTracer` has its own
``TracerProvider`` (the global one is left alone: a host application or a test may own it);
spans nest through OpenTelemetry's context, which follows ``contextvars`` like the log context.

Deadlines: one export waits at most ``EXPORT_TIMEOUT`` seconds; ``close()`` waits at most
``CLOSE_TIMEOUT`` for the last batch. Standard ``OTEL_*`` variables still apply where the SDK reads
them (``OTEL_EXPORTER_OTLP_HEADERS``, ``OTEL_TRACES_SAMPLER``, ``OTEL_RESOURCE_ATTRIBUTES``).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from contextvars import ContextVar

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import Status, StatusCode

from bot.config import redact_url
from bot.domain.tracing import AttributeValue, Span

logger = logging.getLogger(__name__)

EXPORT_TIMEOUT = 5.0
CLOSE_TIMEOUT = 5.0
_HEX32 = re.compile(r"^[0-9a-f]{32}$")

# The trace id the next root span should take (set just around start_span).
_next_trace_id: ContextVar[int | None] = ContextVar("ideabot_next_trace_id", default=None)


class _IdGenerator(RandomIdGenerator):
    """Random ids, except that a root span opened with ``trace_id=`` takes that id."""

    def generate_trace_id(self) -> int:
        wanted = _next_trace_id.get()
        return wanted if wanted else super().generate_trace_id()


class _OtelSpan:
    def __init__(self, span: trace.Span) -> None:
        self._span = span

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        self._span.set_attribute(key, value)

    def record_error(self, exc: BaseException) -> None:
        # The type only: exception messages can carry request data.
        self._span.set_attribute("error.type", type(exc).__name__)
        self._span.set_status(Status(StatusCode.ERROR, type(exc).__name__))


def traces_url(endpoint: str) -> str:
    """The OTLP/HTTP traces URL for a base *endpoint*, as OTEL_EXPORTER_OTLP_ENDPOINT means it."""
    return endpoint.rstrip("/") + "/v1/traces"


class OtelTracer:
    """``Tracer`` exporting to the OTLP/HTTP collector at *endpoint* (the base URL)."""

    def __init__(
        self,
        endpoint: str | None = None,
        *,
        service_name: str = "ideabot",
        exporter: SpanExporter | None = None,
        schedule_delay: float = 2.0,
    ) -> None:
        if exporter is None:
            if not endpoint:
                raise ValueError("an OTLP endpoint or an exporter is required")
            exporter = OTLPSpanExporter(endpoint=traces_url(endpoint), timeout=EXPORT_TIMEOUT)
            logger.info("tracing: exporting spans to %s", redact_url(traces_url(endpoint)))
        self.provider = TracerProvider(
            resource=Resource.create({"service.name": service_name}),
            id_generator=_IdGenerator(),
            shutdown_on_exit=False,
        )
        self.provider.add_span_processor(
            BatchSpanProcessor(
                exporter,
                schedule_delay_millis=schedule_delay * 1000,
                export_timeout_millis=EXPORT_TIMEOUT * 1000,
            )
        )
        self._tracer = self.provider.get_tracer("ideabot")

    def span(
        self, name: str, *, trace_id: str | None = None, **attributes: AttributeValue
    ) -> AbstractContextManager[Span]:
        """A span for the ``with`` block; a root span takes *trace_id* when it is 32 hex digits."""
        return self._span(name, trace_id, attributes)

    @contextmanager
    def _span(
        self, name: str, trace_id: str | None, attributes: dict[str, AttributeValue]
    ) -> Iterator[Span]:
        token = None
        if (
            trace_id
            and _HEX32.match(trace_id)
            and int(trace_id, 16)
            and not trace.get_current_span().get_span_context().is_valid
        ):
            token = _next_trace_id.set(int(trace_id, 16))
        try:
            otel_span = self._tracer.start_span(name, attributes=attributes or None)
        finally:
            if token is not None:
                _next_trace_id.reset(token)
        with trace.use_span(
            otel_span, end_on_exit=True, record_exception=False, set_status_on_exception=False
        ):
            span = _OtelSpan(otel_span)
            try:
                yield span
            except BaseException as exc:
                span.record_error(exc)
                raise

    def flush(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Exports every finished span now; False if that took longer than *timeout* seconds."""
        return self.provider.force_flush(int(timeout * 1000))

    def close(self) -> None:
        """Exports what is left (at most ``CLOSE_TIMEOUT`` s) and stops the export thread."""
        self.flush()
        self.provider.shutdown()
