"""ConnectSafeNotifier: in Slack Connect channels nothing internal is posted; members get it
ephemerally; other channels are answered as usual."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from bot.domain.filing import FilingJob, FilingResult
from bot.domain.models import Match, MessageRef, Person, Triage
from bot.domain.ports import StoredPost
from bot.slack.notifier_connect import FOR_MEMBERS, ConnectSafeNotifier
from tests.fakes.chat import RecordingChat

MATCH = Match(key="PROJ-7", title="Internal title", score=0.9, url="https://jira/browse/PROJ-7")
FILED = FilingResult("already", key="PROJ-9", url="https://jira/browse/PROJ-9")


def _rig() -> tuple[RecordingChat, ConnectSafeNotifier]:
    chat = RecordingChat(shared={"CSHARED"})
    chat.people = {"UMEMBER": Person(external=False), "UGUEST": Person(external=True)}
    return chat, ConnectSafeNotifier(chat, "ticket", "white_check_mark")


def _post(channel: str, user: str) -> StoredPost:
    return StoredPost(
        channel=channel, ts="1.1", user=user, text="t", created=datetime.now(UTC), reply_ts="1.2"
    )


def _public(chat: RecordingChat) -> str:
    return json.dumps([chat.posts, chat.updates], default=str)


def test_nothing_internal_is_posted_in_a_shared_channel() -> None:
    chat, n = _rig()
    triage = Triage(
        kind="idea",
        title="t",
        summary="s",
        confidence=0.9,
        analyzer="x",
        similar=(MATCH,),
        likely_duplicate=True,
    )
    for user in ("UMEMBER", "UGUEST"):
        post = _post("CSHARED", user)
        n.triage_reply(post, triage)
        n.update_triage_reply(post, triage, FILED)
        n.edited_after_filing(post, FILED, True)
        n.post_deleted(post, FILED)
        job = FilingJob(channel="CSHARED", ts="1.1", reply_ts="1.1", requester=user, text="t")
        n.filing_outcome(job, FilingResult("filed", key="PROJ-9", url="https://jira/x"))
        n.duplicate_offer(job, MATCH)
        n.to_requester(MessageRef(channel="CSHARED", ts="1.1"), user, None, FILED)
    public = _public(chat)
    assert "PROJ-" not in public and "Internal title" not in public and "jira/" not in public
    guest = json.dumps([e for e in chat.ephemerals if e["user"] == "UGUEST"])
    assert "PROJ-" not in guest and FOR_MEMBERS in guest
    member = json.dumps([e for e in chat.ephemerals if e["user"] == "UMEMBER"])
    assert "PROJ-7" in member and "PROJ-9" in member
    assert ("CSHARED", "1.1", "white_check_mark") in chat.reactions


def test_unknown_people_count_as_guests() -> None:
    chat, n = _rig()
    n.to_requester(MessageRef(channel="CSHARED", ts="1.1"), "UNOBODY", None, FILED)
    assert "PROJ-" not in json.dumps(chat.ephemerals)


def test_other_channels_are_answered_as_usual() -> None:
    chat, n = _rig()
    triage = Triage(
        kind="idea", title="t", summary="s", confidence=0.9, analyzer="x", similar=(MATCH,)
    )
    n.triage_reply(_post("CPLAIN", "UGUEST"), triage)
    job = FilingJob(channel="CPLAIN", ts="1.1", reply_ts="1.1", requester="UGUEST", text="t")
    n.filing_outcome(job, FilingResult("filed", key="PROJ-9", url="https://jira/x"))
    public = _public(chat)
    assert "PROJ-7" in public and "PROJ-9" in public and chat.ephemerals == []


def test_the_ideas_of_a_notes_post_keep_their_similar_tickets_to_members() -> None:
    from bot.domain.models import Idea

    chat, n = _rig()
    ideas = (Idea(title="one idea", similar=(MATCH,)), Idea(title="another idea"))
    triage = Triage(kind="idea", title="t", summary="s", confidence=0.9, analyzer="x", ideas=ideas)
    n.triage_reply(_post("CSHARED", "UMEMBER"), triage)
    assert "PROJ-7" not in _public(chat) and "one idea" in _public(chat)
    # The full reply, similar tickets and all, goes to the member who posted, and to no one else.
    assert [e["user"] for e in chat.ephemerals] == ["UMEMBER"]
