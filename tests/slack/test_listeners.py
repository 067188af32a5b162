"""Listener tests: a signed Slack request goes into the real Bolt app (real signature check), the
use cases run on in-memory fakes, and what the bot said is read off the recording chat.

Only ``auth.test`` (Bolt's own start-up call) reaches a local fake Slack server; everything the
bot says goes through the Chat port's in-memory fake.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt import App, BoltRequest
from slack_sdk import WebClient

from bot.bootstrap import Bot, bootstrap
from bot.config import Settings
from bot.slack import blocks
from bot.slack.app import build_app
from tests.fakes.chat import RecordingChat
from tests.fakes.memory_store import MemoryStore
from tests.fakes.slack_server import FakeSlack
from tests.fakes.slack_signing import event_body, interactive_body, signed_request
from tests.fakes.tracker import FakeTracker
from tests.fakes.wiring import KeywordAnalyzer, WordIndex, _idle

SECRET = "listener-test-secret"
CHANNEL = "CIDEAS01"


class Harness:
    def __init__(self, tmp_path: Path, slack: FakeSlack) -> None:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            bot_data_dir=tmp_path / "data",
            slack_bot_token=slack.token,
            slack_signing_secret=SECRET,
            idea_channels=CHANNEL,
            jira_url="https://jira.example",
            jira_project="PROJ",
            jira_api_token="t",
        )
        self.chat = RecordingChat()
        self.tracker = FakeTracker()
        self.store = MemoryStore()
        self.bot: Bot = bootstrap(
            settings,
            store=self.store,
            embedder=object(),
            index=WordIndex(),
            analyzer=KeywordAnalyzer(),
            tracker=self.tracker,
            calendar=None,
            llm=None,
            slack_client=WebClient(token=slack.token, base_url=slack.base_url),
            chat=self.chat,
        )
        self.bot.startup()
        self.app: App = build_app(self.bot, workers=1)

    def send(self, body: str, content_type: str = "application/json", secret: str = SECRET) -> int:
        headers = signed_request(secret, body, content_type=content_type)
        resp = self.app.dispatch(
            BoltRequest(body=body, headers={k.lower(): [v] for k, v in headers.items()})
        )
        _idle(self.app.listener_runner.listener_executor)
        return resp.status

    def event(self, event: dict[str, Any], event_id: str = "Ev1") -> int:
        return self.send(event_body(event, event_id=event_id))

    def interactive(self, payload: dict[str, Any]) -> int:
        return self.send(interactive_body(payload), "application/x-www-form-urlencoded")


@pytest.fixture
def h(tmp_path: Path) -> Iterator[Harness]:
    with FakeSlack() as slack:
        harness = Harness(tmp_path, slack)
        try:
            yield harness
        finally:
            harness.app.listener_runner.listener_executor.shutdown(wait=True)


def message(text: str, ts: str = "1700000000.000100", **extra: Any) -> dict[str, Any]:
    ev = {"type": "message", "channel": CHANNEL, "user": "UALICE", "text": text, "ts": ts}
    ev.update(extra)
    return ev


def test_an_idea_post_gets_one_triage_reply_in_its_thread(h: Harness) -> None:
    assert h.event(message("Add dark mode")) == 200
    (reply,) = h.chat.posts
    assert reply["channel"] == CHANNEL and reply["thread_ts"] == "1700000000.000100"
    assert h.store.get_post(CHANNEL, "1700000000.000100") is not None
    assert h.event(message("Add dark mode"), event_id="Ev1") == 200  # Slack's retry
    assert len(h.chat.posts) == 1


@pytest.mark.parametrize(
    "extra",
    [
        {"subtype": "message_changed"},
        {"subtype": "channel_join"},
        {"bot_id": "B1"},
        {"user": "UBOT"},  # the bot's own user (from the authorizations in the envelope)
        {"ts": None},
    ],
    ids=["edit", "join", "bot", "self", "no-ts"],
)
def test_messages_that_are_not_posts_reach_no_use_case(h: Harness, extra: dict[str, Any]) -> None:
    ev = message("Add dark mode")
    ev.update(extra)
    if ev.get("ts") is None:
        ev.pop("ts")
    assert h.event(ev) == 200
    assert h.chat.posts == [] and h.store.get_post(CHANNEL, "1700000000.000100") is None


def test_the_file_emoji_files_once_and_marks_the_post(h: Harness) -> None:
    h.event(message("Add dark mode"))
    reaction = {
        "type": "reaction_added",
        "user": "UBOB",
        "reaction": "ticket",
        "item_user": "UALICE",
        "item": {"type": "message", "channel": CHANNEL, "ts": "1700000000.000100"},
        "event_ts": "1700000001.000100",
    }
    assert h.event(reaction, event_id="Ev2") == 200
    assert h.event(reaction, event_id="Ev3") == 200  # a second person: already filed
    assert len(h.tracker.created) == 1
    assert (CHANNEL, "1700000000.000100", "white_check_mark") in h.chat.reactions
    assert [e["user"] for e in h.chat.ephemerals] == ["UBOB"]  # "already filed", privately


def test_the_button_and_the_shortcut_file_the_message(h: Harness) -> None:
    h.event(message("Add dark mode"))
    value = json.dumps({"c": CHANNEL, "ts": "1700000000.000100"})
    button = {
        "type": "block_actions",
        "user": {"id": "UBOB"},
        "team": {"id": "T1"},
        "channel": {"id": CHANNEL},
        "container": {"type": "message"},
        "actions": [{"action_id": blocks.ACTION_FILE, "type": "button", "value": value}],
    }
    assert h.interactive(button) == 200
    assert [i.summary for i in h.tracker.created] == ["Add dark mode"]
    shortcut = {
        "type": "message_action",
        "callback_id": blocks.SHORTCUT_FILE,
        "trigger_id": "1.2",
        "user": {"id": "UCAROL"},
        "team": {"id": "T1"},
        "channel": {"id": "COTHER01"},
        "message_ts": "1700000005.000100",
        "response_url": "http://127.0.0.1:9/x",
        "message": {"ts": "1700000005.000100", "text": "Export to CSV", "user": "UDAN"},
    }
    assert h.interactive(shortcut) == 200
    assert [i.summary for i in h.tracker.created] == ["Add dark mode", "Export to CSV"]


def test_a_badly_signed_request_reaches_nothing(h: Harness) -> None:
    assert h.send(event_body(message("Add dark mode")), secret="not-the-secret") == 401
    assert h.chat.posts == [] and h.tracker.created == []
