"""serve's metrics exporters: the EMF flush timer (flushed at shutdown) and METRICS_PORT."""

from __future__ import annotations

import io
import socket
import urllib.request
from types import SimpleNamespace
from typing import Any

from bot.config import Settings
from bot.observability.setup import make_metrics
from bot.slack.server import start_metrics, stop_metrics
from tests.fakes import emf_schema


def _bot(stream: io.StringIO | None = None, **values: Any) -> Any:
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    # start_metrics reads only the settings and the metrics adapter of the wired bot.
    return SimpleNamespace(
        settings=settings, adapters=SimpleNamespace(metrics=make_metrics(settings, stream=stream))
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_emf_is_flushed_at_shutdown() -> None:
    out = io.StringIO()
    bot = _bot(out, metrics_format="emf", metrics_flush_seconds=3600)
    exporter = start_metrics(bot, "127.0.0.1")
    bot.adapters.metrics.inc("ideabot_sync_runs_total", outcome="ok")
    assert out.getvalue() == ""  # the timer has not fired
    stop_metrics(exporter)
    docs = emf_schema.parse_lines(out.getvalue())
    assert docs and docs[0]["ideabot_sync_runs_total"] == 1


def test_metrics_port_serves_prometheus() -> None:
    port = _free_port()
    bot = _bot(metrics_format="prometheus", metrics_port=port)
    exporter = start_metrics(bot, "127.0.0.1")
    try:
        bot.adapters.metrics.inc("ideabot_sync_runs_total", outcome="ok")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            text = resp.read().decode()
        assert 'ideabot_sync_runs_total{outcome="ok"} 1.0' in text
    finally:
        stop_metrics(exporter)


def test_no_exporter_without_a_port_or_with_none() -> None:
    assert start_metrics(_bot(metrics_format="prometheus"), "127.0.0.1") is None
    assert start_metrics(_bot(metrics_format="none"), "127.0.0.1") is None
    stop_metrics(None)
