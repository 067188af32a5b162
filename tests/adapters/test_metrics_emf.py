"""The EMF adapter: every document it writes passes the specification's rules (emf_schema)."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.adapters import metrics_emf
from bot.adapters.metrics_emf import EmfMetrics
from bot.domain import metrics as m
from bot.domain.metrics import CATALOGUE, MetricError
from tests.fakes import emf_schema

T0 = datetime(2026, 4, 15, 9, 0, tzinfo=UTC)
NOW_MS = int(T0.timestamp() * 1000)


def _emf(**kw: Any) -> tuple[EmfMetrics, io.StringIO, list[datetime]]:
    out = io.StringIO()
    now = [T0]
    return EmfMetrics(stream=out, clock=lambda: now[0], **kw), out, now


def _flushed(metrics: EmfMetrics, out: io.StringIO) -> list[dict[str, Any]]:
    """Flushes, then parses and checks what was written since the last call."""
    start = out.tell()
    metrics.flush()
    out.seek(start)
    text = out.read()
    return emf_schema.parse_lines(text, now_ms=NOW_MS)


def _by_labels(docs: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], dict[str, Any]]:
    out = {}
    for d in docs:
        keys = d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]
        out[tuple((k, d[k]) for k in keys)] = d
    return out


def test_a_flush_writes_valid_documents_grouped_by_label_values() -> None:
    metrics, out, _ = _emf(namespace="ideabot-prod", dimensions={"Environment": "prod"})
    metrics.inc(m.FILINGS, outcome="filed")
    metrics.inc(m.FILINGS, outcome="filed")
    metrics.inc(m.FILINGS, outcome="queued")
    metrics.observe(m.ACK_SECONDS, 0.05, type="message")
    metrics.observe(m.ACK_SECONDS, 0.05, type="message")
    metrics.observe(m.ACK_SECONDS, 1.2, type="message")
    metrics.set_gauge(m.OUTBOX_DEPTH, 4, topic="jira.file")
    metrics.set_since(m.SYNC_LAG, T0 - timedelta(minutes=2))
    docs = _flushed(metrics, out)
    assert len(docs) == 5  # one per distinct set of label values
    for d in docs:
        directive = d["_aws"]["CloudWatchMetrics"][0]
        assert directive["Namespace"] == "ideabot-prod"
        assert directive["Dimensions"][0][0] == "Environment" and d["Environment"] == "prod"
        assert d["_aws"]["Timestamp"] == NOW_MS
    by = _by_labels(docs)
    env = (("Environment", "prod"),)
    assert by[(*env, ("outcome", "filed"))]["ideabot_filings_total"] == 2
    assert by[(*env, ("outcome", "queued"))]["ideabot_filings_total"] == 1
    ack = by[(*env, ("type", "message"))]
    assert ack["ideabot_ack_seconds"] == {
        "Values": [0.05, 1.2],
        "Counts": [2, 1],
        "Max": 1.2,
        "Min": 0.05,
        "Count": 3,
        "Sum": pytest.approx(1.3),
    }
    assert ack["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "ideabot_ack_seconds", "Unit": "Seconds"}
    ]
    assert by[(*env, ("topic", "jira.file"))]["ideabot_outbox_depth"] == 4
    assert by[env]["ideabot_sync_lag_seconds"] == 120


def test_counters_are_deltas_gauges_repeat_and_idle_flushes_write_nothing() -> None:
    metrics, out, now = _emf()
    metrics.inc(m.SYNC_RUNS, outcome="ok")
    metrics.set_gauge(m.INDEX_SIZE, 120, index="local")
    metrics.set_since(m.SYNC_LAG, T0)
    assert len(_flushed(metrics, out)) == 3
    now[0] = T0 + timedelta(seconds=60)
    docs = _flushed(metrics, out)  # no new sync: no counter document; gauge and age again
    names = sorted(k for d in docs for k in d if k.startswith("ideabot_"))
    assert names == ["ideabot_index_size", "ideabot_sync_lag_seconds"]
    assert _by_labels(docs)[()]["ideabot_sync_lag_seconds"] == 60
    empty, out2, _ = _emf()
    assert empty.flush() == 0 and out2.getvalue() == ""


def test_more_than_100_distinct_observations_are_split_not_dropped() -> None:
    metrics, out, _ = _emf()
    values = [0.001 * (i + 1) for i in range(250)]  # 250 distinct values
    for v in values:
        metrics.observe(m.LLM_CALL_SECONDS, v, task="triage")
    docs = _flushed(metrics, out)
    hists = [d["ideabot_llm_call_seconds"] for d in docs]
    assert len(hists) == 3
    assert all(len(h["Values"]) <= 100 for h in hists)
    assert sum(h["Count"] for h in hists) == 250
    assert sum(h["Sum"] for h in hists) == pytest.approx(sum(values))


def test_documents_hold_at_most_100_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    # No label group of the catalogue reaches 100 metrics; a smaller cap exercises the split.
    monkeypatch.setattr(metrics_emf, "MAX_METRICS_PER_DOCUMENT", 1)
    metrics, out, _ = _emf()
    metrics.set_since(m.SYNC_LAG, T0)
    # Two metrics sharing exactly the labels service=jira, method=search: one document each.
    metrics.inc(m.API_RETRIES, service="jira", method="search")
    metrics.observe(m.API_CALL_SECONDS, 0.3, service="jira", method="search")
    docs = _flushed(metrics, out)
    assert len(docs) == 3
    assert all(len(d["_aws"]["CloudWatchMetrics"][0]["Metrics"]) == 1 for d in docs)
    assert sorted(k for d in docs for k in d if k.startswith("ideabot_")) == [
        "ideabot_api_call_seconds",
        "ideabot_api_retries_total",
        "ideabot_sync_lag_seconds",
    ]


def test_every_catalogue_metric_makes_a_valid_document() -> None:
    metrics, out, _ = _emf(dimensions={f"D{i}": "x" for i in range(27)})  # 27 + 3 labels = 30
    for spec in CATALOGUE.values():
        labels = dict.fromkeys(spec.labels, "ok")
        if spec.kind == "counter":
            metrics.inc(spec.name, **labels)
        elif spec.kind == "histogram":
            metrics.observe(spec.name, 0.5, **labels)
        elif spec.kind == "gauge":
            metrics.set_gauge(spec.name, 1, **labels)
        else:
            metrics.set_since(spec.name, T0, **labels)
    docs = _flushed(metrics, out)
    written = {k for d in docs for k in d if k.startswith("ideabot_")}
    assert written == set(CATALOGUE)
    assert max(len(d["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0]) for d in docs) == 30


def test_bad_values_are_dropped_and_mistakes_raise() -> None:
    metrics, _, _ = _emf()
    metrics.observe(m.ACK_SECONDS, float("nan"), type="message")
    metrics.set_gauge(m.INDEX_SIZE, float("inf"), index="local")
    assert metrics.flush() == 0
    with pytest.raises(MetricError):
        metrics.inc(m.FILINGS, -1, outcome="filed")
    with pytest.raises(MetricError):
        metrics.set_gauge(m.FILINGS, 1, outcome="filed")
    with pytest.raises(MetricError):
        metrics.inc("ideabot_nope_total")


def test_close_flushes_what_is_left_from_the_background_thread() -> None:
    metrics, out, _ = _emf(flush_seconds=3600)  # the timer never fires in this test
    metrics.start()
    metrics.inc(m.DIGEST_RUNS, digest="takeaways", outcome="posted")
    metrics.close()
    docs = emf_schema.parse_lines(out.getvalue(), now_ms=NOW_MS)
    assert [d["ideabot_digest_runs_total"] for d in docs] == [1]
    assert docs[0]["digest"] == "takeaways" and docs[0]["outcome"] == "posted"


# ---------------------------------------------------------------- the checker itself


def _valid_doc() -> dict[str, Any]:
    return {
        "_aws": {
            "Timestamp": NOW_MS,
            "CloudWatchMetrics": [
                {
                    "Namespace": "ideabot",
                    "Dimensions": [["outcome"]],
                    "Metrics": [{"Name": "ideabot_filings_total", "Unit": "Count"}],
                }
            ],
        },
        "outcome": "filed",
        "ideabot_filings_total": 1,
    }


def _broken(change: Any) -> list[str]:
    doc = json.loads(json.dumps(_valid_doc()))
    change(doc)
    return emf_schema.validate(doc, now_ms=NOW_MS)


def _directive(doc: dict[str, Any]) -> dict[str, Any]:
    directive: dict[str, Any] = doc["_aws"]["CloudWatchMetrics"][0]
    return directive


def test_the_checker_accepts_the_specs_example_and_refuses_each_broken_rule() -> None:
    spec_example = {
        "_aws": {
            "Timestamp": 1574109732004,
            "CloudWatchMetrics": [
                {
                    "Namespace": "lambda-function-metrics",
                    "Dimensions": [["functionVersion"]],
                    "Metrics": [{"Name": "time", "Unit": "Milliseconds"}],
                }
            ],
        },
        "functionVersion": "$LATEST",
        "time": 100,
        "requestId": "989ffbf8-9ace-4817-a57c-e4dd734019ee",
    }
    assert emf_schema.validate(spec_example) == []
    assert emf_schema.validate(_valid_doc(), now_ms=NOW_MS) == []

    def many_metrics(d: dict[str, Any]) -> None:
        _directive(d)["Metrics"] = [{"Name": f"m{i}", "Unit": "Count"} for i in range(101)]
        d.update({f"m{i}": 1 for i in range(101)})

    def many_dims(d: dict[str, Any]) -> None:
        _directive(d)["Dimensions"] = [[f"d{i}" for i in range(31)]]
        d.update({f"d{i}": "x" for i in range(31)})

    cases = {
        "101 metrics": many_metrics,
        "31 dimensions": many_dims,
        "a bad unit": lambda d: _directive(d)["Metrics"][0].update(Unit="Millis"),
        "an extra member": lambda d: _directive(d)["Metrics"][0].update(Foo=1),
        "101 values": lambda d: d.update(ideabot_filings_total=list(range(101))),
        "a string value": lambda d: d.update(ideabot_filings_total="1"),
        "a boolean value": lambda d: d.update(ideabot_filings_total=True),
        "a huge value": lambda d: d.update(ideabot_filings_total=2.0**400),
        "a missing dimension member": lambda d: d.pop("outcome"),
        "a numeric dimension": lambda d: d.update(outcome=3),
        "a missing metric member": lambda d: d.pop("ideabot_filings_total"),
        "a float timestamp": lambda d: d["_aws"].update(Timestamp=1.5),
        "an old timestamp": lambda d: d["_aws"].update(Timestamp=NOW_MS - 15 * 86_400_000),
        "no timestamp": lambda d: d["_aws"].pop("Timestamp"),
        "an AWS namespace": lambda d: _directive(d).update(Namespace="AWS/Lambda"),
        "a namespace with spaces": lambda d: _directive(d).update(Namespace="my app"),
        "no dimension sets": lambda d: _directive(d).update(Dimensions=[]),
        "a dimension named :x": lambda d: _directive(d).update(Dimensions=[[":x"]]),
        "a storage resolution of 5": lambda d: _directive(d)["Metrics"][0].update(
            StorageResolution=5
        ),
        "counts that do not match": lambda d: d.update(
            ideabot_filings_total={
                "Values": [1.0, 2.0],
                "Counts": [1],
                "Max": 2.0,
                "Min": 1.0,
                "Count": 1,
                "Sum": 3.0,
            }
        ),
        "an impossible statistic set": lambda d: d.update(
            ideabot_filings_total={
                "Values": [1.0],
                "Counts": [2],
                "Max": 1.0,
                "Min": 1.0,
                "Count": 2,
                "Sum": 5.0,
            }
        ),
    }
    for what, change in cases.items():
        assert _broken(change), f"the checker accepted {what}"
    assert emf_schema.validate(_valid_doc(), raw="x" * (256 * 1024 + 1)) != []
