"""One triage reply per post, even when the worker that posted it died before recording it.

The real Bolt app, WebClient and inbox against FakeSlack: the reply carries the post in its
message metadata, and a later worker on the same post reads the thread (conversations.replies
with ``include_all_metadata``) before replying.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.domain.envelope import read
from bot.domain.events import message_key
from bot.slack.notifier import TRIAGE_REPLY_EVENT, triage_reply_key
from tests.fakes.wiring import Rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def test_the_reply_is_tagged_with_its_post(rig: Rig) -> None:
    ev = rig.message("Add dark mode to the dashboard so night shifts can read it")
    assert rig.send_event(ev)[0] == 200
    rig.wait_idle()
    (reply,) = rig.slack.thread_replies("CIDEAS01", ev["ts"])
    assert reply["metadata"]["event_type"] == TRIAGE_REPLY_EVENT
    # The bot's envelope (docs: README "Events"), whose data.key names the post.
    payload = reply["metadata"]["event_payload"]
    assert message_key(payload) == triage_reply_key("CIDEAS01", ev["ts"])
    assert read(payload).type == TRIAGE_REPLY_EVENT


def test_a_post_whose_reply_went_out_unrecorded_is_not_answered_twice(rig: Rig) -> None:
    ev = rig.message("Export the weekly report as CSV for the finance team")
    assert rig.send_event(ev, "EvFIRST")[0] == 200
    rig.wait_idle()
    (first,) = rig.slack.thread_replies("CIDEAS01", ev["ts"])
    posted = rig.store.get_post("CIDEAS01", ev["ts"])
    assert posted is not None and posted.reply_ts
    # What a worker that died right after chat.postMessage leaves: the post recorded, the reply
    # in Slack, its ts nowhere in the database. The event's next holder runs it again.
    rig.store.update_post("CIDEAS01", ev["ts"], reply_ts=None)
    assert rig.send_event(ev, "EvAGAIN")[0] == 200
    rig.wait_idle()
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1
    looked = [
        c
        for c in rig.slack.calls_to("conversations.replies")
        if c.get("ts") == ev["ts"] and str(c.get("include_all_metadata")) in ("1", "true", "True")
    ]
    assert looked
    again = rig.store.get_post("CIDEAS01", ev["ts"])
    assert again is not None and again.reply_ts == posted.reply_ts
    assert ("CIDEAS01", again.reply_ts) in rig.slack.messages
    assert message_key(first["metadata"]["event_payload"]) == f"CIDEAS01:{ev['ts']}"


def test_a_post_recorded_but_never_answered_is_answered_on_the_retry(rig: Rig) -> None:
    ev = rig.message("Single sign-on with the company directory")
    assert rig.send_event(ev, "EvFIRST")[0] == 200
    rig.wait_idle()
    # as if the first worker had died before its reply went out
    gone = [k for k, m in rig.slack.messages.items() if m.thread_ts == ev["ts"]]
    assert len(gone) == 1
    del rig.slack.messages[gone[0]]
    rig.store.update_post("CIDEAS01", ev["ts"], reply_ts=None)
    assert rig.send_event(ev, "EvAGAIN")[0] == 200
    rig.wait_idle()
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 2  # the second post call
    again = rig.store.get_post("CIDEAS01", ev["ts"])
    assert again is not None and again.reply_ts != gone[0][1]
    assert ("CIDEAS01", again.reply_ts) in rig.slack.messages
