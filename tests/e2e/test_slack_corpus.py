"""Replays a corpus of Slack payloads, in Slack's documented shapes, through the HTTP endpoint.

Each fixture under tests/fixtures/slack/ is one request as Slack sends it: an Events API
envelope (``raw``), an interactivity payload (``interactive``) or slash-command fields
(``command``), with what Slack expects back (``expect``). They are signed and POSTed in file
order to the real Bolt app on waitress (the real signature check), so together they tell a
story: posts, replies, votes, an edit, filings by button, shortcut, emoji and /idea, deletions.
Then the whole corpus is delivered again, as Slack's retries would.

Every request must get Slack's expected answer; nothing may be logged as an error (a listener
that raised, a 500); nothing the bot posts may notify a channel; and the story must have
happened (four tickets, each once; deleted posts purged).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.slack.mrkdwn import has_broadcast
from tests.fakes.slack_server import RESPONSE_URL
from tests.fakes.slack_signing import interactive_body, signed_request
from tests.fakes.wiring import SECRET, Rig

CORPUS = Path(__file__).parent.parent / "fixtures" / "slack"
C = "CIDEAS01"
P1, P2, B1, F1 = "1700000100.000100", "1700000105.000100", "1700000120.000100", "1700000130.000100"
SAID = ("chat.postMessage", "chat.update", "chat.postEphemeral", RESPONSE_URL)


def _fixtures() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


def _load(path: Path, rig: Rig) -> dict[str, Any]:
    raw = path.read_text(encoding="utf-8").replace("{response_url}", rig.slack.response_url())
    case: dict[str, Any] = json.loads(raw)
    return case


def _send(rig: Rig, case: dict[str, Any]) -> tuple[int, bytes]:
    from urllib.parse import urlencode

    kind, body = case["kind"], case["body"]
    if kind == "raw":
        text = json.dumps(body)
        return rig.send(text, signed_request(SECRET, text))
    form = interactive_body(body) if kind == "interactive" else urlencode(body)
    return rig.send(
        form, signed_request(SECRET, form, content_type="application/x-www-form-urlencoded")
    )


def _texts(value: Any) -> Iterator[str]:
    """Every string a call would show (texts and blocks, at any depth)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from _texts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _texts(v)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def test_the_corpus_covers_what_slack_sends() -> None:
    names = " ".join(p.stem for p in _fixtures())
    for shape in (
        "url_verification",
        "event_message_thread_broadcast",
        "event_message_file_share",
        "event_message_bot_message",
        "event_message_channel_join",
        "event_message_me_message",
        "event_message_changed",
        "event_message_deleted",
        "event_reaction_added_message",
        "event_reaction_added_file",
        "event_reaction_removed_message",
        "event_reaction_removed_file",
        "event_app_mention",
        "event_app_home_opened",
        "interactive_block_actions",
        "interactive_message_action",
        "interactive_view_submission",
        "interactive_message_legacy",
        "command_idea",
    ):
        assert shape in names, shape


def test_replaying_the_corpus_answers_as_slack_expects(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    for round_ in ("first delivery", "redelivery"):
        for path in _fixtures():
            case = _load(path, rig)
            status, body = _send(rig, case)
            rig.wait_idle()
            expect = case["expect"]
            where = f"{path.name} ({round_})"
            assert status == expect["status"], f"{where}: {status} {body[:200]!r}"
            if "body_contains" in expect:
                assert expect["body_contains"] in body.decode(), where
            errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert errors == [], f"{where}: {[r.getMessage()[:300] for r in errors]}"
            unhandled = [r for r in caplog.records if "nhandled request" in r.getMessage()]
            assert unhandled == [], where

    said = [(m, call) for m, call in rig.slack.calls if m in SAID]
    assert said, "the corpus made the bot say nothing"
    for method, call in said:
        loud = [t for t in _texts(call) if has_broadcast(t)]
        assert loud == [], f"{method} would notify a channel: {loud}"

    # What the story should have left behind, once, despite every request arriving twice.
    summaries = sorted(i["fields"]["summary"] for i in rig.jira.issues.values())
    assert len(summaries) == 4, summaries
    assert "Add dark mode to the dashboard, with a schedule" in summaries  # edited, then filed
    descriptions = json.dumps([i["fields"]["description"] for i in rig.jira.issues.values()])
    assert "export the report as CSV, daily" in descriptions  # the shortcut's edited text
    for ts in (P1, P2):  # deleted: words purged, rows kept
        post = rig.store.get_post(C, ts)
        assert post is not None and post.deleted and post.text == "" and post.title is None
    broadcast = rig.store.get_post(C, B1)
    assert broadcast is not None and broadcast.kind is not None  # a broadcast reply is a post
    filed_file = rig.store.get_filing(C, F1)
    assert filed_file is not None and filed_file.state == "filed"


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        ("null", "application/json"),
        ("[]", "application/json"),
        ("payload=null", "application/x-www-form-urlencoded"),
        ('{"type": "event_callback", "authorizations": true}', "application/json"),
    ],
)
def test_a_body_bolt_cannot_parse_is_refused_without_a_500(
    rig: Rig, body: str, content_type: str
) -> None:
    from tests.fakes.slack_signing import post

    status, _ = post(rig.url, body, {"Content-Type": content_type})  # unsigned, as anyone can
    assert 400 <= status < 500
