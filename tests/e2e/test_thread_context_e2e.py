"""End to end: the thread under a post is part of what gets filed, and later replies reach the
issue once (issue 11, part 2). Signed requests into the real Bolt app; FakeSlack and FakeJira."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain.filing import marker_label
from bot.slack import blocks
from tests.fakes.flags import SwitchedFlags
from tests.fakes.wiring import Rig

CHANNEL = "CIDEAS01"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    r.slack.add_user("UALICE", name="Alice Author")
    r.slack.add_user("UBOB", name="Bob Builder")
    r.slack.add_user("UCAROL", name="Carol Critic")
    r.slack.add_user("UDAN", name="Dan Dev")
    yield r
    r.close()


def _now_ts(offset: float = 0.0) -> str:
    # After the filing was recorded: a reply the description could not have held.
    return f"{time.time() + offset:.6f}"


def _reply(rig: Rig, root: dict[str, Any], text: str, user: str, ts: str | None = None) -> str:
    ev = rig.message(text, user=user, thread_ts=root["ts"], ts=ts)
    assert rig.send_event(ev)[0] == 200
    return str(ev["ts"])


def _filed(rig: Rig, root: dict[str, Any]) -> str:
    rig.send_event(rig.reaction(CHANNEL, root["ts"], user="UBOB"))
    rig.wait_idle()
    filing = rig.store.get_filing(CHANNEL, root["ts"])
    assert filing is not None and filing.issue_key
    return filing.issue_key


def _add_to_ticket(rig: Rig, reply_ts: str, root_ts: str, text: str, user: str) -> None:
    rig.send_interactive(
        {
            "type": "message_action",
            "callback_id": blocks.SHORTCUT_ADD_REPLY,
            "trigger_id": f"{time.monotonic_ns()}.1",
            "user": {"id": "UBOB"},
            "team": {"id": "T1"},
            "channel": {"id": CHANNEL},
            "message_ts": reply_ts,
            "response_url": "http://127.0.0.1:9/x",
            "message": {"ts": reply_ts, "text": text, "user": user, "thread_ts": root_ts},
        }
    )
    rig.wait_idle()


def test_filing_puts_the_threads_replies_in_the_description(rig: Rig) -> None:
    root = rig.message("Add dark mode to the dashboard")
    rig.send_event(root)
    rig.wait_idle()
    _reply(rig, root, "Yes please, <!channel> look: my eyes hurt at night", "UCAROL")
    _reply(rig, root, "Agree with <@UCAROL>, and [~admin] {code}x{code} too", "UDAN")
    _reply(rig, root, "Third: it should follow the OS setting", "UCAROL")
    rig.wait_idle()
    key = _filed(rig, root)
    issue = rig.jira.issues[key]["fields"]
    assert issue["summary"] == "Add dark mode to the dashboard"  # the post's, not a reply's
    description = issue["description"]
    thread = description[description.index("h3. Thread") : description.index("Slack thread:")]
    lines = [line for line in thread.splitlines()[1:] if line.strip()]
    # The three replies and nothing else: the bot's own triage reply is no part of it.
    assert len(lines) == 3
    # In order, each by display name, before the footer.
    assert lines[0].startswith("*Carol Critic*: Yes please")
    assert lines[1].startswith("*Dan Dev*: Agree with Carol Critic")
    assert lines[2].startswith("*Carol Critic*: Third: it should follow the OS setting")
    # Mentions neutralised and Jira markup escaped: nobody is notified anywhere.
    assert "<!channel>" not in description and "<@UCAROL>" not in description
    assert "\\[\\~admin\\]" in description and "\\{code\\}" in description


def test_a_long_thread_is_capped_with_and_n_more(tmp_path: Path) -> None:
    r = Rig(tmp_path, thread_context_replies=3)
    try:
        root = r.message("Add an export to CSV button")
        r.send_event(root)
        r.wait_idle()
        for n in range(5):
            _reply(r, root, f"reply number {n}", "UCAROL")
        r.wait_idle()
        key = _filed(r, root)
        description = r.jira.issues[key]["fields"]["description"]
        assert "reply number 2" in description and "reply number 3" not in description
        assert "and 2 more in Slack" in description
    finally:
        r.close()


def test_add_to_ticket_adds_a_later_reply_once(rig: Rig) -> None:
    root = rig.message("Add dark mode to the dashboard")
    rig.send_event(root)
    rig.wait_idle()
    key = _filed(rig, root)
    later = _reply(rig, root, "Also: schedule it by sunset", "UCAROL", ts=_now_ts(1))
    rig.wait_idle()
    assert rig.jira.comments(key) == []  # the flag is off by default: nothing by itself
    _add_to_ticket(rig, later, root["ts"], "Also: schedule it by sunset", "UCAROL")
    _add_to_ticket(rig, later, root["ts"], "Also: schedule it by sunset", "UCAROL")
    comments = rig.jira.comments(key)
    assert len(comments) == 1
    body = json.dumps(comments[0]["body"])
    assert "schedule it by sunset" in body and "Carol Critic" in body
    secret = rig.store.marker_secret()
    assert marker_label(CHANNEL, later, secret) in body  # found again after a lost answer
    filing = rig.store.get_filing(CHANNEL, later)
    assert filing is not None and (filing.state, filing.issue_key) == ("commented", key)
    # The reply is marked; the second request was told, to that person only.
    assert (CHANNEL, later) in {
        (p["channel"], p["timestamp"]) for p in rig.slack.calls_to("reactions.add")
    }
    told = [e["text"] for e in rig.slack.calls_to("chat.postEphemeral")]
    assert any(f"That reply is on {key} already" in t for t in told)
    # No "Added ... as a comment" message after the reply in the thread.
    assert not any(
        "as a comment" in str(p.get("text")) for p in rig.slack.calls_to("chat.postMessage")
    )


def test_add_to_ticket_refuses_what_cannot_be_added(rig: Rig) -> None:
    root = rig.message("Add dark mode to the dashboard")
    rig.send_event(root)
    rig.wait_idle()
    early = _reply(rig, root, "early reply", "UCAROL")
    rig.wait_idle()
    # Not filed yet: nothing to add to.
    _add_to_ticket(rig, early, root["ts"], "early reply", "UCAROL")
    key = _filed(rig, root)
    # Was in the thread when filed: it is in the description already.
    _add_to_ticket(rig, early, root["ts"], "early reply", "UCAROL")
    assert rig.jira.comments(key) == []
    told = [e["text"] for e in rig.slack.calls_to("chat.postEphemeral")]
    assert any("not filed yet" in t for t in told)
    assert any("in its description" in t for t in told)


def test_the_thread_comments_flag_adds_each_later_reply_once(tmp_path: Path) -> None:
    r = Rig(tmp_path, flags=SwitchedFlags())  # every flag on, thread-comments included
    try:
        root = r.message("Add dark mode to the dashboard")
        r.send_event(root)
        r.wait_idle()
        key = _filed(r, root)
        later = r.message(
            "Sunset schedule please", user="UCAROL", thread_ts=root["ts"], ts=_now_ts(1)
        )
        r.send_event(later, event_id="EvLATER1")
        r.send_event(later, event_id="EvLATER2")  # the same reply delivered twice
        r.wait_idle()
        r.worker.run_once(r.clock.advance(1))
        r.worker.run_once(r.clock.advance(60))
        # And someone also uses the shortcut on it.
        _add_to_ticket(r, later["ts"], root["ts"], "Sunset schedule please", "UCAROL")
        comments = r.jira.comments(key)
        assert len(comments) == 1 and "Sunset schedule please" in json.dumps(comments)
        # A reply in a thread whose post is not filed goes nowhere.
        other = r.message("Unfiled idea about exports")
        r.send_event(other)
        r.wait_idle()
        r.send_event(r.message("a reply", user="UCAROL", thread_ts=other["ts"], ts=_now_ts(2)))
        r.wait_idle()
        r.worker.run_once(r.clock.advance(60))
        assert len(r.jira.issues) == 1
    finally:
        r.close()
