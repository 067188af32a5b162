"""Notes with many ideas, end to end: a long post gets one reply listing its ideas, each filed
once by its own button (signed block_actions into the real Bolt app, FakeSlack, FakeJira)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.domain.filing import marker_label
from bot.domain.notes import idea_ts
from bot.slack import blocks
from tests.fakes.flags import SwitchedFlags
from tests.fakes.wiring import Rig

RETRO = """Sprint 42 retro :rewind:

*What went well*
• Shipped the new billing page on time :tada:
• Pairing on the migration worked really well

*What didn't go well*
• The staging environment was down for two days and nobody noticed until Wednesday
• Release notes were written at the last minute again

*What we'll try*
• Add an uptime alert for staging that posts in #team-platform
• Let's block Thursday afternoons as no-meeting time
• Generate release notes from the PR titles instead of writing them by hand"""


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def _idea_buttons(reply: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        b["accessory"]
        for b in reply.get("blocks") or []
        if b.get("accessory", {}).get("action_id") == blocks.ACTION_FILE_IDEA
    ]


def _press(rig: Rig, button: dict[str, Any], user: str = "UBOB") -> None:
    status, _ = rig.send_interactive(
        rig.button(blocks.ACTION_FILE_IDEA, json.loads(button["value"]), user=user)
    )
    assert status == 200


def _notes_reply(rig: Rig, ts: str) -> dict[str, Any]:
    replies = rig.slack.thread_replies("CIDEAS01", ts)
    assert len(replies) == 1
    return replies[0]


def test_notes_post_gets_one_reply_and_each_idea_files_once(rig: Rig) -> None:
    ev = rig.message(RETRO)
    assert rig.send_event(ev)[0] == 200
    rig.wait_idle()
    reply = _notes_reply(rig, ev["ts"])
    buttons = _idea_buttons(reply)
    assert len(buttons) == 3
    assert len(reply["blocks"]) <= blocks.MAX_BLOCKS
    assert all(len(json.dumps(b)) < 3500 for b in reply["blocks"])
    text = json.dumps(reply["blocks"])
    assert "Add an uptime alert for staging" in text
    assert "Block Thursday afternoons as no-meeting time" in text
    assert "Generate release notes from the PR titles" in text
    assert "Shipped the new billing page" not in text  # news, not an idea

    # The same idea's button pressed twice (two people) files one issue.
    _press(rig, buttons[0], user="UBOB")
    _press(rig, buttons[0], user="UCAROL")
    rig.wait_idle()
    assert len(rig.jira.issues) == 1
    first = next(iter(rig.jira.issues.values()))
    assert first["fields"]["summary"] == "Add an uptime alert for staging"
    # The presses may run at once: one files, the other is told (in progress, or already).
    assert len(rig.slack.calls_to("chat.postEphemeral")) == 1
    _press(rig, buttons[0], user="UDAN")
    rig.wait_idle()
    assert len(rig.jira.issues) == 1
    eph = rig.slack.calls_to("chat.postEphemeral")
    assert eph[-1]["user"] == "UDAN" and "Already filed" in str(eph[-1]["text"])

    # A different idea files a second issue, carrying its own marker.
    _press(rig, buttons[1])
    rig.wait_idle()
    assert len(rig.jira.issues) == 2
    summaries = {i["fields"]["summary"] for i in rig.jira.issues.values()}
    assert "Block Thursday afternoons as no-meeting time" in summaries
    secret = rig.store.marker_secret()
    labels = [set(i["fields"]["labels"]) for i in rig.jira.issues.values()]
    assert any(marker_label("CIDEAS01", idea_ts(ev["ts"], 1), secret) in ls for ls in labels)
    assert not any(marker_label("CIDEAS01", ev["ts"], secret) in ls for ls in labels)

    # Each filing is told in the thread, naming its idea; the post gets the filed emoji.
    told = [str(r.get("text")) for r in rig.slack.thread_replies("CIDEAS01", ev["ts"])[1:]]
    assert any(t.startswith("Idea 1 (") and "Filed as" in t for t in told)
    assert any(t.startswith("Idea 2 (") and "Filed as" in t for t in told)
    reacted = rig.slack.calls_to("reactions.add")
    assert reacted and all(r["timestamp"] == ev["ts"] for r in reacted)


def test_a_reaction_on_notes_files_nothing_and_asks_to_pick(rig: Rig) -> None:
    ev = rig.message(RETRO)
    rig.send_event(ev)
    rig.wait_idle()
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"], user="UCAROL"))
    rig.wait_idle()
    assert rig.jira.issues == {}
    eph = rig.slack.calls_to("chat.postEphemeral")
    assert eph and eph[-1]["user"] == "UCAROL" and "3 ideas" in str(eph[-1]["text"])


def test_short_posts_are_answered_as_before(rig: Rig) -> None:
    ev = rig.message(
        "Let's add dark mode to the dashboard. We could also ship a high-contrast theme."
    )
    rig.send_event(ev)
    rig.wait_idle()
    reply = _notes_reply(rig, ev["ts"])
    assert not _idea_buttons(reply)
    actions = [b for b in reply["blocks"] if b["type"] == "actions"]
    assert actions[0]["elements"][0]["action_id"] == blocks.ACTION_FILE
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"]))
    rig.wait_idle()
    assert len(rig.jira.issues) == 1


def test_flag_off_answers_notes_as_one_post(tmp_path: Path) -> None:
    rig = Rig(tmp_path, flags=SwitchedFlags(off={("notes-ideas", None)}))
    try:
        ev = rig.message(RETRO)
        rig.send_event(ev)
        rig.wait_idle()
        reply = _notes_reply(rig, ev["ts"])
        assert not _idea_buttons(reply)
    finally:
        rig.close()


def test_idea_button_for_a_missing_idea_or_post_files_nothing(rig: Rig) -> None:
    ev = rig.message(RETRO)
    rig.send_event(ev)
    rig.wait_idle()
    for value in (
        {"c": "CIDEAS01", "ts": ev["ts"], "i": "7"},
        {"c": "CIDEAS01", "ts": "1700000999.000100", "i": "0"},
        {"c": "CIDEAS01", "ts": ev["ts"], "i": "x"},
    ):
        assert rig.send_interactive(rig.button(blocks.ACTION_FILE_IDEA, value))[0] == 200
    rig.wait_idle()
    assert rig.jira.issues == {}
    assert len(rig.slack.calls_to("chat.postEphemeral")) == 2


def _edit(ts: str, text: str) -> dict[str, Any]:
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": "CIDEAS01",
        "channel_type": "channel",
        "ts": "1700009000.000200",
        "event_ts": "1700009000.000200",
        "message": {
            "type": "message",
            "user": "UALICE",
            "text": text,
            "ts": ts,
            "edited": {"user": "UALICE", "ts": "1700009000.000000"},
        },
        "previous_message": {"type": "message", "user": "UALICE", "text": RETRO, "ts": ts},
    }


def test_an_edit_after_an_idea_was_filed_keeps_the_ideas_under_their_buttons(rig: Rig) -> None:
    ev = rig.message(RETRO)
    rig.send_event(ev)
    rig.wait_idle()
    buttons = _idea_buttons(_notes_reply(rig, ev["ts"]))
    _press(rig, buttons[1])
    rig.wait_idle()
    assert len(rig.jira.issues) == 1
    edited = RETRO.replace("*What we'll try*", "*What we'll try*\n• Add a flaky-test dashboard")
    rig.send_event(_edit(ev["ts"], edited))
    rig.wait_idle()
    assert rig.slack.calls_to("chat.update") == []  # the list and its numbering stay
    # The idea pressed before still names the same issue; the next one files anew.
    _press(rig, buttons[1], user="UDAN")
    _press(rig, buttons[2])
    rig.wait_idle()
    summaries = sorted(i["fields"]["summary"] for i in rig.jira.issues.values())
    assert summaries == [
        "Block Thursday afternoons as no-meeting time",
        "Generate release notes from the PR titles instead of writing them by hand",
    ]
