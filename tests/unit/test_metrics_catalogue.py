"""The metric catalogue: fixed names, bounded labels, and the helpers the use cases will call."""

from __future__ import annotations

import re

import pytest

from bot.domain import metrics as m
from bot.domain.metrics import (
    CATALOGUE,
    OTHER,
    LabelGuard,
    MetricError,
    Metrics,
    NullMetrics,
    analyzer_label,
    label_rule,
    timed,
)
from tests.fakes.metrics import RecordingMetrics

# What the operators asked to see (the brief), by the name it got.
REQUIRED = {
    "events received by type and outcome": (m.EVENTS_RECEIVED, ("type", "outcome")),
    "ack latency": (m.ACK_SECONDS, ("type",)),
    "triage latency by analyzer": (m.TRIAGE_SECONDS, ("analyzer",)),
    "LLM calls": (m.LLM_CALLS, ("task", "outcome")),
    "LLM latency": (m.LLM_CALL_SECONDS, ("task",)),
    "LLM fallbacks by reason": (m.LLM_FALLBACKS, ("task", "reason")),
    "LLM tokens": (m.LLM_TOKENS, ("task", "direction")),
    "search latency": (m.SEARCH_SECONDS, ("index",)),
    "index size": (m.INDEX_SIZE, ("index",)),
    "likely-duplicate verdicts": (m.DUPLICATE_VERDICTS, ("verdict",)),
    "filings by outcome": (m.FILINGS, ("outcome",)),
    "outbox depth": (m.OUTBOX_DEPTH, ("topic",)),
    "outbox oldest age": (m.OUTBOX_OLDEST_AGE, ("topic",)),
    "API calls by method and status": (m.API_CALLS, ("service", "method", "status")),
    "API latency": (m.API_CALL_SECONDS, ("service", "method")),
    "API retries": (m.API_RETRIES, ("service", "method")),
    "digest runs by outcome": (m.DIGEST_RUNS, ("digest", "outcome")),
    "sync lag": (m.SYNC_LAG, ()),
}


def test_the_catalogue_has_every_metric_asked_for() -> None:
    for what, (name, labels) in REQUIRED.items():
        assert name in CATALOGUE, what
        assert CATALOGUE[name].labels == labels, what


def test_names_follow_prometheus_conventions_and_the_docstring_lists_them_all() -> None:
    doc = m.__doc__ or ""
    for name, spec in CATALOGUE.items():
        assert re.fullmatch(r"ideabot_[a-z][a-z0-9_]*", name), name
        assert (spec.kind == "counter") == name.endswith("_total"), name
        assert (spec.unit == "Seconds") == name.endswith("_seconds"), name
        assert spec.help.endswith(".") and len(spec.help) < 120, name
        if spec.kind == "histogram":
            assert spec.buckets and list(spec.buckets) == sorted(set(spec.buckets)), name
        else:
            assert not spec.buckets, name
        assert f"``{name}``" in doc, f"{name} is missing from the module docstring's table"


def test_every_label_is_bounded_and_none_could_carry_a_person_or_a_text() -> None:
    for spec in CATALOGUE.values():
        assert len(spec.labels) <= 3, spec.name  # EMF: static dimensions + labels <= 30
        for label in spec.labels:
            rule = label_rule(spec.name, label)  # raises KeyError for an unruled label
            assert label not in {"user", "channel", "text", "ts", "key", "title", "message"}
            if rule.values is not None:
                assert OTHER in rule.values


def test_closed_labels_map_unknown_values_to_other() -> None:
    guard = LabelGuard()
    spec = CATALOGUE[m.FILINGS]
    assert guard.check(spec, {"outcome": "filed"}) == ("filed",)
    assert guard.check(spec, {"outcome": "FILED"}) == ("filed",)
    assert guard.check(spec, {"outcome": "U024BE7LH"}) == (OTHER,)
    # Each metric's "outcome" has its own set.
    assert guard.check(CATALOGUE[m.DIGEST_RUNS], {"digest": "meetings", "outcome": "filed"}) == (
        "meetings",
        OTHER,
    )


def test_open_labels_are_cleaned_and_capped_per_metric() -> None:
    guard = LabelGuard(max_open_values=3)
    spec = CATALOGUE[m.API_RETRIES]
    values = [guard.check(spec, {"service": "slack", "method": f"method{i}"})[1] for i in range(10)]
    assert values[:3] == ["method0", "method1", "method2"]
    assert set(values[3:]) == {OTHER}
    # A value seen before the cap keeps working; another metric has its own budget.
    assert guard.check(spec, {"service": "slack", "method": "method1"})[1] == "method1"
    assert guard.check(CATALOGUE[m.API_CALL_SECONDS], {"service": "jira", "method": "x"}) == (
        "jira",
        "x",
    )
    # Cleaning: case kept, anything outside [A-Za-z0-9_.:/-] folded, length capped, never empty.
    assert m.clean_value("chat.postMessage") == "chat.postMessage"
    assert m.clean_value("Add dark mode <@U123>!") == "Add_dark_mode_U123"
    assert m.clean_value("x" * 500) == "x" * m.MAX_VALUE_CHARS
    assert m.clean_value("  !!  ") == OTHER


def test_wrong_label_names_and_unknown_metrics_are_errors() -> None:
    rec = RecordingMetrics()
    with pytest.raises(MetricError):
        rec.inc("ideabot_made_up_total")
    with pytest.raises(MetricError):
        rec.inc(m.FILINGS)  # the outcome label is missing
    with pytest.raises(MetricError):
        rec.inc(m.FILINGS, outcome="filed", user="U1")
    with pytest.raises(MetricError):
        rec.observe(m.FILINGS, 1.0, outcome="filed")  # a counter, not a histogram


def test_analyzer_names_become_three_values() -> None:
    assert analyzer_label("llm:openai:gpt-4o-mini") == "llm"
    assert analyzer_label("offline") == "offline"
    assert analyzer_label("offline (llm fallback: timeout)") == "fallback"
    guard = LabelGuard()
    assert guard.check(CATALOGUE[m.TRIAGE_SECONDS], {"analyzer": "llm:anthropic:claude"}) == (
        "llm",
    )
    assert guard.check(CATALOGUE[m.TRIAGE_SECONDS], {"analyzer": "mystery"}) == (OTHER,)


def test_timed_observes_the_block_even_when_it_raises_and_takes_late_labels() -> None:
    ticks = iter([10.0, 10.25, 20.0, 21.5])
    rec = RecordingMetrics()
    with timed(rec, m.TRIAGE_SECONDS, clock=lambda: next(ticks), analyzer="offline") as labels:
        labels["analyzer"] = "llm:openai:gpt-4o-mini"
    with (
        pytest.raises(RuntimeError),
        timed(rec, m.SEARCH_SECONDS, clock=lambda: next(ticks), index="local"),
    ):
        raise RuntimeError("index down")
    assert rec.values(m.TRIAGE_SECONDS, analyzer="llm") == [0.25]
    assert rec.values(m.SEARCH_SECONDS, index="local") == [1.5]


def test_null_metrics_is_a_metrics_and_accepts_everything() -> None:
    null: Metrics = NullMetrics()
    null.inc(m.FILINGS, outcome="filed")
    null.observe(m.ACK_SECONDS, 0.1, type="message")
    null.set_gauge(m.OUTBOX_DEPTH, 3, topic="jira.file")
    null.set_since(m.SYNC_LAG, None)
    fake: Metrics = RecordingMetrics()  # the fake satisfies the port too (mypy checks this)
    assert fake is not None
