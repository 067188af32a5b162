"""Votes end to end: five people 👍 a post; the triage reply, the takeaway digest and the filed
Jira issue all say 5. Real Bolt, WebClient and `jira` client against the fakes (``Rig``)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.slack import digest_blocks
from tests.fakes.wiring import Rig

C = "CIDEAS01"
VOTERS = ("UV1", "UV2", "UV3", "UV4", "UV5")


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def _reply_votes(rig: Rig, ts: str) -> str:
    post = rig.store.get_post(C, ts)
    assert post is not None and post.reply_ts
    updates = [u for u in rig.slack.calls_to("chat.update") if u["ts"] == post.reply_ts]
    shown = [
        e["text"]
        for b in updates[-1]["blocks"]
        if b["type"] == "context"
        for e in b["elements"]
        if e["text"].startswith("👍")
    ]
    return shown[0] if shown else ""


def _description(rig: Rig, key: str) -> str:
    return str(rig.jira.issues[key]["fields"]["description"])


def _post_and_file(rig: Rig) -> tuple[str, str]:
    ev = rig.message("Add dark mode to the dashboard")
    rig.send_event(ev)
    rig.wait_idle()
    rig.send_event(rig.reaction(C, ev["ts"], user="UBOB"))  # the file emoji: not a vote
    rig.wait_idle()
    (key,) = rig.jira.issues
    return ev["ts"], key


def test_five_people_vote_and_the_reply_the_digest_and_the_issue_say_5(rig: Rig) -> None:
    ts, key = _post_and_file(rig)
    barrier = threading.Barrier(len(VOTERS))

    def vote(user: str) -> None:
        barrier.wait()
        rig.send_event(rig.reaction(C, ts, user=user, name="+1"))

    threads = [threading.Thread(target=vote, args=(u,)) for u in VOTERS]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rig.send_event(rig.reaction(C, ts, user="UV1", name="thumbsup::skin-tone-3"))  # once
    rig.send_event(rig.message("Yes please", user="UV2", thread_ts=ts))  # voted already
    rig.wait_idle()

    post = rig.store.get_post(C, ts)
    assert post is not None and post.votes == 5
    assert _reply_votes(rig, ts) == "👍 5"
    assert "Votes in Slack: *5*" in _description(rig, key)
    assert "Add dark mode to the dashboard" in _description(rig, key)  # the rest is kept
    digest = rig.bot.digests.build_takeaways(post.created.date(), C)
    assert [(i.ts, i.votes) for i in digest.most_wanted] == [(ts, 5)]
    text = digest_blocks.takeaway_text(digest)
    assert "Most wanted" in text and "5 votes" in text

    # A vote taken back: 4 everywhere, the description's line replaced, not added.
    rig.send_event({**rig.reaction(C, ts, user="UV5", name="+1"), "type": "reaction_removed"})
    rig.wait_idle()
    assert _reply_votes(rig, ts) == "👍 4"
    assert _description(rig, key).count("Votes in Slack:") == 1
    assert "Votes in Slack: *4*" in _description(rig, key)
    reply = [u for u in rig.slack.calls_to("chat.update")][-1]
    assert key in str(reply["blocks"])  # the reply still names the ticket


def test_votes_before_filing_reach_the_issue_with_the_next_sync(rig: Rig) -> None:
    ev = rig.message("Add an export to CSV")
    rig.send_event(ev)
    rig.wait_idle()
    for user in ("UV1", "UV2"):
        rig.send_event(rig.reaction(C, ev["ts"], user=user, name="+1"))
    rig.wait_idle()
    assert _reply_votes(rig, ev["ts"]) == "👍 2"
    rig.send_event(rig.reaction(C, ev["ts"], user="UBOB"))
    rig.wait_idle()
    (key,) = rig.jira.issues
    assert rig.bot.sync is not None
    rig.bot.sync.sync()
    assert "Votes in Slack: *2*" in _description(rig, key)
    writes = rig.jira.requests_to("/issue/", "PUT")
    rig.bot.sync.sync()  # nothing new: nothing written
    assert rig.jira.requests_to("/issue/", "PUT") == writes


def test_votes_in_jira_can_be_switched_off(tmp_path: Path) -> None:
    rig = Rig(tmp_path, votes_in_jira=False)
    try:
        ts, key = _post_and_file(rig)
        rig.send_event(rig.reaction(C, ts, user="UV1", name="+1"))
        rig.wait_idle()
        assert _reply_votes(rig, ts) == "👍 1"
        assert "Votes in Slack" not in _description(rig, key)
        assert rig.jira.requests_to("/issue/", "PUT") == []
    finally:
        rig.close()
