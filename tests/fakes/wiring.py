"""Wiring the real Slack app for tests: FakeSlack + FakeJira + SQLite store, through bootstrap().

``Rig`` starts the fakes, builds the use cases with ``bot.bootstrap.bootstrap`` (adapters aimed
at the local servers, fakes for the analyzer and the index), builds the runtime (the Bolt app and
the inbox workers, ``bot.slack.server.Runtime``) and serves it on waitress at
127.0.0.1:<ephemeral>. ``rig.send_event(...)`` posts signed requests over a socket; every
delivery goes through the inbox, and ``rig.wait_idle()`` waits for its workers.
"""

from __future__ import annotations

import itertools
import json
import re
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from slack_bolt import App

from bot.adapters.store_sql import SqlStore
from bot.bootstrap import Bot, bootstrap
from bot.config import Settings
from bot.domain.filing import FilingJob
from bot.domain.models import Analysis, Match, Post, Ticket
from bot.domain.ports import Store
from bot.slack.jira_webhook import jira_webhook_app
from bot.slack.server import HttpServer, Runtime
from bot.workers import InboxWorkers, OutboxWorker
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack
from tests.fakes.slack_signing import event_body, interactive_body, post, signed_request

SECRET = "test-signing-secret"
_WORD = re.compile(r"[a-z0-9]+")


class KeywordAnalyzer:
    """A deterministic Analyzer: thanks/lol -> other, crash/error -> bug, '?' -> question."""

    name = "keyword"

    def analyze(self, post: Post) -> Analysis:
        text = post.text.strip()
        low = text.lower()
        if low in {"thanks", "thanks!", "lol", "hi", "+1"} or low.startswith("thank you"):
            kind = "other"
        elif "crash" in low or "error" in low:
            kind = "bug"
        elif text.endswith("?"):
            kind = "question"
        else:
            kind = "idea"
        first = text.splitlines()[0] if text else "untitled"
        return Analysis(
            kind=kind,  # type: ignore[arg-type]
            confidence=0.9,
            title=first or "untitled",
            summary=text[:300],
            labels=("from-slack",),
            analyzer=self.name,
        )


class WordIndex:
    """A TicketIndex by word overlap (Jaccard): identical texts score 1.0."""

    def __init__(self, tickets: Sequence[Ticket] = ()) -> None:
        self.tickets: dict[str, Ticket] = {t.key: t for t in tickets}
        self.upserted: list[str] = []
        self._lock = threading.Lock()

    @staticmethod
    def _words(text: str) -> set[str]:
        return set(_WORD.findall(text.lower()))

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        with self._lock:
            for t in tickets:
                self.tickets[t.key] = t
                self.upserted.append(t.key)
        return len(tickets)

    def delete(self, keys: Sequence[str]) -> None:
        with self._lock:
            for k in keys:
                self.tickets.pop(k, None)

    def search(self, text: str, top_k: int = 10) -> list[Match]:
        q = self._words(text)
        out = []
        with self._lock:
            items = list(self.tickets.values())
        for t in items:
            w = self._words(t.text())
            if q and w:
                score = len(q & w) / len(q | w)
                out.append(Match(key=t.key, title=t.title, score=score, url=t.url))
        return sorted(out, key=lambda m: -m.score)[:top_k]

    def search_many(self, texts: Sequence[str], top_k: int = 10) -> list[list[Match]]:
        return [self.search(t, top_k) for t in texts]

    def count(self) -> int:
        return len(self.tickets)

    def labelled(self) -> list[tuple[Ticket, Any]]:
        return []

    def version(self) -> str:
        return str(len(self.upserted))


class Clock:
    """A settable clock for the outbox (never real sleeping in tests)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> datetime:
        with self._lock:
            self.now += timedelta(seconds=seconds)
            return self.now


@dataclass
class Replica:
    """One bot process as the tests see it: its use cases and its runtime (the Bolt app, the
    inbox workers, the outbox worker). Nothing of it is started."""

    bot: Bot
    runtime: Runtime

    @property
    def store(self) -> Store:
        return self.bot.adapters.store

    @property
    def app(self) -> App:
        return self.runtime.app

    @property
    def inbox(self) -> InboxWorkers:
        return self.runtime.inbox

    @property
    def worker(self) -> OutboxWorker:
        return self.runtime.outbox


class Rig:
    """FakeSlack + FakeJira + the real app on waitress; see the module docstring."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        channels: Sequence[str] = ("CIDEAS01",),
        tickets: Sequence[Ticket] = (),
        jira: FakeJira | None = None,
        db_url: str | None = None,
        start_server: bool = True,
        start_workers: bool = True,
        metrics: Any = None,
        flags: Any = None,
        analyzer: Any = None,
        offline_analyzer: Any = None,
        **settings: Any,
    ) -> None:
        self.tmp_path = tmp_path
        self._metrics = metrics  # a Metrics adapter for the bot (else METRICS_FORMAT decides)
        # Adapters a test may inject: the Flags port, and an analyzer pair (an LLM stand-in and
        # the offline one the ``llm-analysis`` flag falls back to). None: the Rig's defaults.
        self._injected: dict[str, Any] = {
            k: v
            for k, v in (
                ("flags", flags),
                ("analyzer", analyzer),
                ("offline_analyzer", offline_analyzer),
            )
            if v is not None
        }
        self.slack = FakeSlack()
        self.slack.start()
        self.jira = jira or FakeJira(project="PROJ")
        self.jira.start()
        self.clock = Clock()
        self.db_url = db_url or f"sqlite:///{tmp_path / 'bot.sqlite3'}"
        values: dict[str, Any] = {
            "bot_data_dir": tmp_path / "data",
            "slack_bot_token": self.slack.token,
            "slack_signing_secret": SECRET,
            "slack_api_url": self.slack.base_url,
            "idea_channels": ",".join(channels),
            "jira_url": self.jira.base_url,
            "jira_project": "PROJ",
            "jira_api_token": self.jira.token,
            "jira_email": self.jira.email,
            "jira_issue_types": "idea=Story,bug=Bug,question=Task,other=Task",
        }
        values.update(settings)
        self.settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
        self.index = WordIndex(tickets)
        self._ids = itertools.count(1)
        self.server: HttpServer | None = None
        try:
            main = self.replica()
        except BaseException:
            self.slack.stop()
            self.jira.stop()
            raise
        self.runtime = main.runtime
        self.bot, self.app, self.worker, self.inbox = main.bot, main.app, main.worker, main.inbox
        # The inbox's pools run (deliveries are processed as in production); its poller and the
        # outbox worker do not: tests drive those passes with the hand-moved clock. Without
        # *start_workers* deliveries are recorded and claimed but never processed: a replica that
        # is killed right after answering Slack.
        if start_workers:
            self.runtime.start(poll=False, outbox=False)
        if start_server:
            self.server = HttpServer(
                self.app,
                host="127.0.0.1",
                port=0,
                threads=8,
                readiness=self.runtime.readiness,
                metrics=self.bot.adapters.metrics,
                jira_webhook=jira_webhook_app(self.bot),
            ).start()

    @property
    def store(self) -> Store:
        return self.bot.adapters.store

    def make_bot(self) -> Bot:
        """Use cases through the production composition root, with test adapters injected."""
        # The calendar comes from MEETINGS_ICS when a test sets it, else there is none.
        calendar: dict[str, Any] = {} if self.settings.meetings_ics else {"calendar": None}
        adapters: dict[str, Any] = {"analyzer": KeywordAnalyzer(), **self._injected}
        bot = bootstrap(
            self.settings,
            store=SqlStore(self.db_url),
            embedder=object(),
            index=self.index,
            llm=None,
            **adapters,
            **calendar,
            clock=self.clock,
            rng=lambda a, b: b,  # the jitter's upper bound: deterministic
            **({"metrics": self._metrics} if self._metrics is not None else {}),
        )
        bot.startup()
        return bot

    def replica(self) -> Replica:
        """Another bot process on the same database and fakes (not started, not served)."""
        bot = self.make_bot()
        return Replica(bot, Runtime(bot, clock=self.clock))

    # ------------------------------------------------------------------ requests

    @property
    def url(self) -> str:
        assert self.server is not None
        return self.server.url + "/slack/events"

    def get(self, path: str) -> tuple[int, str]:
        """GET *path* on the served app (``/healthz``, ``/readyz``); returns (status, text)."""
        import http.client

        assert self.server is not None
        conn = http.client.HTTPConnection("127.0.0.1", self.server.port, timeout=10)
        try:
            conn.request("GET", path)
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def send(self, body: str, headers: dict[str, str]) -> tuple[int, bytes]:
        return post(self.url, body, headers)

    def send_event(
        self,
        event: dict[str, Any],
        event_id: str | None = None,
        retry_num: int | None = None,
        secret: str = SECRET,
        timestamp: int | None = None,
    ) -> tuple[int, bytes]:
        """Signs and posts one Events API callback; returns (status, body)."""
        body = event_body(event, event_id=event_id or f"Ev{next(self._ids):06d}")
        headers = signed_request(secret, body, timestamp=timestamp)
        if retry_num is not None:
            headers["X-Slack-Retry-Num"] = str(retry_num)
            headers["X-Slack-Retry-Reason"] = "http_timeout"
        return self.send(body, headers)

    def send_shortcut(
        self, channel: str, ts: str, text: str, author: str, requester: str = "UBOB"
    ) -> tuple[int, bytes]:
        """Signs and posts the "File as Jira ticket" message shortcut on one message."""
        from bot.slack import blocks

        return self.send_interactive(
            {
                "type": "message_action",
                "callback_id": blocks.SHORTCUT_FILE,
                "trigger_id": f"{next(self._ids)}.2",  # Slack's is new for every use
                "user": {"id": requester},
                "team": {"id": "T1"},
                "channel": {"id": channel},
                "message_ts": ts,
                "response_url": "http://127.0.0.1:9/x",
                "message": {"ts": ts, "text": text, "user": author},
            }
        )

    def send_interactive(self, payload: dict[str, Any]) -> tuple[int, bytes]:
        body = interactive_body(payload)
        return self.send(
            body, signed_request(SECRET, body, content_type="application/x-www-form-urlencoded")
        )

    def send_command(self, fields: dict[str, str]) -> tuple[int, bytes]:
        from urllib.parse import urlencode

        body = urlencode(fields)
        return self.send(
            body, signed_request(SECRET, body, content_type="application/x-www-form-urlencoded")
        )

    def message(
        self,
        text: str,
        channel: str = "CIDEAS01",
        user: str = "UALICE",
        ts: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A message event (also seeded into FakeSlack's history)."""
        ts = ts or f"1700000{next(self._ids):03d}.000100"
        self.slack.add_message(channel, ts, text, user, thread_ts=extra.get("thread_ts"))
        ev = {
            "type": "message",
            "channel": channel,
            "user": user,
            "text": text,
            "ts": ts,
            "channel_type": "channel",
            "event_ts": ts,
        }
        ev.update(extra)
        return ev

    def filing_job(self, ev: dict[str, Any], requester: str = "UBOB") -> FilingJob:
        """The outbox work item a reaction by *requester* on message event *ev* would queue."""
        return FilingJob(
            channel=str(ev["channel"]),
            ts=str(ev["ts"]),
            reply_ts=str(ev["ts"]),
            text=str(ev["text"]),
            requester=requester,
            author=str(ev.get("user") or ""),
        )

    def reaction(
        self,
        channel: str,
        ts: str,
        user: str = "UBOB",
        name: str = "ticket",
        item_user: str = "UALICE",
    ) -> dict[str, Any]:
        return {
            "type": "reaction_added",
            "user": user,
            "reaction": name,
            "item_user": item_user,
            "item": {"type": "message", "channel": channel, "ts": ts},
            "event_ts": "1700009999.000100",
        }

    def button(
        self, action_id: str, value: dict[str, str], user: str = "UBOB", channel: str = "CIDEAS01"
    ) -> dict[str, Any]:
        return {
            "type": "block_actions",
            "user": {"id": user},
            "api_app_id": "A1",
            "team": {"id": "T1"},
            "channel": {"id": channel},
            "trigger_id": f"{next(self._ids)}.2.3",  # new for every click, as Slack's
            "container": {"type": "message"},
            "message": {"ts": "1700000000.000001", "text": "bot reply"},
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "b",
                    "type": "button",
                    "value": json.dumps(value),
                    "action_ts": "1",
                }
            ],
        }

    def wait_idle(self) -> None:
        """Waits until the inbox workers have processed every event this replica took (each
        delivery is recorded and queued before the endpoint answers, so that is all of them)."""
        self.inbox.wait_idle()

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()
        self.runtime.shutdown(time.monotonic() + 10)
        self.slack.stop()
        self.jira.stop()
