"""Listener tests: signed Bolt requests in, the real use cases on in-memory fakes, calls out.

``ListenerRig`` wires the real listeners (``register_listeners``: listeners, then fallbacks)
and the payload guard on a Bolt ``App`` that runs them inside ``dispatch``
(``process_before_response``), with an ``authorize`` function instead of ``auth.test``: no
network, no threads, so a test reads what the use cases said (``notes``), what reached the
tracker and the store right after a request.
Errors a listener raises are recorded by the app's error handler in ``errors``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt import App, BoltRequest
from slack_bolt.authorization import AuthorizeResult

from bot.domain.models import Analysis, Match, Post
from bot.service.channels import IdeaChannels
from bot.service.edit_post import EditPost
from bot.service.engagement import RecordEngagement
from bot.service.file_message import FileMessage
from bot.service.filing import Filer
from bot.service.receive_post import ReceivePost
from bot.service.triage import Triager
from bot.slack.listeners import register_listeners
from bot.slack.listeners.guard import PayloadGuard
from tests.fakes.chat import RecordingChat
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.slack_signing import event_body, interactive_body, signed_request
from tests.fakes.tracker import FakeTracker

SECRET = "listener-test-secret"
C = "CIDEAS01"


class Words:
    """thanks -> other, anything else an idea titled by its first 60 characters."""

    name = "words"

    def analyze(self, post: Post) -> Analysis:
        kind = "other" if post.text.lower().startswith("thanks") else "idea"
        return Analysis(
            kind=kind, confidence=0.9, title=post.text[:60] or "x", summary="", analyzer="w"
        )


@dataclass
class OneMatch:
    """An index whose best match for anything is *match* (or nothing)."""

    match: Match | None = None

    def search(self, text: str, top_k: int = 10) -> list[Match]:
        return [self.match] if self.match else []


@dataclass
class ListenerRig:
    store: MemoryStore = field(default_factory=MemoryStore)
    chat: RecordingChat = field(default_factory=RecordingChat)
    notes: RecordingNotifier = field(default_factory=RecordingNotifier)
    tracker: FakeTracker = field(default_factory=FakeTracker)
    index: OneMatch = field(default_factory=OneMatch)
    errors: list[Exception] = field(default_factory=list)

    def __post_init__(self) -> None:
        channels = IdeaChannels([C])
        triager = Triager(Words(), self.index)  # type: ignore[arg-type]
        self.filer = Filer(
            store=self.store,
            tracker=self.tracker,
            project="PROJ",
            issue_types={"idea": "Story"},
            notifier=self.notes,
        )
        self.engagement = RecordEngagement(store=self.store, notifier=self.notes, filer=self.filer)
        self.edit_post = EditPost(
            store=self.store,
            triager=triager,
            notifier=self.notes,
            filer=self.filer,
            channels=channels,
            tracker=self.tracker,
            engagement=self.engagement,
        )
        self.receive_post = ReceivePost(
            store=self.store,
            triager=triager,
            notifier=self.notes,
            chat=self.chat,
            channels=channels,
            engagement=self.engagement,
        )
        self.file_message = FileMessage(
            store=self.store,
            chat=self.chat,
            notifier=self.notes,
            filer=self.filer,
            triager=triager,
            channels=channels,
            edits=self.edit_post,
        )
        self.app = App(
            signing_secret=SECRET,
            authorize=lambda enterprise_id, team_id, user_id: AuthorizeResult(
                enterprise_id=enterprise_id,
                team_id=team_id,
                bot_user_id="UBOT",
                bot_id="BBOT",
                bot_token="xoxb-listener-test",
            ),
            process_before_response=True,
            before_authorize=PayloadGuard(),  # as bot.slack.app.build_app installs it
        )
        register_listeners(
            self.app, self.receive_post, self.file_message, self.edit_post, self.engagement
        )

        @self.app.error
        def record(error: Exception) -> None:
            self.errors.append(error)

    # ------------------------------------------------------------------ requests

    @staticmethod
    def request(body: str, content_type: str) -> BoltRequest:
        """A signed request as Bolt's HTTP adapters build it (which parses the payload)."""
        headers = signed_request(SECRET, body, content_type=content_type)
        return BoltRequest(body=body, headers={k.lower(): [v] for k, v in headers.items()})

    def dispatch(self, body: str | BoltRequest, content_type: str = "") -> tuple[int, str]:
        """Dispatches one signed request; returns (status, body)."""
        req = body if isinstance(body, BoltRequest) else self.request(body, content_type)
        resp = self.app.dispatch(req)
        return resp.status, resp.body

    def event(self, event: dict[str, Any], event_id: str = "Ev1") -> tuple[int, str]:
        return self.dispatch(event_body(event, event_id=event_id), "application/json")

    def envelope(self, envelope: dict[str, Any]) -> tuple[int, str]:
        return self.dispatch(json.dumps(envelope), "application/json")

    def interactive(self, payload: Any) -> tuple[int, str]:
        return self.dispatch(interactive_body(payload), "application/x-www-form-urlencoded")

    def command(self, fields: dict[str, str]) -> tuple[int, str]:
        return self.dispatch(urlencode(fields), "application/x-www-form-urlencoded")

    # ------------------------------------------------------------------ payloads

    @staticmethod
    def message(text: str, ts: str = "1700000100.000100", **extra: Any) -> dict[str, Any]:
        ev = {
            "type": "message",
            "channel": C,
            "user": "UALICE",
            "text": text,
            "ts": ts,
            "channel_type": "channel",
            "event_ts": ts,
        }
        ev.update(extra)
        return ev

    @staticmethod
    def reaction(
        kind: str = "reaction_added", user: str = "UBOB", name: str = "+1", **item: str
    ) -> dict[str, Any]:
        return {
            "type": kind,
            "user": user,
            "reaction": name,
            "item_user": "UALICE",
            "item": {"type": "message", "channel": C, "ts": "1700000100.000100", **item},
            "event_ts": "1700000300.000100",
        }

    def said(self) -> list[str]:
        return self.notes.kinds()


@pytest.fixture
def lr() -> Iterator[ListenerRig]:
    rig = ListenerRig()
    yield rig
    assert rig.errors == [], rig.errors


def now() -> datetime:
    return datetime.now(UTC)
