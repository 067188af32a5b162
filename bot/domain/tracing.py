"""The tracing port: spans around the work, sent somewhere only when tracing is configured.

``with tracer.span(SPAN_TRIAGE, channel=...) as span: ...; span.set_attribute("kind", t.kind)``.
:class:`NoopTracer` is the default and costs one method call per span; the OpenTelemetry adapter
(``bot.adapters.tracing_otel``, installed with the ``otel`` extra) is used only when
``OTEL_EXPORTER_OTLP_ENDPOINT`` is set.

A span opened with ``trace_id=`` (32 hex digits, see ``bot.domain.envelope.new_id``) while no
span is open starts that trace, so the trace id in the JSON logs and the one in the tracing
backend are the same. Attributes are small scalars; never a message text, a token or a user's
name.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

AttributeValue = str | bool | int | float

# Span names, one per kind of work (attributes carry the detail).
SPAN_EVENT = "ideabot.event"  # one Slack event, from receipt to the last reply
SPAN_TRIAGE = "ideabot.triage"
SPAN_ANALYZE = "ideabot.analyze"  # the analyzer (LLM or offline)
SPAN_SEARCH = "ideabot.search"  # the similar-ticket search
SPAN_FILE = "ideabot.file"  # one outbox attempt
SPAN_JIRA = "jira.call"  # attribute "method"
SPAN_SLACK = "slack.call"  # attribute "method"


class Span(Protocol):
    """An open span."""

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Adds one attribute."""
        ...

    def record_error(self, exc: BaseException) -> None:
        """Marks the span failed with *exc*'s type (not its message, which may hold data)."""
        ...


class Tracer(Protocol):
    """Opens spans; nested spans are children of the span open in this thread."""

    def span(
        self, name: str, *, trace_id: str | None = None, **attributes: AttributeValue
    ) -> AbstractContextManager[Span]:
        """A span for the ``with`` block; an exception leaving the block marks it failed."""
        ...

    def close(self) -> None:
        """Sends what is buffered (bounded by a deadline) and stops."""
        ...


class NoopSpan:
    """A span that records nothing."""

    def set_attribute(self, key: str, value: AttributeValue) -> None:
        """Does nothing."""

    def record_error(self, exc: BaseException) -> None:
        """Does nothing."""


class _NoopBlock(AbstractContextManager[Span]):
    # One shared, stateless instance: entering it allocates nothing.
    def __enter__(self) -> Span:
        return _NOOP_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NOOP_SPAN = NoopSpan()
_NOOP_BLOCK = _NoopBlock()


class NoopTracer:
    """The default tracer: no spans, no imports, no cost beyond the call."""

    def span(
        self, name: str, *, trace_id: str | None = None, **attributes: AttributeValue
    ) -> AbstractContextManager[Span]:
        """A span that records nothing."""
        return _NOOP_BLOCK

    def close(self) -> None:
        """Does nothing."""
