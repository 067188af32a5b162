"""The "file this message" use case on in-memory fakes: rules before the exactly-once engine."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.models import Analysis, ChatMessage, Match, MessageRef, Person, Post, Triage
from bot.domain.ports import StoredPost
from bot.service.channels import IdeaChannels
from bot.service.edit_post import EditPost
from bot.service.file_message import FileMessage, FileRequest, FilingAccess, Reaction
from bot.service.filing import Filer
from bot.service.triage import Triager
from tests.fakes.chat import RecordingChat
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.tracker import FakeTracker

REF = MessageRef(channel="CIDEAS01", ts="1700000000.000100")


class FixedAnalyzer:
    name = "fixed"

    def analyze(self, post: Post) -> Analysis:
        return Analysis(
            kind="idea", confidence=0.9, title=post.text[:40], summary="s", analyzer=self.name
        )


class OneMatchIndex:
    """An index whose best match for anything is *match* (or nothing)."""

    def __init__(self, match: Match | None = None) -> None:
        self.match = match

    def search(self, text: str, top_k: int = 10) -> list[Match]:
        return [self.match] if self.match else []


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make(
    store: MemoryStore,
    *,
    match: Match | None = None,
    access: FilingAccess | None = None,
    tracker: FakeTracker | None = None,
) -> tuple[FileMessage, RecordingChat, RecordingNotifier, FakeTracker]:
    chat, notes = RecordingChat(), RecordingNotifier()
    chat.people["UALICE"] = Person(name="Alice", email="alice@example.com")
    chat.messages[(REF.channel, REF.ts)] = ChatMessage(
        ts=REF.ts, text="Add dark mode", user="UALICE"
    )
    tracker = tracker or FakeTracker()
    filer = Filer(
        store=store,
        tracker=tracker,
        project="PROJ",
        issue_types={"idea": "Story"},
        notifier=notes,
        clock=lambda: datetime.now(UTC),
    )
    triager = Triager(FixedAnalyzer(), OneMatchIndex(match))  # type: ignore[arg-type]
    channels = IdeaChannels(["CIDEAS01"])
    use_case = FileMessage(
        store=store,
        chat=chat,
        notifier=notes,
        filer=filer,
        triager=triager,
        channels=channels,
        access=access or FilingAccess(),
        edits=EditPost(
            store=store, triager=triager, notifier=notes, filer=filer, channels=channels
        ),
    )
    return use_case, chat, notes, tracker


def test_reaction_files_the_fetched_message_once_with_its_author(store: MemoryStore) -> None:
    use_case, _, notes, tracker = make(store)
    reaction = Reaction(ref=REF, user="UBOB", emoji="ticket", item_user="UALICE", event_id="Ev1")
    assert use_case.on_reaction(reaction).status == "filed"
    (issue,) = tracker.created
    assert issue.reporter_email == "alice@example.com" and issue.body.author == "Alice"
    assert (
        issue.body.original == "Add dark mode" and issue.link_url and REF.channel in issue.link_url
    )
    # a second person's reaction files nothing new (Slack's redeliveries never get here: the
    # inbox records each event id once)
    again = use_case.on_reaction(reaction.model_copy(update={"event_id": "Ev2"}))
    assert again.status == "already" and len(tracker.created) == 1
    assert notes.outcomes() == ["filed"]


@pytest.mark.parametrize(
    "reaction",
    [
        Reaction(ref=REF, user="UBOB", emoji="thumbsup"),
        Reaction(ref=MessageRef(channel="COTHER", ts=REF.ts), user="UBOB", emoji="ticket"),
        Reaction(ref=REF, user="UBOT", emoji="ticket", by_bot=True),
        Reaction(ref=REF, user="UBOB", emoji="ticket", on_bot_message=True),
    ],
    ids=["other-emoji", "other-channel", "by-the-bot", "on-the-bots-reply"],
)
def test_reactions_that_are_not_a_filing(store: MemoryStore, reaction: Reaction) -> None:
    use_case, _, notes, tracker = make(store)
    assert use_case.on_reaction(reaction).status == "ignored"
    assert tracker.created == [] and notes.said == []


def test_reaction_on_the_post_idea_made_for_someone_files_it(store: MemoryStore) -> None:
    use_case, _, _, tracker = make(store)
    store.save_post(
        StoredPost(
            channel=REF.channel, ts=REF.ts, user="UALICE", text="Add SSO", created=datetime.now(UTC)
        )
    )
    reaction = Reaction(ref=REF, user="UBOB", emoji="ticket", on_bot_message=True)
    assert use_case.on_reaction(reaction).status == "filed"
    assert tracker.created[0].body.original == "Add SSO"


def test_someone_not_allowed_is_told_privately_and_nothing_is_filed(store: MemoryStore) -> None:
    use_case, chat, notes, tracker = make(store, access=FilingAccess(users=["UBOB"], groups=["S1"]))
    chat.groups["S1"] = frozenset({"UCAROL"})
    assert use_case(FileRequest(ref=REF, requester="UMALLORY")).status == "denied"
    assert [d["result"].status for k, d in notes.said if k == "to_requester"] == ["denied"]
    assert tracker.created == []
    assert use_case(FileRequest(ref=REF, requester="UCAROL")).status == "filed"


def test_a_likely_duplicate_is_offered_then_commented_or_filed_anyway(store: MemoryStore) -> None:
    match = Match(
        key="PROJ-9",
        title="Dark theme",
        score=0.95,
        signals={"body": 0.9, "title": 0.9, "head_title": 0.9},
    )
    use_case, _, notes, tracker = make(store, match=match)
    first = use_case(FileRequest(ref=REF, requester="UBOB"))
    assert (first.status, first.key) == ("duplicate", "PROJ-9")
    assert notes.kinds() == ["duplicate_offer"] and tracker.created == []
    commented = use_case(FileRequest(ref=REF, requester="UBOB", force=True, comment_on="PROJ-9"))
    assert commented.status == "commented" and [c.key for c in tracker.comments] == ["PROJ-9"]
    # once settled, the offer is not made again: the person hears it was done
    assert use_case(FileRequest(ref=REF, requester="UBOB")).status == "already"


def test_file_anyway_files_despite_the_duplicate(store: MemoryStore) -> None:
    match = Match(key="PROJ-9", title="Dark", score=0.99)  # no signals: the fused score decides
    use_case, _, _, tracker = make(store, match=match)
    assert use_case(FileRequest(ref=REF, requester="UBOB", force=True)).status == "filed"
    assert len(tracker.created) == 1


def test_an_unreadable_message_is_said_to_the_requester(store: MemoryStore) -> None:
    use_case, chat, notes, tracker = make(store)
    chat.messages.clear()
    assert use_case(FileRequest(ref=REF, requester="UBOB")).status == "unreadable"
    assert [d["result"].status for k, d in notes.said if k == "to_requester"] == ["unreadable"]
    assert tracker.created == []


def test_stored_triage_is_reused_and_the_thread_is_the_posts_own(store: MemoryStore) -> None:
    use_case, _, notes, tracker = make(store)
    triage = Triage(
        kind="bug", confidence=0.8, title="Export crashes", summary="It crashes.", analyzer="t"
    )
    store.save_post(
        StoredPost(
            channel=REF.channel,
            ts=REF.ts,
            user="UALICE",
            text="export crashes",
            created=datetime.now(UTC),
            thread_ts="1699999999.000100",
            triage_json=triage.model_dump_json(),
        )
    )
    assert use_case(FileRequest(ref=REF, requester="UBOB")).status == "filed"
    assert tracker.created[0].summary == "Export crashes"
    (outcome,) = [d for k, d in notes.said if k == "filing_outcome"]
    assert outcome["job"].reply_ts == "1699999999.000100"


def test_slash_command_posts_for_the_person_then_files(store: MemoryStore) -> None:
    use_case, _, notes, tracker = make(store)
    result = use_case.submit_idea("CIDEAS01", "UALICE", "Add keyboard shortcuts")
    assert result.status == "filed" and notes.kinds()[0] == "idea_posted"
    posted = store.get_post("CIDEAS01", "1800000000.000001")  # the ts the chat gave the post
    assert posted is not None and posted.user == "UALICE"
    assert tracker.created[0].body.original == "Add keyboard shortcuts"


def test_slash_command_that_cannot_post_files_nothing(store: MemoryStore) -> None:
    use_case, _, notes, tracker = make(store)
    notes.cannot_post = True
    result = use_case.submit_idea("CIDEAS01", "UALICE", "Add keyboard shortcuts")
    assert result.status == "unavailable" and "invite me" in (result.message or "")
    assert tracker.created == []


def test_without_jira_nothing_is_posted_or_filed(store: MemoryStore) -> None:
    use_case, _, notes, _ = make(store)
    use_case.filer.tracker = None
    assert use_case.submit_idea("CIDEAS01", "UALICE", "Add SSO").status == "unavailable"
    assert notes.said == []
    assert use_case(FileRequest(ref=REF, requester="UBOB")).status == "unavailable"


def _store_post(store: MemoryStore, text: str = "Add dark mode", **kw: object) -> None:
    triage = Triage(kind="idea", confidence=0.8, title=text, summary=text, analyzer="t")
    fields: dict[str, object] = {
        "channel": REF.channel,
        "ts": REF.ts,
        "user": "UALICE",
        "text": text,
        "created": datetime.now(UTC),
        "triage_json": triage.model_dump_json(),
        "reply_ts": "1800000000.000009",
    }
    fields.update(kw)
    store.save_post(StoredPost(**fields))  # type: ignore[arg-type]


def test_a_deleted_post_cannot_be_filed_and_the_requester_hears_why(store: MemoryStore) -> None:
    use_case, _, notes, tracker = make(store)
    _store_post(store)
    store.delete_post(REF.channel, REF.ts, datetime.now(UTC))
    for req in (
        FileRequest(ref=REF, requester="UBOB"),  # the button
        FileRequest(ref=REF, requester="UBOB", force=True),  # "File anyway"
    ):
        result = use_case(req)
        assert result.status == "unavailable" and "deleted" in (result.message or "")
    reaction = Reaction(ref=REF, user="UCAROL", emoji="ticket", item_user="UALICE")
    assert use_case.on_reaction(reaction).status == "unavailable"
    told = [d for k, d in notes.said if k == "to_requester"]
    assert [d["requester"] for d in told] == ["UBOB", "UBOB", "UCAROL"]
    assert tracker.created == [] and store.get_filing(REF.channel, REF.ts) is None


def test_the_shortcut_files_the_edited_text_its_payload_carries(store: MemoryStore) -> None:
    use_case, _, notes, tracker = make(store)
    _store_post(store, "Add dark mode")
    edited = "Add dark mode and a light one"
    req = FileRequest(ref=REF, requester="UBOB", text=edited, author="UALICE")
    assert use_case(req).status == "filed"
    (issue,) = tracker.created
    assert issue.body.original == edited and issue.summary == edited[:40]
    got = store.get_post(REF.channel, REF.ts)
    assert got is not None and got.text == edited  # stored as the current text
    assert notes.kinds()[0] == "update_triage_reply"  # and the triage reply shows it


def test_the_shortcut_on_an_idea_posted_for_someone_files_their_words(store: MemoryStore) -> None:
    use_case, _, _, tracker = make(store)
    _store_post(store, "Add SSO")  # /idea: the bot posted "<@UALICE> shared an idea: >Add SSO"
    quoted = "<@UALICE> shared an idea:\n>Add SSO"
    assert use_case(FileRequest(ref=REF, requester="UBOB", text=quoted, author="UBOT")).status
    assert tracker.created[0].body.original == "Add SSO"


def test_comment_instead_finds_the_offered_key_when_the_button_could_not_carry_it(
    store: MemoryStore,
) -> None:
    match = Match(key="PROJ-9", title="Dark", score=0.95, signals={"body": 0.9, "title": 0.9})
    use_case, _, _, tracker = make(store, match=match)
    assert use_case(FileRequest(ref=REF, requester="UBOB")).status == "duplicate"
    req = FileRequest(ref=REF, requester="UBOB", force=True, comment_on_offered=True)
    assert use_case(req).status == "commented"
    assert [c.key for c in tracker.comments] == ["PROJ-9"] and tracker.created == []


def test_comment_instead_without_an_offer_to_find_files_nothing(store: MemoryStore) -> None:
    use_case, _, notes, tracker = make(store)  # no likely duplicate any more
    req = FileRequest(ref=REF, requester="UBOB", force=True, comment_on_offered=True)
    result = use_case(req)
    assert result.status == "unavailable" and tracker.created == [] and tracker.comments == []
    assert [d["result"].status for k, d in notes.said if k == "to_requester"] == ["unavailable"]
