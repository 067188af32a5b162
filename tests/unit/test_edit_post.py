"""Edited and deleted posts on in-memory fakes: what is triaged again, said, commented, purged."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.domain.filing import FilingJob
from bot.domain.models import Analysis, Match, Post
from bot.domain.ports import StoredPost, TrackerRetryable
from bot.service.channels import IdeaChannels
from bot.service.edit_post import EditPost, PostDeletion, PostEdit
from bot.service.engagement import RecordEngagement
from bot.service.filing import Filer
from bot.service.triage import Triager
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.tracker import FakeTracker

C, TS = "CIDEAS01", "1700000000.000100"
T0 = datetime(2025, 3, 3, 9, tzinfo=UTC)


class KindByWord:
    name = "words"

    def analyze(self, post: Post) -> Analysis:
        kind = "other" if post.text.lower().startswith("thanks") else "idea"
        return Analysis(
            kind=kind, confidence=0.9, title=post.text[:40], summary=post.text, analyzer="words"
        )


class NoIndex:
    def search(self, text: str, top_k: int = 10) -> list[Match]:
        return []


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make(
    store: MemoryStore, *, comment_on_edit: bool = False, tracker: FakeTracker | None = None
) -> tuple[EditPost, RecordingNotifier, FakeTracker, Filer]:
    notes, tracker = RecordingNotifier(), tracker or FakeTracker()
    filer = Filer(store=store, tracker=tracker, project="PROJ", issue_types={}, notifier=notes)
    use_case = EditPost(
        store=store,
        triager=Triager(KindByWord(), NoIndex()),  # type: ignore[arg-type]
        notifier=notes,
        filer=filer,
        channels=IdeaChannels([C]),
        tracker=tracker,
        engagement=RecordEngagement(store=store, notifier=notes, filer=filer),
        comment_on_edit=comment_on_edit,
        clock=lambda: T0,
    )
    return use_case, notes, tracker, filer


def stored(store: MemoryStore, text: str = "Add dark mode", **kw: object) -> StoredPost:
    fields: dict[str, object] = {
        "channel": C,
        "ts": TS,
        "user": "UALICE",
        "text": text,
        "created": T0,
        "kind": "idea",
        "title": text,
        "triage_json": KindByWord().analyze(Post(id="x", text=text)).model_dump_json(),
        "reply_ts": "1800000000.000001",
    }
    fields.update(kw)
    post = StoredPost(**fields)  # type: ignore[arg-type]
    store.save_post(post)
    return post


def edit(text: str, **kw: object) -> PostEdit:
    fields: dict[str, object] = {"channel": C, "ts": TS, "user": "UALICE", "text": text}
    fields.update(kw)
    return PostEdit(**fields)  # type: ignore[arg-type]


def file_it(filer: Filer, text: str = "Add dark mode") -> str:
    result = filer.submit(FilingJob(channel=C, ts=TS, reply_ts=TS, requester="UBOB", text=text))
    assert result.status == "filed" and result.key
    return result.key


def test_an_edit_before_filing_is_triaged_again_and_the_reply_updated(store: MemoryStore) -> None:
    use_case, notes, _, _ = make(store)
    stored(store)
    out = use_case.edited(edit("Add dark mode and a high-contrast theme", event_id="Ev1"))
    assert out.status == "retriaged"
    got = store.get_post(C, TS)
    assert got is not None and got.text == "Add dark mode and a high-contrast theme"
    assert got.title == "Add dark mode and a high-contrast theme"  # the new triage
    assert notes.kinds() == ["update_triage_reply"]
    assert notes.said[0][1]["reply_ts"] == "1800000000.000001"
    assert notes.said[0][1]["title"] == got.title
    # A redelivered edit never reaches the use case: the inbox records each event id once.


def test_chit_chat_edited_into_an_idea_gets_its_first_reply(store: MemoryStore) -> None:
    use_case, notes, _, _ = make(store)
    stored(store, "thanks", kind="other", reply_ts=None)
    assert use_case.edited(edit("Add an export to CSV")).status == "retriaged"
    got = store.get_post(C, TS)
    assert notes.kinds() == ["triage_reply"] and got is not None and got.reply_ts


@pytest.mark.parametrize(
    "change",
    [
        edit("Add dark mode"),  # same text: a thread reply or an unfurl changed the message
        edit("Add dark mode!", ts="1700000000.000999"),  # not a stored post
    ],
)
def test_changes_that_are_not_edits_of_a_stored_post(store: MemoryStore, change: PostEdit) -> None:
    use_case, notes, _, _ = make(store)
    stored(store)
    assert use_case.edited(change).status == "ignored" and notes.said == []


def test_an_edit_after_filing_keeps_the_ticket_and_says_so(store: MemoryStore) -> None:
    use_case, notes, tracker, filer = make(store)
    stored(store)
    key = file_it(filer)
    notes.said.clear()
    assert use_case.edited(edit("Add dark mode, and fast")).status == "noted"
    ((what, said),) = notes.said
    assert what == "edited_after_filing" and said["filed"].key == key
    assert said["commented"] is None and tracker.comments == []
    got = store.get_post(C, TS)
    assert got is not None and got.text == "Add dark mode, and fast"  # the store is current
    assert got.title == "Add dark mode"  # the triage stays the one the ticket was filed with


def test_comment_on_edit_adds_the_new_text_to_the_issue(store: MemoryStore) -> None:
    use_case, notes, tracker, filer = make(store, comment_on_edit=True)
    stored(store)
    key = file_it(filer)
    use_case.edited(edit("Add dark mode &amp; a light one"))
    (comment,) = tracker.comments
    assert comment.key == key and comment.body.original == "Add dark mode & a light one"
    assert notes.said[-1][1]["commented"] is True


def test_a_comment_jira_refuses_is_told_not_raised(store: MemoryStore) -> None:
    use_case, notes, tracker, filer = make(store, comment_on_edit=True)
    stored(store)
    file_it(filer)
    tracker.failures.append(TrackerRetryable("503"))
    assert use_case.edited(edit("Add dark mode now")).status == "noted"
    assert notes.said[-1][1]["commented"] is False


def test_an_edit_while_filing_says_the_ticket_gets_the_earlier_text(store: MemoryStore) -> None:
    use_case, notes, _, _ = make(store)
    stored(store)
    store.claim_filing(C, TS, "other-worker")
    assert use_case.edited(edit("Add dark mode now")).status == "noted"
    assert notes.said[-1][1]["filed"].status == "in_progress"


def test_a_deleted_post_is_purged_its_reply_replaced_and_it_stays_gone(
    store: MemoryStore,
) -> None:
    use_case, notes, _, _ = make(store)
    stored(store)
    store.add_engagement(C, TS, "reaction", "UBOB", "+1")
    assert use_case.deleted(PostDeletion(channel=C, ts=TS, user="UALICE")).status == "deleted"
    got = store.get_post(C, TS)
    assert got is not None and got.deleted and got.text == "" and got.title is None
    assert got.reactions == 0
    assert notes.kinds() == ["post_deleted"]
    assert notes.said[0][1]["reply_ts"] == "1800000000.000001"
    assert use_case.deleted(PostDeletion(channel=C, ts=TS)).status == "ignored"  # again
    assert use_case.edited(edit("back from the dead")).status == "ignored"


def test_deleting_a_message_never_seen_leaves_a_row_only_in_idea_channels(
    store: MemoryStore,
) -> None:
    use_case, notes, _, _ = make(store)
    assert use_case.deleted(PostDeletion(channel=C, ts=TS, user="UALICE")).status == "ignored"
    got = store.get_post(C, TS)
    assert got is not None and got.deleted
    use_case.deleted(PostDeletion(channel="COTHER01", ts=TS))
    assert store.get_post("COTHER01", TS) is None and notes.said == []


def test_a_deleted_reply_stops_counting(store: MemoryStore) -> None:
    use_case, _, _, _ = make(store)
    stored(store)
    engagement = use_case.engagement
    assert engagement is not None
    engagement.reply(C, TS, "1700000001.000001", "UBOB")
    assert (p := store.get_post(C, TS)) is not None and p.replies == 1
    use_case.deleted(PostDeletion(channel=C, ts="1700000001.000001", user="UBOB", thread_ts=TS))
    assert (p := store.get_post(C, TS)) is not None and p.replies == 0 and not p.deleted
    assert store.get_post(C, "1700000001.000001") is None  # a reply leaves no row
