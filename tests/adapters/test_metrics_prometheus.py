"""The Prometheus adapter: a private registry per bot, scraped over real HTTP."""

from __future__ import annotations

import gzip
import io
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.adapters.metrics_prometheus import MetricsServer, PrometheusMetrics
from bot.domain import metrics as m
from bot.domain.metrics import CATALOGUE, MetricError

T0 = datetime(2026, 4, 15, 9, 0, tzinfo=UTC)


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def _wsgi_get(
    app: Any, path: str = "/metrics", **headers: str
) -> tuple[str, dict[str, str], bytes]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "SERVER_NAME": "test",
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(),
        "wsgi.url_scheme": "http",
        **{f"HTTP_{k.upper()}": v for k, v in headers.items()},
    }
    got: dict[str, Any] = {}

    def start_response(status: str, hdrs: list[tuple[str, str]], exc_info: Any = None) -> None:
        got["status"], got["headers"] = status, dict(hdrs)

    body = b"".join(app(environ, start_response))
    return got["status"], got["headers"], body


def test_every_catalogue_metric_is_exposed_with_its_help() -> None:
    metrics = PrometheusMetrics(process_metrics=False)
    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition().decode())}
    for name, spec in CATALOGUE.items():
        exposed = name.removesuffix("_total")  # the parser names counters without the suffix
        assert exposed in families, name
        assert families[exposed].documentation == spec.help
        assert families[exposed].type == {"age": "gauge"}.get(spec.kind, spec.kind)


def test_counters_histograms_gauges_and_ages_read_back() -> None:
    now = [T0]
    metrics = PrometheusMetrics(clock=lambda: now[0], process_metrics=False)
    metrics.inc(m.FILINGS, outcome="filed")
    metrics.inc(m.FILINGS, 2, outcome="filed")
    metrics.inc(m.FILINGS, outcome="weird")  # not a filing outcome: counted as "other"
    metrics.observe(m.ACK_SECONDS, 0.02, type="message")
    metrics.observe(m.ACK_SECONDS, 4.0, type="message")
    metrics.set_gauge(m.OUTBOX_DEPTH, 7, topic="jira.file")
    metrics.set_since(m.OUTBOX_OLDEST_AGE, T0 - timedelta(seconds=90), topic="jira.file")
    metrics.set_since(m.SYNC_LAG, T0 - timedelta(minutes=5))
    now[0] = T0 + timedelta(seconds=30)  # ages grow between scrapes without anyone calling
    s = _samples(metrics.exposition().decode())
    assert s[("ideabot_filings_total", (("outcome", "filed"),))] == 3
    assert s[("ideabot_filings_total", (("outcome", "other"),))] == 1
    assert s[("ideabot_ack_seconds_count", (("type", "message"),))] == 2
    assert s[("ideabot_ack_seconds_bucket", (("le", "0.025"), ("type", "message")))] == 1
    assert s[("ideabot_ack_seconds_bucket", (("le", "3.0"), ("type", "message")))] == 1
    assert s[("ideabot_ack_seconds_bucket", (("le", "+Inf"), ("type", "message")))] == 2
    assert s[("ideabot_outbox_depth", (("topic", "jira.file"),))] == 7
    assert s[("ideabot_outbox_oldest_age_seconds", (("topic", "jira.file"),))] == 120
    assert s[("ideabot_sync_lag_seconds", ())] == 330
    metrics.set_since(m.OUTBOX_OLDEST_AGE, None, topic="jira.file")  # the outbox emptied
    s = _samples(metrics.exposition().decode())
    assert s[("ideabot_outbox_oldest_age_seconds", (("topic", "jira.file"),))] == 0


def test_sync_lag_is_absent_until_a_sync_succeeds() -> None:
    text = PrometheusMetrics(process_metrics=False).exposition().decode()
    assert not [k for k in _samples(text) if k[0] == "ideabot_sync_lag_seconds"]


def test_two_bots_in_one_process_keep_separate_registries() -> None:
    a, b = PrometheusMetrics(), PrometheusMetrics()  # would raise "Duplicated timeseries" if shared
    a.inc(m.SYNC_RUNS, outcome="ok")
    sa, sb = _samples(a.exposition().decode()), _samples(b.exposition().decode())
    assert sa[("ideabot_sync_runs_total", (("outcome", "ok"),))] == 1
    assert ("ideabot_sync_runs_total", (("outcome", "ok"),)) not in sb


def test_cardinality_stays_bounded_whatever_the_callers_pass() -> None:
    metrics = PrometheusMetrics(process_metrics=False)
    for i in range(1000):
        metrics.inc(m.API_CALLS, service="slack", method=f"U{i:05d}", status=f"err{i}")
    series = [
        k for k in _samples(metrics.exposition().decode()) if k[0] == "ideabot_api_calls_total"
    ]
    assert len(series) == m.MAX_OPEN_VALUES + 1  # 50 methods seen first, then "other"
    assert {dict(labels)["status"] for _, labels in series} == {"other"}


def test_kind_and_label_mistakes_raise() -> None:
    metrics = PrometheusMetrics(process_metrics=False)
    with pytest.raises(MetricError):
        metrics.observe(m.FILINGS, 1.0, outcome="filed")
    with pytest.raises(MetricError):
        metrics.set_since(m.OUTBOX_DEPTH, T0, topic="jira.file")
    with pytest.raises(MetricError):
        metrics.inc(m.FILINGS, outcome="filed", channel="C1")


def test_wsgi_app_serves_text_openmetrics_and_gzip() -> None:
    metrics = PrometheusMetrics()
    metrics.inc(m.EVENTS_RECEIVED, type="message", outcome="accepted")
    app = metrics.wsgi_app()
    status, headers, body = _wsgi_get(app)
    assert status.startswith("200")
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    s = _samples(body.decode())
    assert s[("ideabot_events_received_total", (("outcome", "accepted"), ("type", "message")))] == 1
    assert any(name == "process_cpu_seconds_total" for name, _ in s)  # the process collector
    _, headers, body = _wsgi_get(app, ACCEPT="application/openmetrics-text; version=1.0.0")
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")
    _, headers, body = _wsgi_get(app, ACCEPT_ENCODING="gzip")
    assert headers.get("Content-Encoding") == "gzip"
    assert b"ideabot_events_received_total" in gzip.decompress(body)


def test_metrics_server_serves_the_registry_over_http_and_stops() -> None:
    metrics = PrometheusMetrics()
    metrics.inc(m.DIGEST_RUNS, digest="meetings", outcome="posted")
    server = MetricsServer(metrics, port=0, host="127.0.0.1").start()
    try:
        with urllib.request.urlopen(server.url, timeout=5) as r:
            assert r.status == 200
            text = r.read().decode()
        s = _samples(text)
        assert (
            s[("ideabot_digest_runs_total", (("digest", "meetings"), ("outcome", "posted")))] == 1
        )
    finally:
        server.stop()
    with pytest.raises(RuntimeError):
        _ = server.port  # stopped: the socket is closed
    server.stop()  # twice is harmless
