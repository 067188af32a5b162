"""The receive-post use case on in-memory fakes: which posts are triaged, what is recorded."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime

import pytest

from bot.domain.models import Analysis, Match, Post, Triage
from bot.domain.ports import StoredPost
from bot.service.channels import IdeaChannels
from bot.service.engagement import RecordEngagement
from bot.service.receive_post import IncomingPost, ReceivePost
from bot.service.triage import Triager
from bot.service.work_fence import WorkFence, fenced_by
from tests.fakes.chat import RecordingChat
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier


class KindByWord:
    name = "words"

    def analyze(self, post: Post) -> Analysis:
        kind = "other" if post.text.lower().startswith("thanks") else "idea"
        return Analysis(kind=kind, confidence=0.9, title=post.text, summary="", analyzer="words")


class NoIndex:
    def search(self, text: str, top_k: int = 10) -> list[Match]:
        return []


@pytest.fixture
def store() -> MemoryStore:
    return MemoryStore()


def make(
    store: MemoryStore, channels: IdeaChannels | None = None, threads: bool = False
) -> tuple[ReceivePost, RecordingChat, RecordingNotifier]:
    chat, notes = RecordingChat(private={"GPRIV001"}), RecordingNotifier()
    use_case = ReceivePost(
        store=store,
        triager=Triager(KindByWord(), NoIndex()),  # type: ignore[arg-type]
        notifier=notes,
        chat=chat,
        channels=channels or IdeaChannels(["CIDEAS01", "GPRIV001"]),
        triage_threads=threads,
        engagement=RecordEngagement(store=store, notifier=notes),
    )
    return use_case, chat, notes


def post(text: str = "Add dark mode", **kw: object) -> IncomingPost:
    fields: dict[str, object] = {
        "channel": "CIDEAS01",
        "ts": "1700000000.000100",
        "user": "UALICE",
        "text": text,
    }
    fields.update(kw)
    return IncomingPost(**fields)  # type: ignore[arg-type]


def test_an_idea_is_recorded_triaged_and_answered_once(store: MemoryStore) -> None:
    use_case, _, notes = make(store)
    out = use_case(post(event_id="Ev1"))
    assert out.status == "replied" and out.reply_ts
    stored = store.get_post("CIDEAS01", "1700000000.000100")
    assert stored is not None and stored.kind == "idea" and stored.reply_ts == out.reply_ts
    assert stored.triage_json and not stored.is_private
    assert notes.kinds() == ["triage_reply"]


def test_chit_chat_is_recorded_but_not_answered(store: MemoryStore) -> None:
    use_case, _, notes = make(store)
    assert use_case(post("thanks all!")).status == "quiet"
    stored = store.get_post("CIDEAS01", "1700000000.000100")
    assert stored is not None and stored.kind == "other" and stored.reply_ts is None
    assert notes.said == []


@pytest.mark.parametrize(
    "incoming",
    [
        post(channel="COTHER01"),
        post("   "),
        post(thread_ts="1600000000.000001"),
    ],
    ids=["not-an-idea-channel", "blank", "thread-reply"],
)
def test_posts_that_are_not_triaged(store: MemoryStore, incoming: IncomingPost) -> None:
    use_case, _, notes = make(store)
    assert use_case(incoming).status == "ignored"
    assert notes.said == [] and store.get_post(incoming.channel, incoming.ts) is None


def test_thread_replies_with_triage_threads(store: MemoryStore) -> None:
    use_case, _, _ = make(store, threads=True)
    assert use_case(post(thread_ts="1600000000.000001")).status == "replied"


def test_privacy_comes_from_the_event_or_else_from_the_chat(store: MemoryStore) -> None:
    use_case, _, _ = make(store)
    use_case(post(channel="GPRIV001"))  # the event did not say: the chat knows it is private
    stored = store.get_post("GPRIV001", "1700000000.000100")
    assert stored is not None and stored.is_private
    use_case(post(ts="1700000000.000200", is_private=True))
    stored = store.get_post("CIDEAS01", "1700000000.000200")
    assert stored is not None and stored.is_private


def test_channel_names_count_once_resolved(store: MemoryStore) -> None:
    channels = IdeaChannels(["#product-ideas"])
    use_case, chat, _ = make(store, channels=channels)
    chat.names["product-ideas"] = "CNAMED01"
    assert use_case(post(channel="CNAMED01")).status == "ignored"  # not resolved yet
    channels.resolve(chat)
    assert use_case(post(channel="CNAMED01")).status == "replied"


def test_a_reply_also_sent_to_the_channel_is_a_post(store: MemoryStore) -> None:
    use_case, _, notes = make(store)  # TRIAGE_THREADS off, the default
    out = use_case(post(thread_ts="1600000000.000001", broadcast=True))
    assert out.status == "replied" and notes.kinds() == ["triage_reply"]
    stored = store.get_post("CIDEAS01", "1700000000.000100")
    assert stored is not None and stored.thread_ts == "1600000000.000001"


def test_a_reply_counts_once_per_person_on_the_post_it_answers(store: MemoryStore) -> None:
    use_case, _, _ = make(store)
    use_case(post(ts="1600000000.000001"))
    for ts, user in (("1.1", "UBOB"), ("1.2", "UBOB"), ("1.3", "UCAROL"), ("1.4", "UALICE")):
        reply = post(ts=f"170000000{ts}", user=user, thread_ts="1600000000.000001")
        assert use_case(reply).status == "ignored"  # replies are not triaged by default
    parent = store.get_post("CIDEAS01", "1600000000.000001")
    assert parent is not None and parent.replies == 2  # Bob once, Carol; not the author


def test_a_deleted_post_is_not_triaged_when_its_message_arrives_late(store: MemoryStore) -> None:
    use_case, _, notes = make(store)
    store.delete_post("CIDEAS01", "1700000000.000100", datetime.now(UTC))
    assert use_case(post()).status == "ignored" and notes.said == []


@pytest.mark.parametrize("ts", ["nan", "inf", "-1e300", "1e300", "12:30", ""])
def test_an_odd_ts_does_not_break_the_use_case(store: MemoryStore, ts: str) -> None:
    use_case, _, _ = make(store)
    assert use_case(post(ts=ts)).status in ("replied", "ignored")


def test_a_replayed_post_that_was_answered_is_not_answered_again(store: MemoryStore) -> None:
    # The inbox delivers at least once: a worker that died after replying leaves the event
    # to be replayed by another replica.
    use_case, _, notes = make(store)
    assert use_case(post(event_id="Ev1")).status == "replied"
    assert use_case(post(event_id="Ev1-replayed")).status == "ignored"
    assert notes.kinds() == ["triage_reply"]


# --------------------------------------------------------------------------- one reply per post


class DiesAfterReplying(RecordingNotifier):
    """The worker's process dies right after Slack took the reply (before it was recorded)."""

    def triage_reply(self, post: StoredPost, triage: Triage) -> str:
        super().triage_reply(post, triage)
        raise SystemExit("SIGKILL")


def test_a_retry_finds_the_reply_its_dead_predecessor_posted_and_does_not_post_again(
    store: MemoryStore,
) -> None:
    use_case, _, notes = make(store)
    dying = DiesAfterReplying()
    first = dataclasses.replace(use_case, notifier=dying)
    with pytest.raises(SystemExit):
        first(post(event_id="Ev1"))
    got = store.get_post("CIDEAS01", "1700000000.000100")
    assert got is not None and got.reply_ts is None  # posted, never recorded
    # the event's next holder (here: what Slack shows of the thread is the dead one's reply)
    notes.said = list(dying.said)
    out = use_case(post(event_id="Ev1"))
    assert out.status == "replied" and out.reply_ts == dying.said[0][1]["ts"]
    assert notes.kinds() == ["triage_reply"]  # still the one reply
    got = store.get_post("CIDEAS01", "1700000000.000100")
    assert got is not None and got.reply_ts == out.reply_ts and got.kind == "idea"


def test_a_retry_with_no_reply_in_the_thread_replies(store: MemoryStore) -> None:
    use_case, _, notes = make(store)
    store.save_post(  # the first attempt recorded the post, then died before replying
        StoredPost(
            channel="CIDEAS01",
            ts="1700000000.000100",
            user="UALICE",
            text="Add dark mode",
            created=datetime.now(UTC),
        )
    )
    out = use_case(post(event_id="Ev1"))
    assert out.status == "replied" and notes.kinds() == ["triage_reply"]


def test_a_first_attempt_does_not_look_for_a_reply() -> None:
    class NoLookups(RecordingNotifier):
        def find_triage_reply(self, post: StoredPost) -> str | None:
            raise AssertionError("a post seen for the first time has no reply to find")

    store = MemoryStore()
    use_case, _, _ = make(store)
    use_case = dataclasses.replace(use_case, notifier=NoLookups())
    assert use_case(post(event_id="Ev1")).status == "replied"


def test_a_worker_that_no_longer_holds_the_event_does_not_reply(store: MemoryStore) -> None:
    use_case, _, notes = make(store)
    fence = WorkFence(lambda: False)  # handed to another replica while triage ran
    with fenced_by(fence):
        out = use_case(post(event_id="Ev1"))
    assert out.status == "ignored" and fence.abandoned
    assert notes.kinds() == []
    got = store.get_post("CIDEAS01", "1700000000.000100")
    assert got is not None and got.reply_ts is None


def test_a_worker_that_cannot_tell_whether_it_holds_the_event_does_not_reply(
    store: MemoryStore,
) -> None:
    use_case, _, notes = make(store)

    def unknown() -> bool:
        raise ConnectionError("database unreachable")

    with fenced_by(WorkFence(unknown)), pytest.raises(ConnectionError):
        use_case(post(event_id="Ev1"))
    assert notes.kinds() == []
