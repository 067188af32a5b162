"""The metrics port: one fixed catalogue of metric names, written to Prometheus or CloudWatch EMF.

Use cases record what happened through :class:`Metrics` (``inc``, ``observe``, ``set_gauge``,
``set_since``); an adapter decides where the numbers go (``bot.adapters.metrics_prometheus``,
``bot.adapters.metrics_emf``). :class:`NullMetrics` is the default and records nothing.

Every name a caller may use is in :data:`CATALOGUE`, with its kind, its unit and its label
names. Labels are bounded by construction, so a metric can never grow one series per user or per
message:

* a label with a closed set of values (``outcome``, ``status``, ``verdict`` ...) maps anything
  outside the set to ``other``;
* an open label (``type``, ``method``, ``task`` ...) is cleaned to ``[A-Za-z0-9_.:/-]``, cut
  at 64 characters, and after :data:`MAX_OPEN_VALUES` distinct values per metric the rest read
  ``other``.

Never pass a user id, a channel, a message text or a ticket key as a label value: those belong
in the log context (``bot.observability.context``), not in metric identity.

The catalogue (``kind``, ``labels``; the unit is in the name):

========================================  =========  ==============================
``ideabot_events_received_total``         counter    type, outcome
``ideabot_ack_seconds``                   histogram  type
``ideabot_triage_seconds``                histogram  analyzer
``ideabot_llm_calls_total``               counter    task, outcome
``ideabot_llm_call_seconds``              histogram  task
``ideabot_llm_fallbacks_total``           counter    task, reason
``ideabot_llm_tokens_total``              counter    task, direction
``ideabot_search_seconds``                histogram  index
``ideabot_index_size``                    gauge      index
``ideabot_duplicate_verdicts_total``      counter    verdict
``ideabot_filings_total``                 counter    outcome
``ideabot_outbox_depth``                  gauge      topic
``ideabot_outbox_oldest_age_seconds``     age        topic
``ideabot_api_calls_total``               counter    service, method, status
``ideabot_api_call_seconds``              histogram  service, method
``ideabot_api_retries_total``             counter    service, method
``ideabot_digest_runs_total``             counter    digest, outcome
``ideabot_sync_runs_total``               counter    outcome
``ideabot_sync_lag_seconds``              age        (none)
``ideabot_issue_changes_total``           counter    source, outcome
``ideabot_jira_webhooks_total``           counter    outcome
``ideabot_vote_writes_total``             counter    outcome
``ideabot_notes_posts_total``             counter    outcome
``ideabot_notes_ideas_total``             counter    analyzer
========================================  =========  ==============================

An *age* gauge is set to a moment (``set_since``) and reads the seconds elapsed since then
whenever it is scraped or flushed, so "time since the last successful sync" stays true between
syncs without anyone updating it.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

MetricKind = Literal["counter", "histogram", "gauge", "age"]
# The CloudWatch units this catalogue uses (a subset of MetricDatum's allowed units).
Unit = Literal["Count", "Seconds", "None"]

OTHER = "other"
MAX_OPEN_VALUES = 50
MAX_VALUE_CHARS = 64

# Histogram buckets, in seconds. The ack must come inside Slack's 3 s; LLM calls time out at
# LLM_TIMEOUT (20 s by default, 600 s at most); API calls have their own deadlines.
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
WORK_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0)
FAST_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass(frozen=True)
class Label:
    """A label name and, when the set is closed, every value it may take."""

    name: str
    values: frozenset[str] | None = None  # None: open, cleaned and capped
    normalise: Callable[[str], str] | None = None  # applied before the check


@dataclass(frozen=True)
class MetricSpec:
    """One metric of the catalogue."""

    name: str
    kind: MetricKind
    help: str
    labels: tuple[str, ...] = ()
    unit: Unit = "Count"
    buckets: tuple[float, ...] = ()


def _closed(name: str, *values: str, normalise: Callable[[str], str] | None = None) -> Label:
    return Label(name, frozenset((*values, OTHER)), normalise)


def analyzer_label(analyzer: str) -> str:
    """``Triage.analyzer`` (``"llm:openai:gpt-4o-mini"``, ``"offline (llm fallback: timeout)"``)
    as a bounded label value: ``llm``, ``offline`` or ``fallback``."""
    text = analyzer.strip().lower()
    if "fallback" in text:
        return "fallback"
    return re.split(r"[:\s(]", text, maxsplit=1)[0] or OTHER


LABELS: dict[str, Label] = {
    label.name: label
    for label in (
        Label("type"),  # the Slack event type: message, reaction_added, block_actions, ...
        _closed("analyzer", "llm", "offline", "fallback", normalise=analyzer_label),
        Label("task"),  # the prompt name: triage, takeaways, meetings
        _closed("reason", "timeout", "unavailable", "invalid_output", "error"),
        _closed("direction", "input", "output"),
        _closed("index", "local", "pinecone"),
        _closed("verdict", "likely_duplicate", "similar", "none"),
        Label("topic"),  # the outbox topic: jira.file
        _closed("service", "jira", "slack", "pinecone", "llm"),
        Label("method"),  # the API method: chat.postMessage, issue.create, search, ...
        _closed(
            "status",
            "ok",
            "rate_limited",
            "client_error",
            "server_error",
            "timeout",
            "connection_error",
            "error",
        ),
        Label("digest"),  # the digest kind: meetings, takeaways
        _closed("source", "sync", "webhook", "vote"),  # what made the bot look at an issue
    )
}

# ``outcome`` means a different closed set on each metric; the spec names which one.
OUTCOMES: dict[str, Label] = {
    "ideabot_events_received_total": _closed(
        "outcome", "accepted", "duplicate", "ignored", "rejected", "error"
    ),
    "ideabot_llm_calls_total": _closed(
        "outcome", "ok", "timeout", "unavailable", "invalid_output", "error"
    ),
    "ideabot_filings_total": _closed(
        "outcome",
        # bot.domain.filing.Status, plus the worker's own outcomes
        "filed",
        "commented",
        "already",
        "in_progress",
        "queued",
        "duplicate",
        "rejected",
        "denied",
        "unreadable",
        "unavailable",
        "ignored",
        "retry",
        "failed",
    ),
    "ideabot_digest_runs_total": _closed(
        "outcome", "posted", "already_posted", "in_progress", "dry_run", "failed", "skipped"
    ),
    "ideabot_sync_runs_total": _closed("outcome", "ok", "failed"),
    "ideabot_issue_changes_total": _closed(
        "outcome", "announced", "unchanged", "baseline", "busy", "skipped", "gone", "failed"
    ),
    "ideabot_jira_webhooks_total": _closed(
        "outcome", "accepted", "ignored", "unauthorised", "bad_request", "failed"
    ),
    "ideabot_vote_writes_total": _closed("outcome", "written", "unchanged", "failed"),
    # notes: several ideas listed; single: long, but answered as one post; failed: extractor error
    "ideabot_notes_posts_total": _closed("outcome", "notes", "single", "failed"),
}

EVENTS_RECEIVED = "ideabot_events_received_total"
ACK_SECONDS = "ideabot_ack_seconds"
TRIAGE_SECONDS = "ideabot_triage_seconds"
LLM_CALLS = "ideabot_llm_calls_total"
LLM_CALL_SECONDS = "ideabot_llm_call_seconds"
LLM_FALLBACKS = "ideabot_llm_fallbacks_total"
LLM_TOKENS = "ideabot_llm_tokens_total"
SEARCH_SECONDS = "ideabot_search_seconds"
INDEX_SIZE = "ideabot_index_size"
DUPLICATE_VERDICTS = "ideabot_duplicate_verdicts_total"
FILINGS = "ideabot_filings_total"
OUTBOX_DEPTH = "ideabot_outbox_depth"
OUTBOX_OLDEST_AGE = "ideabot_outbox_oldest_age_seconds"
API_CALLS = "ideabot_api_calls_total"
API_CALL_SECONDS = "ideabot_api_call_seconds"
API_RETRIES = "ideabot_api_retries_total"
DIGEST_RUNS = "ideabot_digest_runs_total"
SYNC_RUNS = "ideabot_sync_runs_total"
SYNC_LAG = "ideabot_sync_lag_seconds"
ISSUE_CHANGES = "ideabot_issue_changes_total"
JIRA_WEBHOOKS = "ideabot_jira_webhooks_total"
VOTE_WRITES = "ideabot_vote_writes_total"
NOTES_POSTS = "ideabot_notes_posts_total"
NOTES_IDEAS = "ideabot_notes_ideas_total"

CATALOGUE: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            EVENTS_RECEIVED,
            "counter",
            "Slack events received, by event type and what became of them.",
            ("type", "outcome"),
        ),
        MetricSpec(
            ACK_SECONDS,
            "histogram",
            "Seconds from receiving a Slack event to acknowledging it (Slack allows 3).",
            ("type",),
            "Seconds",
            ACK_BUCKETS,
        ),
        MetricSpec(
            TRIAGE_SECONDS,
            "histogram",
            "Seconds to triage one post (analysis and duplicate search), by analyzer.",
            ("analyzer",),
            "Seconds",
            WORK_BUCKETS,
        ),
        MetricSpec(LLM_CALLS, "counter", "LLM calls, by prompt and outcome.", ("task", "outcome")),
        MetricSpec(
            LLM_CALL_SECONDS,
            "histogram",
            "Seconds per LLM call, by prompt.",
            ("task",),
            "Seconds",
            WORK_BUCKETS,
        ),
        MetricSpec(
            LLM_FALLBACKS,
            "counter",
            "Times the offline analyzer answered instead of the LLM, by prompt and reason.",
            ("task", "reason"),
        ),
        MetricSpec(
            LLM_TOKENS,
            "counter",
            "LLM tokens, by prompt and direction (input, output), as the provider reports them.",
            ("task", "direction"),
        ),
        MetricSpec(
            SEARCH_SECONDS,
            "histogram",
            "Seconds per similar-ticket search, by index.",
            ("index",),
            "Seconds",
            FAST_BUCKETS,
        ),
        MetricSpec(INDEX_SIZE, "gauge", "Tickets in the similarity index.", ("index",)),
        MetricSpec(
            DUPLICATE_VERDICTS,
            "counter",
            "Triage verdicts on the best match: likely_duplicate, similar (shown only) or none.",
            ("verdict",),
        ),
        MetricSpec(FILINGS, "counter", "Filing requests and attempts, by outcome.", ("outcome",)),
        MetricSpec(OUTBOX_DEPTH, "gauge", "Outbox items waiting, by topic.", ("topic",)),
        MetricSpec(
            OUTBOX_OLDEST_AGE,
            "age",
            "Seconds since the oldest waiting outbox item was queued (0 when empty).",
            ("topic",),
            "Seconds",
        ),
        MetricSpec(
            API_CALLS,
            "counter",
            "Calls to outside APIs, by service, method and status class.",
            ("service", "method", "status"),
        ),
        MetricSpec(
            API_CALL_SECONDS,
            "histogram",
            "Seconds per outside API call, by service and method.",
            ("service", "method"),
            "Seconds",
            FAST_BUCKETS,
        ),
        MetricSpec(
            API_RETRIES,
            "counter",
            "Retries of outside API calls (rate limits, 5xx, timeouts), by service and method.",
            ("service", "method"),
        ),
        MetricSpec(
            DIGEST_RUNS, "counter", "Digest runs, by digest and outcome.", ("digest", "outcome")
        ),
        MetricSpec(SYNC_RUNS, "counter", "Jira sync runs, by outcome.", ("outcome",)),
        MetricSpec(
            SYNC_LAG,
            "age",
            "Seconds since the last successful Jira sync (absent until one succeeds).",
            (),
            "Seconds",
        ),
        MetricSpec(
            ISSUE_CHANGES,
            "counter",
            "Filed issues looked at for changes to announce in Slack, by source and outcome.",
            ("source", "outcome"),
        ),
        MetricSpec(JIRA_WEBHOOKS, "counter", "Jira webhook deliveries, by outcome.", ("outcome",)),
        MetricSpec(
            VOTE_WRITES,
            "counter",
            "Vote counts written to filed issues' descriptions, by outcome.",
            ("outcome",),
        ),
        MetricSpec(
            NOTES_POSTS,
            "counter",
            "Long posts read for several ideas, by outcome (notes, single, failed).",
            ("outcome",),
        ),
        MetricSpec(
            NOTES_IDEAS, "counter", "Ideas found in notes posts, by extractor.", ("analyzer",)
        ),
    )
}


class MetricError(ValueError):
    """A metric name or label name outside the catalogue: a programming error, caught by tests."""


def spec_for(name: str) -> MetricSpec:
    """The catalogue entry for *name*; raises :class:`MetricError` for an unknown name."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise MetricError(f"unknown metric {name!r}: add it to bot.domain.metrics") from None


def label_rule(metric: str, label: str) -> Label:
    """How *label* of *metric* is bounded."""
    if label == "outcome":
        return OUTCOMES[metric]
    return LABELS[label]


_UNSAFE = re.compile(r"[^A-Za-z0-9_.:/-]+")


def clean_value(value: str) -> str:
    """A label value cut down to ``[A-Za-z0-9_.:/-]`` and :data:`MAX_VALUE_CHARS` characters
    (``other`` if nothing is left); Slack's ``chat.postMessage`` keeps its case."""
    text = _UNSAFE.sub("_", str(value).strip()).strip("_")[:MAX_VALUE_CHARS]
    return text or OTHER


class LabelGuard:
    """Bounds label values as the module docstring says; thread-safe, one per adapter."""

    def __init__(self, max_open_values: int = MAX_OPEN_VALUES) -> None:
        self.max_open_values = max_open_values
        self._seen: dict[tuple[str, str], set[str]] = {}
        self._lock = threading.Lock()

    def check(self, spec: MetricSpec, labels: Mapping[str, str]) -> tuple[str, ...]:
        """The label values of *labels* in the order of ``spec.labels``, each bounded.

        Raises :class:`MetricError` when the label names are not exactly the spec's."""
        if set(labels) != set(spec.labels):
            raise MetricError(
                f"{spec.name} takes labels {sorted(spec.labels)}, got {sorted(labels)}"
            )
        return tuple(self._bound(spec.name, name, labels[name]) for name in spec.labels)

    def _bound(self, metric: str, name: str, raw: str) -> str:
        rule = label_rule(metric, name)
        value = clean_value(rule.normalise(raw) if rule.normalise else raw)
        if rule.values is not None:
            value = value.lower()
            return value if value in rule.values else OTHER
        key = (metric, name)
        with self._lock:
            seen = self._seen.setdefault(key, set())
            if value in seen:
                return value
            if len(seen) >= self.max_open_values:
                return OTHER
            seen.add(value)
            return value


class Metrics(Protocol):
    """Where the use cases report what they did. Names and labels come from :data:`CATALOGUE`.

    Implementations raise :class:`MetricError` for a name or label name outside the catalogue
    (a bug), never for a label *value* (values are bounded instead)."""

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Adds *amount* to the counter *name*."""
        ...

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Records one *value* (seconds, for the ``*_seconds`` histograms) in histogram *name*."""
        ...

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        """Sets gauge *name* to *value*."""
        ...

    def set_since(self, name: str, since: datetime | None, **labels: str) -> None:
        """Makes the age gauge *name* read the seconds elapsed since *since* (0 when None)."""
        ...


class NullMetrics:
    """Records nothing (the default: metrics cost nothing until an adapter is configured)."""

    def inc(self, name: str, amount: float = 1.0, **labels: str) -> None:
        """Does nothing."""

    def observe(self, name: str, value: float, **labels: str) -> None:
        """Does nothing."""

    def set_gauge(self, name: str, value: float, **labels: str) -> None:
        """Does nothing."""

    def set_since(self, name: str, since: datetime | None, **labels: str) -> None:
        """Does nothing."""


@contextmanager
def timed(
    metrics: Metrics,
    name: str,
    *,
    clock: Callable[[], float] = time.perf_counter,
    **labels: str,
) -> Iterator[dict[str, str]]:
    """Observes the seconds the ``with`` block took in histogram *name*, even when it raises.

    Yields the labels as a dict, so a label known only at the end can still be set::

        with timed(metrics, TRIAGE_SECONDS, analyzer="offline") as labels:
            triage = triager.triage(post)
            labels["analyzer"] = triage.analyzer
    """
    start = clock()
    mutable = dict(labels)
    try:
        yield mutable
    finally:
        metrics.observe(name, max(0.0, clock() - start), **mutable)
