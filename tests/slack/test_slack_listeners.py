"""Each listener: a Bolt request in, the use-case call it makes (and what that said) out."""

from __future__ import annotations

import json
from typing import Any

from bot.domain.models import Match
from bot.slack import blocks
from bot.slack.listeners.commands import USAGE
from tests.slack.conftest import C, ListenerRig

P1 = "1700000100.000100"


def _changed(text: str, **message: Any) -> dict[str, Any]:
    msg = {"type": "message", "user": "UALICE", "text": text, "ts": P1}
    msg.update(message)
    return {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": C,
        "ts": "1700000400.000100",
        "event_ts": "1700000400.000100",
        "message": msg,
        "previous_message": {
            "type": "message",
            "user": "UALICE",
            "text": "Add dark mode",
            "ts": P1,
        },
    }


def _posted(lr: ListenerRig, text: str = "Add dark mode") -> None:
    assert lr.event(lr.message(text), event_id="EvPost")[0] == 200
    assert lr.said() == ["triage_reply"]
    lr.notes.said.clear()


def test_a_post_is_received_and_answered(lr: ListenerRig) -> None:
    _posted(lr)
    stored = lr.store.get_post(C, P1)
    assert stored is not None and stored.kind == "idea" and stored.reply_ts


def test_a_broadcast_reply_is_received_as_a_post(lr: ListenerRig) -> None:
    ev = lr.message("Add dark mode", subtype="thread_broadcast", thread_ts="1600000000.000001")
    assert lr.event(ev)[0] == 200
    assert lr.said() == ["triage_reply"]


def test_a_reply_counts_on_its_post_and_is_not_answered(lr: ListenerRig) -> None:
    _posted(lr)
    lr.event(lr.message("+1 from me", ts="1700000110.000100", user="UBOB", thread_ts=P1), "Ev2")
    assert lr.said() == ["update_triage_reply"]  # not answered; its vote is shown
    assert (p := lr.store.get_post(C, P1)) is not None and p.replies == 1


def test_an_edit_reaches_the_edit_use_case(lr: ListenerRig) -> None:
    _posted(lr)
    assert lr.event(_changed("Add dark mode and light mode"), "Ev2")[0] == 200
    assert lr.said() == ["update_triage_reply"]
    assert (p := lr.store.get_post(C, P1)) is not None and p.text == "Add dark mode and light mode"


def test_the_bots_own_updated_message_is_not_an_edit(lr: ListenerRig) -> None:
    _posted(lr)
    lr.event(_changed("Idea: Add dark mode", user="UBOT", bot_id="BBOT"), "Ev2")
    lr.event(_changed("Idea: Add dark mode", user="UBOT"), "Ev3")
    assert lr.said() == []


def test_deletion_and_tombstone_reach_the_delete_use_case(lr: ListenerRig) -> None:
    _posted(lr)
    tombstone = _changed("This message was deleted.", subtype="tombstone", user="USLACKBOT")
    assert lr.event(tombstone, "Ev2")[0] == 200
    assert lr.said() == ["post_deleted"]
    deleted = {
        "type": "message",
        "subtype": "message_deleted",
        "hidden": True,
        "channel": C,
        "ts": "1700000500.000100",
        "deleted_ts": P1,
        "previous_message": {"type": "message", "user": "UALICE", "text": "x", "ts": P1},
    }
    assert lr.event(deleted, "Ev3")[0] == 200
    assert lr.said() == ["post_deleted"]  # already gone: said once
    assert (p := lr.store.get_post(C, P1)) is not None and p.deleted


def test_reactions_count_and_the_file_emoji_files(lr: ListenerRig) -> None:
    _posted(lr)
    lr.event(lr.reaction(), "Ev2")
    assert lr.said() == ["update_triage_reply"]
    lr.event(lr.reaction(name="ticket", user="UCAROL"), "Ev3")
    assert len(lr.tracker.created) == 1
    lr.event(lr.reaction("reaction_removed", name="+1"), "Ev4")
    assert (p := lr.store.get_post(C, P1)) is not None and p.reactions == 1  # Carol's ticket


def test_reactions_on_files_are_ignored(lr: ListenerRig) -> None:
    _posted(lr)
    for kind in ("reaction_added", "reaction_removed"):
        ev = lr.reaction(kind, name="ticket")
        ev["item"] = {"type": "file", "file": "F1"}
        assert lr.event(ev, f"Ev{kind}")[0] == 200
    assert lr.said() == [] and lr.tracker.created == []


def test_the_shortcut_files_the_text_it_carries(lr: ListenerRig) -> None:
    _posted(lr)
    status, _ = lr.interactive(
        {
            "type": "message_action",
            "callback_id": blocks.SHORTCUT_FILE,
            "trigger_id": "1.2",
            "user": {"id": "UBOB"},
            "team": {"id": "T1"},
            "channel": {"id": C},
            "message_ts": P1,
            "message": {"ts": P1, "text": "Add dark mode now", "user": "UALICE"},
        }
    )
    assert status == 200
    assert lr.tracker.created[0].body.original == "Add dark mode now"


def test_the_comment_button_without_a_key_comments_on_the_offered_match(lr: ListenerRig) -> None:
    lr.index.match = Match(key="PROJ-9", title="x", score=0.97, signals={"body": 0.9, "title": 0.9})
    _posted(lr)
    payload = {
        "type": "block_actions",
        "user": {"id": "UBOB"},
        "team": {"id": "T1"},
        "channel": {"id": C},
        "container": {"type": "message"},
        "actions": [
            {
                "action_id": blocks.ACTION_COMMENT,
                "block_id": "b",
                "type": "button",
                "value": json.dumps({"c": C, "ts": P1}),
            }
        ],
    }
    assert lr.interactive(payload)[0] == 200
    assert [c.key for c in lr.tracker.comments] == ["PROJ-9"] and lr.tracker.created == []


def test_idea_help_is_answered_in_the_ack(lr: ListenerRig) -> None:
    fields = {"command": "/idea", "text": "help", "user_id": "UALICE", "channel_id": C}
    status, body = lr.command({**fields, "team_id": "T1"})
    assert status == 200 and json.loads(body) == {"text": USAGE, "response_type": "ephemeral"}
    assert lr.said() == []


def test_idea_posts_and_files(lr: ListenerRig) -> None:
    fields = {"command": "/idea", "text": "Add SSO", "user_id": "UALICE", "channel_id": C}
    assert lr.command({**fields, "team_id": "T1"})[0] == 200
    assert lr.said()[0] == "idea_posted" and len(lr.tracker.created) == 1


def test_what_no_listener_takes_is_acknowledged(lr: ListenerRig) -> None:
    assert lr.event({"type": "app_mention", "user": "UALICE", "text": "hi", "channel": C})[0] == 200
    assert lr.event({"type": "app_home_opened", "user": "UALICE", "tab": "home"})[0] == 200
    view = {"id": "V1", "callback_id": "some_modal", "type": "modal"}
    for payload in (
        {"type": "view_submission", "view": view},
        {"type": "view_closed", "view": view},
        {"type": "shortcut", "callback_id": "global"},
        {"type": "message_action", "callback_id": "other", "channel": {"id": C}},
        {"type": "block_actions", "actions": [{"action_id": "legacy", "type": "button"}]},
        {"type": "interactive_message", "callback_id": "x", "actions": [{"name": "n"}]},
    ):
        payload.update({"user": {"id": "UBOB"}, "team": {"id": "T1"}})
        assert lr.interactive(payload)[0] == 200, payload["type"]
    assert lr.said() == []


def test_payloads_bolt_cannot_match_are_acknowledged_not_failed(lr: ListenerRig) -> None:
    for payload in (
        {"type": "interactive_message", "callback_id": "legacy"},  # Bolt: KeyError 'actions'
        {"type": "interactive_message", "callback_id": "legacy", "actions": []},  # IndexError
        {"type": "block_actions", "actions": []},
        {"type": "block_actions", "actions": [{"type": "button"}]},  # no action_id
        {"type": "block_actions", "actions": {"action_id": "x"}},
        {"type": "view_submission", "view": {"callback_id": 7}},
        {"type": "message_action", "callback_id": ["x"]},
    ):
        payload.update({"user": {"id": "UBOB"}, "team": {"id": "T1"}})
        assert lr.interactive(payload)[0] == 200, payload
    assert lr.said() == []
