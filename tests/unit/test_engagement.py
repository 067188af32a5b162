"""Engagement on in-memory fakes: reactions and replies counted once per person, votes shown."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.filing import FilingJob
from bot.domain.models import Analysis, MessageRef
from bot.domain.ports import StoredPost
from bot.service.engagement import RecordEngagement
from bot.service.file_message import Reaction
from bot.service.filing import Filer
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.tracker import FakeTracker

C, TS = "CIDEAS01", "1700000000.000100"
TRIAGE = Analysis(kind="idea", confidence=0.9, title="Dark mode", summary="", analyzer="t")


@pytest.fixture
def store() -> MemoryStore:
    s = MemoryStore()
    s.save_post(
        StoredPost(
            channel=C,
            ts=TS,
            user="UALICE",
            text="Add dark mode",
            created=datetime(2025, 3, 3, 9, tzinfo=UTC),
            triage_json=TRIAGE.model_dump_json(),
            reply_ts="1800000000.000001",
        )
    )
    return s


def make(store: MemoryStore) -> tuple[RecordEngagement, RecordingNotifier, Filer]:
    notes = RecordingNotifier()
    filer = Filer(store=store, tracker=FakeTracker(), project="P", issue_types={}, notifier=notes)
    return RecordEngagement(store=store, notifier=notes, filer=filer), notes, filer


def react(user: str, emoji: str = "+1", ts: str = TS, **kw: object) -> Reaction:
    return Reaction(ref=MessageRef(channel=C, ts=ts), user=user, emoji=emoji, **kw)  # type: ignore[arg-type]


def votes(notes: RecordingNotifier) -> list[int]:
    return [d["votes"] for k, d in notes.said if k == "update_triage_reply"]


def test_each_person_counts_once_and_the_reply_shows_the_votes(store: MemoryStore) -> None:
    use_case, notes, _ = make(store)
    use_case.reaction(react("UBOB"))
    use_case.reaction(react("UBOB", "tada"))  # the same person again, and not a vote emoji
    use_case.reaction(react("UBOB"))  # a redelivery
    use_case.reaction(react("UCAROL", "heart"))  # a reaction, not a vote
    use_case.reaction(react("UDAN", "thumbsup"))  # Slack's other name for +1
    assert (p := store.get_post(C, TS)) is not None and (p.reactions, p.votes) == (3, 2)
    assert votes(notes) == [1, 2]
    use_case.reply(C, TS, "1700000001.000001", "UCAROL")  # a reply is a vote
    use_case.reply(C, TS, "1700000002.000001", "UBOB")  # Bob voted already
    assert votes(notes) == [1, 2, 3]
    use_case.reaction(react("UBOB"), added=False)  # Bob still replied
    use_case.reaction(react("UDAN", "thumbsup"), added=False)
    assert (p := store.get_post(C, TS)) is not None and (p.reactions, p.votes) == (2, 2)
    assert votes(notes) == [1, 2, 3, 2]


def test_vote_emoji_are_configurable(store: MemoryStore) -> None:
    notes = RecordingNotifier()
    use_case = RecordEngagement(store=store, notifier=notes, vote_emoji=("fire",))
    use_case.reaction(react("UBOB"))
    use_case.reaction(react("UCAROL", "fire"))
    assert (p := store.get_post(C, TS)) is not None and (p.reactions, p.votes) == (2, 1)
    assert votes(notes) == [1]


@pytest.mark.parametrize(
    "reaction",
    [
        react("UALICE"),  # the author's own
        react("UBOT", by_bot=True),  # the bot's (its "filed" mark)
        react("UBOB", ts="1700000000.999999"),  # a message that is not a stored post
        react(""),
    ],
    ids=["author", "bot", "unknown-message", "no-user"],
)
def test_reactions_that_are_not_votes(store: MemoryStore, reaction: Reaction) -> None:
    use_case, notes, _ = make(store)
    assert use_case.reaction(reaction) is None
    assert (p := store.get_post(C, TS)) is not None and p.reactions == 0 and notes.said == []


def test_once_filed_the_updated_reply_names_the_ticket(store: MemoryStore) -> None:
    use_case, notes, filer = make(store)
    filer.submit(FilingJob(channel=C, ts=TS, reply_ts=TS, requester="UBOB", text="x"))
    notes.said.clear()
    use_case.reaction(react("UBOB"))
    ((_, said),) = notes.said
    assert said["filed"].status == "already" and said["filed"].key == "PROJ-1"


def test_replies_count_people_not_messages(store: MemoryStore) -> None:
    use_case, notes, _ = make(store)
    use_case.reply(C, TS, "1700000001.000001", "UBOB")
    use_case.reply(C, TS, "1700000002.000001", "UBOB")
    use_case.reply(C, TS, "1700000003.000001", "UALICE")  # the author answering
    assert (p := store.get_post(C, TS)) is not None and p.replies == 1
    use_case.reply(C, TS, "1700000001.000001", "UBOB", added=False)
    assert (p := store.get_post(C, TS)) is not None and p.replies == 1
    use_case.reply(C, TS, "1700000002.000001", "UBOB", added=False)
    assert (p := store.get_post(C, TS)) is not None and p.replies == 0
    assert votes(notes) == [1, 0]  # a reply is a vote: shown, and taken back
