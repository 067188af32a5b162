"""The observability settings: parsed once, checked against CloudWatch's and OTLP's rules."""

from __future__ import annotations

import io
from typing import Any

import pytest

from bot.adapters.metrics_emf import EmfMetrics
from bot.adapters.metrics_prometheus import PrometheusMetrics
from bot.config import ConfigError, Settings, load_settings
from bot.domain.metrics import NullMetrics
from bot.observability.setup import make_metrics


def _settings(**kw: Any) -> Settings:
    return load_settings(_env_file=None, **kw)


def test_defaults() -> None:
    s = _settings()
    assert s.log_format == "text"
    assert s.metrics_format == "prometheus"
    assert s.metrics_port is None
    assert s.metrics_namespace == "ideabot"
    assert s.metrics_dimensions == {}
    assert s.metrics_flush_seconds == 60
    assert s.otel_exporter_otlp_endpoint is None


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOG_FORMAT", "JSON")
    monkeypatch.setenv("METRICS_FORMAT", "EMF")
    monkeypatch.setenv("METRICS_PORT", "9100")
    monkeypatch.setenv("METRICS_NAMESPACE", "Ideabot/Prod")
    monkeypatch.setenv("METRICS_DIMENSIONS", "Environment=prod, Service=ideabot")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    s = Settings(_env_file=None)  # type: ignore[call-arg]
    assert (s.log_format, s.metrics_format, s.metrics_port) == ("json", "emf", 9100)
    assert s.metrics_namespace == "Ideabot/Prod"
    assert s.metrics_dimensions == {"Environment": "prod", "Service": "ideabot"}  # case kept
    assert s.otel_exporter_otlp_endpoint == "http://collector:4318"


@pytest.mark.parametrize(
    ("field", "value", "variable"),
    [
        ("log_format", "yaml", "LOG_FORMAT"),
        ("metrics_format", "statsd", "METRICS_FORMAT"),
        ("metrics_port", 70000, "METRICS_PORT"),
        ("metrics_namespace", "AWS/Lambda", "METRICS_NAMESPACE"),
        ("metrics_namespace", "my app", "METRICS_NAMESPACE"),
        ("metrics_dimensions", "outcome=x", "METRICS_DIMENSIONS"),  # taken by a metric label
        ("metrics_dimensions", "Env", "METRICS_DIMENSIONS"),
        ("metrics_dimensions", ":Env=prod", "METRICS_DIMENSIONS"),
        ("metrics_dimensions", ",".join(f"D{i}=x" for i in range(28)), "METRICS_DIMENSIONS"),
        ("metrics_flush_seconds", 0, "METRICS_FLUSH_SECONDS"),
        ("otel_exporter_otlp_endpoint", "collector:4318", "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ],
)
def test_bad_values_name_the_variable(field: str, value: Any, variable: str) -> None:
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        _settings(**{field: value})


def test_make_metrics_follows_the_setting() -> None:
    assert isinstance(make_metrics(_settings(metrics_format="none")), NullMetrics)
    assert isinstance(make_metrics(_settings()), PrometheusMetrics)
    out = io.StringIO()
    emf = make_metrics(
        _settings(metrics_format="emf", metrics_namespace="ns", metrics_dimensions="Env=prod"),
        stream=out,
    )
    assert isinstance(emf, EmfMetrics)
    emf.inc("ideabot_sync_runs_total", outcome="ok")
    emf.flush()
    assert '"Namespace":"ns"' in out.getvalue() and '"Env":"prod"' in out.getvalue()
