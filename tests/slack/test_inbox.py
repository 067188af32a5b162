"""How a Slack delivery becomes an inbox event: its id, its pool, its envelope."""

from __future__ import annotations

from typing import Any

import pytest

from bot.slack.inbox import MAX_ID, envelope, event_id_of, event_type, pool_of


def callback(event_type_: str, event_id: str = "Ev1") -> dict[str, Any]:
    return {"type": "event_callback", "event_id": event_id, "event": {"type": event_type_}}


COMMAND = {"command": "/idea", "text": "x", "trigger_id": "42.1", "user_id": "U1"}
BUTTON = {"type": "block_actions", "trigger_id": "43.1", "actions": [{"action_id": "a"}]}


@pytest.mark.parametrize(
    ("body", "kind", "pool"),
    [
        (callback("message"), "event:message", "triage"),
        (callback("reaction_added"), "event:reaction_added", "filing"),
        (BUTTON, "block_actions", "filing"),
        ({"type": "message_action", "trigger_id": "1"}, "message_action", "filing"),
        (COMMAND, "slash_command", "filing"),
    ],
)
def test_kind_and_pool(body: dict[str, Any], kind: str, pool: str) -> None:
    assert event_type(body) == kind
    assert pool_of(body) == pool


def test_ids_are_stable_per_delivery_and_distinct_between_deliveries() -> None:
    assert event_id_of(callback("message", "Ev9")) == "Ev9"
    assert event_id_of(COMMAND) == "slash_command:42.1"
    assert event_id_of(BUTTON) == "block_actions:43.1"
    assert event_id_of({**BUTTON, "trigger_id": "44.1"}) != event_id_of(BUTTON)
    bare = {"type": "view_closed", "view": {"id": "V1"}}
    assert event_id_of(bare) == event_id_of(dict(reversed(list(bare.items()))))
    assert event_id_of(bare).startswith("view_closed:")
    assert event_id_of({**bare, "view": {"id": "V2"}}) != event_id_of(bare)
    long = event_id_of({"type": "block_actions", "trigger_id": "x" * 500})
    assert len(long) <= MAX_ID


def test_envelope_carries_the_body_and_who_recorded_it() -> None:
    body = callback("message")
    env = envelope(body, "Ev1", "host:1:abc", "2025-03-03T09:00:00+00:00")
    meta = env["metadata"]
    assert env["data"] is body
    assert meta["version"] == 1 and meta["event_id"] == "Ev1" and meta["type"] == "event:message"
    assert meta["published_by"] == "host:1:abc"
    assert meta["published_at"] == "2025-03-03T09:00:00+00:00"
    assert len(meta["trace_id"]) == 32
    assert envelope(body, "Ev1", "x", "t")["metadata"]["trace_id"] != meta["trace_id"]


def test_deliveries_about_one_message_share_its_trace_id() -> None:
    from bot.slack.inbox import message_trace, where

    post = {"type": "event_callback", "event": {"type": "message", "channel": "C1", "ts": "1.2"}}
    reaction = {
        "type": "event_callback",
        "event": {"type": "reaction_added", "item": {"channel": "C1", "ts": "1.2"}},
    }
    assert where(post) == where(reaction) == ("C1", "1.2")
    assert message_trace("C1", "1.2") == message_trace(*where(reaction))
    assert len(message_trace("C1", "1.2")) == 32
    assert message_trace("C1", "1.3") != message_trace("C1", "1.2")
    assert message_trace(None, None) != message_trace(None, None)  # fresh when about nothing
