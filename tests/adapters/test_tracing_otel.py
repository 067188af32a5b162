"""Tracing: off costs nothing and loads nothing; on, spans reach a real OTLP/HTTP receiver."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.tracing_otel import CLOSE_TIMEOUT, EXPORT_TIMEOUT, OtelTracer, traces_url
from bot.config import load_settings
from bot.domain.envelope import new_id
from bot.domain.tracing import SPAN_EVENT, SPAN_JIRA, SPAN_SEARCH, SPAN_TRIAGE, NoopTracer
from bot.observability.context import log_context
from bot.observability.setup import make_tracer
from tests.fakes.otlp_server import OtlpReceiver

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def otlp() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as receiver:
        yield receiver


def test_off_by_default_and_opentelemetry_is_never_imported() -> None:
    code = (
        "import sys\n"
        "from bot.config import load_settings\n"
        "from bot.observability.setup import make_tracer\n"
        "t = make_tracer(load_settings(_env_file=None))\n"
        "with t.span('ideabot.event', trace_id='0' * 31 + '1', channel='C1') as s:\n"
        "    s.set_attribute('kind', 'idea')\n"
        "t.close()\n"
        "print(type(t).__name__, sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(ROOT)},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "NoopTracer []"


def test_the_noop_span_is_shared_and_swallows_nothing() -> None:
    tracer = NoopTracer()
    assert tracer.span("a") is tracer.span("b", x=1)
    with pytest.raises(KeyError), tracer.span("a") as span:
        span.record_error(KeyError("k"))
        raise KeyError("k")


def test_spans_arrive_nested_with_attributes_and_the_flows_trace_id(otlp: OtlpReceiver) -> None:
    tracer = make_tracer(
        load_settings(
            _env_file=None,
            otel_exporter_otlp_endpoint=otlp.base_url,
            otel_service_name="ideabot-test",
        )
    )
    assert isinstance(tracer, OtelTracer)
    trace_id = new_id()
    try:
        with (
            log_context(trace_id=trace_id),
            tracer.span(SPAN_EVENT, trace_id=trace_id, type="message", channel="C1"),
        ):
            with tracer.span(SPAN_TRIAGE) as triage:
                with tracer.span(SPAN_SEARCH, index="local"):
                    pass
                triage.set_attribute("kind", "idea")
                triage.set_attribute("likely_duplicate", False)
            with pytest.raises(TimeoutError), tracer.span(SPAN_JIRA, method="issue.create"):
                raise TimeoutError("jira did not answer for https://x.atlassian.net?token=abc")
        assert tracer.flush()
    finally:
        tracer.close()
    spans = {s.name: s for s in otlp.spans}
    assert set(spans) == {SPAN_EVENT, SPAN_TRIAGE, SPAN_SEARCH, SPAN_JIRA}
    event, triage_s, search, jira = (
        spans[n] for n in (SPAN_EVENT, SPAN_TRIAGE, SPAN_SEARCH, SPAN_JIRA)
    )
    assert {s.trace_id for s in spans.values()} == {trace_id}  # the logs' trace id, end to end
    assert event.parent_span_id == ""
    assert triage_s.parent_span_id == event.span_id
    assert search.parent_span_id == triage_s.span_id
    assert jira.parent_span_id == event.span_id
    assert event.attributes == {"type": "message", "channel": "C1"}
    assert triage_s.attributes == {"kind": "idea", "likely_duplicate": False}
    assert jira.status_code == 2 and jira.status_message == "TimeoutError"
    assert jira.attributes == {"method": "issue.create", "error.type": "TimeoutError"}
    assert "token" not in repr(otlp.spans)  # the exception message never left the process
    assert event.service_name == "ideabot-test"


def test_separate_flows_get_separate_traces_and_odd_ids_are_ignored(otlp: OtlpReceiver) -> None:
    tracer = OtelTracer(otlp.base_url)
    try:
        with tracer.span("a"):
            pass
        with tracer.span("b", trace_id="not-hex"):
            pass
        with tracer.span("c", trace_id="0" * 32):  # the invalid all-zero id
            pass
        outer = new_id()
        with tracer.span("d", trace_id=outer), tracer.span("e", trace_id=new_id()):
            pass  # an open span wins: e joins d's trace
        tracer.flush()
    finally:
        tracer.close()
    by = {s.name: s for s in otlp.spans}
    assert len({by[n].trace_id for n in "abc"}) == 3
    assert by["c"].trace_id != "0" * 32
    assert by["d"].trace_id == by["e"].trace_id == outer


def test_a_collector_that_fails_loses_spans_but_never_the_work(otlp: OtlpReceiver) -> None:
    otlp.fail_next(50)  # every export attempt within the deadline answers 503
    tracer = OtelTracer(otlp.base_url)
    with tracer.span("work"):
        result = 1 + 1
    started = time.monotonic()
    tracer.close()
    assert result == 2
    assert time.monotonic() - started < CLOSE_TIMEOUT + EXPORT_TIMEOUT + 2  # bounded, not hung
    assert not otlp.spans


def test_the_endpoint_is_the_base_url_and_must_be_http() -> None:
    assert traces_url("http://collector:4318/") == "http://collector:4318/v1/traces"
    from bot.config import ConfigError

    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        load_settings(_env_file=None, otel_exporter_otlp_endpoint="collector:4318")
