"""Observability end to end: the real app on FakeSlack + FakeJira (``tests.fakes.wiring.Rig``).

One flow (a post, the reaction that files it, a digest) must move the metrics on ``GET /metrics``
(Prometheus), flush valid EMF documents (``METRICS_FORMAT=emf``), and log under one trace id
from the delivery's recording to the thread reply, which the Jira issue carries too.
"""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.metrics_emf import EmfMetrics
from bot.adapters.tracing_otel import OtelTracer
from bot.observability.logs import make_handler
from bot.slack.inbox import message_trace
from tests.fakes import emf_schema
from tests.fakes.otlp_server import OtlpReceiver, ReceivedSpan
from tests.fakes.wiring import Rig


def _flow(rig: Rig) -> dict[str, Any]:
    """A post, the reaction that files it, and a takeaway digest; returns the post's event."""
    ev = rig.message("Add dark mode to the dashboard")
    assert rig.send_event(ev)[0] == 200
    rig.wait_idle()
    assert rig.send_event(rig.reaction("CIDEAS01", ev["ts"]))[0] == 200
    rig.wait_idle()
    assert len(rig.jira.issues) == 1
    rig.bot.digests.run("takeaways", "CIDEAS01")
    return ev


def _value(text: str, name: str, **labels: str) -> float:
    """The sample of *name* whose labels include *labels* (0 when there is none)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, metrics_format="prometheus")
    yield r
    r.close()


def test_get_metrics_shows_the_flow_in_the_counters(rig: Rig) -> None:
    before = rig.get("/metrics")
    assert before[0] == 200
    _flow(rig)
    status, text = rig.get("/metrics")
    assert status == 200
    assert _value(text, "ideabot_events_received_total", type="event:message") == 1
    assert _value(text, "ideabot_events_received_total", outcome="accepted") == 2
    assert _value(text, "ideabot_ack_seconds_count") == 2
    assert _value(text, "ideabot_filings_total", outcome="filed") == 1
    assert _value(text, "ideabot_digest_runs_total", digest="takeaways") == 1
    assert _value(text, "ideabot_api_calls_total", service="jira", status="ok") >= 1
    assert (
        _value(
            text,
            "ideabot_api_calls_total",
            service="slack",
            method="chat.postMessage",
            status="ok",
        )
        >= 2  # the triage reply and the filing reply
    )
    assert _value(text, "ideabot_triage_seconds_count") == 1  # the test analyzer: "other"
    assert _value(text, "ideabot_duplicate_verdicts_total") == 1
    # Nothing that identifies a person, a channel or a message is a label.
    assert "UALICE" not in text and "CIDEAS01" not in text and "PROJ-" not in text


def test_emf_documents_of_the_flow_validate(tmp_path: Path) -> None:
    out = io.StringIO()
    emf = EmfMetrics(namespace="ideabot", dimensions={"Service": "ideabot"}, stream=out)
    rig = Rig(tmp_path, metrics_format="emf", metrics=emf)
    try:
        assert rig.get("/metrics")[0] == 404  # EMF goes to the log stream, not to /metrics
        _flow(rig)
    finally:
        rig.close()
    assert emf.flush() > 0
    docs = emf_schema.parse_lines(out.getvalue())  # each one validated
    names = {
        m["Name"]
        for d in docs
        for block in d["_aws"]["CloudWatchMetrics"]
        for m in block["Metrics"]
    }
    assert {
        "ideabot_events_received_total",
        "ideabot_filings_total",
        "ideabot_digest_runs_total",
        "ideabot_api_calls_total",
    } <= names


def test_one_trace_id_from_recording_to_reply_and_in_the_jira_issue(tmp_path: Path) -> None:
    out = io.StringIO()
    rig = Rig(tmp_path, log_format="json")
    handler = make_handler(rig.settings.log_format, out)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        ev = _flow(rig)
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        rig.close()
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.startswith("{")]
    about = [x for x in lines if x.get("ts") == ev["ts"] and x.get("channel") == "CIDEAS01"]
    traces = {x.get("trace_id") for x in about}
    assert len(traces) == 1 and None not in traces, traces
    (trace,) = traces
    messages = [x["message"] for x in lines if x.get("trace_id") == trace]

    def logged(pattern: str) -> bool:
        return any(re.search(pattern, m) for m in messages)

    assert logged(r"^inbox: recorded ")  # the event's recording, before the ack
    assert logged(r"^triaged CIDEAS01:")  # triage
    assert logged(r"^jira: creating the issue: ok")  # the Jira call
    assert logged(r"^filing .*: filed as PROJ-")  # filing
    assert logged(r"^slack: chat.postMessage: ok")  # the thread replies
    filed = [x for x in lines if x.get("trace_id") == trace and x.get("jira_key")]
    assert filed and filed[0]["outbox_item"]
    (issue,) = rig.jira.issues.values()
    assert f"trace {trace}" in issue["fields"]["description"]


def test_spans_of_one_post_and_its_filing_share_the_logs_trace_id(tmp_path: Path) -> None:
    """OTLP on: the event, its analysis, the search and the Slack reply are spans of one trace
    (the trace id of the logs); the filing's Jira calls are spans too."""
    with OtlpReceiver() as otlp:
        rig = Rig(tmp_path, otel_exporter_otlp_endpoint=otlp.base_url)
        try:
            ev = rig.message("Add dark mode to the dashboard")
            assert rig.send_event(ev)[0] == 200
            rig.wait_idle()
            assert rig.send_event(rig.reaction("CIDEAS01", ev["ts"]))[0] == 200
            rig.wait_idle()
            assert len(rig.jira.issues) == 1
            tracer = rig.bot.adapters.tracer
            assert isinstance(tracer, OtelTracer)
            assert tracer.flush()
        finally:
            rig.close()
        spans = list(otlp.spans)
    trace = message_trace("CIDEAS01", ev["ts"])
    mine = [s for s in spans if s.trace_id == trace]
    by_id = {s.span_id: s for s in mine}

    def named(name: str, **attrs: Any) -> list[ReceivedSpan]:
        return [
            s
            for s in mine
            if s.name == name and all(s.attributes.get(k) == v for k, v in attrs.items())
        ]

    def root_of(span: ReceivedSpan) -> ReceivedSpan:
        while span.parent_span_id:
            span = by_id[span.parent_span_id]
        return span

    events = named("ideabot.event")
    assert {e.attributes["type"] for e in events} == {"event:message", "event:reaction_added"}
    post_event = named("ideabot.event", type="event:message")[0]
    # The post: analysis and search inside the triage, inside the event; the reply too.
    (triage,) = named("ideabot.triage")
    assert root_of(triage) == post_event and triage.attributes["analyzer"] == "keyword"
    (analyze,) = named("ideabot.analyze")
    (search,) = named("ideabot.search")
    assert by_id[analyze.parent_span_id] == triage and by_id[search.parent_span_id] == triage
    replies = named("slack.call", method="chat.postMessage")
    assert any(root_of(r) == post_event for r in replies)
    # The filing: a Jira span (creating the issue) under the reaction's event.
    reaction = named("ideabot.event", type="event:reaction_added")[0]
    creates = named("jira.call", method="creating_the_issue")
    assert creates and root_of(creates[0]) == reaction
    assert named("ideabot.file", outcome="filed")
    # Nothing identifying a person or a text in any attribute.
    assert "dark mode" not in repr(spans)
