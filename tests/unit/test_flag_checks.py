"""The use cases ask the feature flags with the post's channel and user (``bot.domain.flags``).

Each flag off, on in-memory fakes: what still happens and what does not.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from bot.domain.digests import MeetingDigest, TakeawayDigest
from bot.domain.models import Analysis, Match, Post
from bot.domain.ports import StoredPost
from bot.service.channels import IdeaChannels
from bot.service.file_message import FILING_OFF, FileMessage, FileRequest, Reaction
from bot.service.receive_post import IncomingPost, ReceivePost
from bot.service.run_digest import DigestService, Rendered
from bot.service.triage import Triager
from tests.fakes.chat import RecordingChat
from tests.fakes.digest_store import FixedCalendar
from tests.fakes.flags import SwitchedFlags
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier
from tests.unit.test_file_message import REF
from tests.unit.test_file_message import make as make_file_message

DUP = Match(key="PROJ-7", score=0.95, title="Dark mode", url="https://jira/PROJ-7")


class Named:
    """An analyzer that says which one it is (the LLM stand-in or the offline one)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.seen: list[str] = []

    def analyze(self, post: Post) -> Analysis:
        self.seen.append(post.channel)
        return Analysis(
            kind="idea", confidence=0.9, title=post.text, summary="", analyzer=self.name
        )


class CountingIndex:
    def __init__(self, match: Match | None = None) -> None:
        self.match, self.searches = match, 0

    def search(self, text: str, top_k: int = 10) -> list[Match]:
        self.searches += 1
        return [self.match] if self.match else []


def _post(channel: str = "CIDEAS01") -> Post:
    return Post(id=f"{channel}:1", text="Add dark mode", channel=channel, user="UALICE", ts="1")


def test_llm_analysis_off_in_one_channel_uses_the_offline_analyzer_there_only() -> None:
    llm, offline = Named("llm"), Named("offline")
    flags = SwitchedFlags(off={("llm-analysis", "CQUIET")})
    triager = Triager(llm, CountingIndex(), flags=flags, offline=offline)  # type: ignore[arg-type]
    assert triager.triage(_post("CIDEAS01")).analyzer == "llm"
    assert triager.triage(_post("CQUIET")).analyzer == "offline"
    assert [t.analyzer for t in triager.triage_many([_post("CIDEAS01"), _post("CQUIET")])] == [
        "llm",
        "offline",
    ]
    assert ("llm-analysis", "CQUIET", "UALICE") in flags.asked


def test_without_an_offline_analyzer_the_llm_flag_changes_nothing() -> None:
    only = Named("offline")
    flags = SwitchedFlags(off={("llm-analysis", None)})
    triager = Triager(only, CountingIndex(), flags=flags)  # type: ignore[arg-type]
    assert triager.triage(_post()).analyzer == "offline"


def test_duplicate_check_off_searches_no_similar_tickets() -> None:
    index = CountingIndex(DUP)
    flags = SwitchedFlags(off={("duplicate-check", "CIDEAS01")})
    triager = Triager(Named("x"), index, flags=flags)  # type: ignore[arg-type]
    off = triager.triage(_post("CIDEAS01"))
    assert off.similar == () and not off.likely_duplicate and index.searches == 0
    assert triager.triage(_post("COTHER")).likely_duplicate and index.searches == 1


def _receive(flags: SwitchedFlags) -> tuple[ReceivePost, MemoryStore, RecordingNotifier]:
    store, notes = MemoryStore(), RecordingNotifier()
    use_case = ReceivePost(
        store=store,
        triager=Triager(Named("x"), CountingIndex()),  # type: ignore[arg-type]
        notifier=notes,
        chat=RecordingChat(),
        channels=IdeaChannels(["CIDEAS01", "CIDEAS02"]),
        flags=flags,
    )
    return use_case, store, notes


def test_triage_replies_off_records_and_triages_but_does_not_answer() -> None:
    flags = SwitchedFlags(off={("triage-replies", "CIDEAS02")})
    use_case, store, notes = _receive(flags)
    quiet = use_case(IncomingPost(channel="CIDEAS02", ts="1.1", user="UALICE", text="Dark mode"))
    assert quiet.status == "quiet" and quiet.triage is not None
    stored = store.get_post("CIDEAS02", "1.1")
    assert (
        stored is not None and stored.kind == "idea" and stored.triage_json and not stored.reply_ts
    )
    assert notes.said == []
    answered = use_case(IncomingPost(channel="CIDEAS01", ts="1.2", user="UALICE", text="Dark"))
    assert answered.status == "replied" and [w for w, _ in notes.said] == ["triage_reply"]
    assert ("triage-replies", "CIDEAS02", "UALICE") in flags.asked


def _file_message(flags: SwitchedFlags, match: Match | None = None) -> tuple[FileMessage, ...]:
    use_case, chat, notes, tracker = make_file_message(MemoryStore(), match=match)
    use_case.flags = flags
    use_case.triager.flags = flags
    return use_case, chat, notes, tracker  # type: ignore[return-value]


def test_filing_off_tells_the_requester_and_files_nothing() -> None:
    flags = SwitchedFlags(off={("filing", "CIDEAS01")})
    use_case, _, notes, tracker = _file_message(flags)
    result = use_case.on_reaction(Reaction(ref=REF, user="UBOB", emoji="ticket"))
    assert result.status == "unavailable" and result.message == FILING_OFF
    assert tracker.created == []
    (said,) = notes.said
    assert said[0] == "to_requester" and said[1]["result"].message == FILING_OFF
    assert ("filing", "CIDEAS01", "UBOB") in flags.asked
    assert use_case.submit_idea("CIDEAS01", "UBOB", "Dark mode").message == FILING_OFF
    assert [w for w, _ in notes.said] == ["to_requester"]  # /idea posted nothing either


def test_comment_instead_off_files_a_likely_duplicate_directly() -> None:
    on, _, on_notes, on_tracker = _file_message(SwitchedFlags(), DUP)
    assert on(FileRequest(ref=REF, requester="UBOB")).status == "duplicate"
    assert on_tracker.created == [] and [w for w, _ in on_notes.said] == ["duplicate_offer"]

    off, _, notes, tracker = _file_message(SwitchedFlags(off={("comment-instead", None)}), DUP)
    assert off(FileRequest(ref=REF, requester="UBOB")).status == "filed"
    assert len(tracker.created) == 1 and "duplicate_offer" not in [w for w, _ in notes.said]


def test_duplicate_check_off_makes_no_offer_even_from_a_stored_triage() -> None:
    flags = SwitchedFlags()
    use_case, _, notes, tracker = _file_message(flags, DUP)
    # Triaged while the check was on (the verdict is stored), then the flag goes off.
    triage = use_case.triager.triage(_post())
    assert triage.likely_duplicate
    use_case.store.save_post(
        StoredPost(
            channel=REF.channel,
            ts=REF.ts,
            user="UALICE",
            text="Add dark mode",
            created=datetime.now(UTC),
            triage_json=triage.model_dump_json(),
        )
    )
    flags.off.add(("duplicate-check", None))
    assert use_case(FileRequest(ref=REF, requester="UBOB")).status == "filed"
    assert len(tracker.created) == 1 and "duplicate_offer" not in [w for w, _ in notes.said]


def _digests(flags: SwitchedFlags, chat: RecordingChat) -> DigestService:
    def meetings(d: MeetingDigest) -> Rendered:
        return Rendered(f"meetings {d.day}", [], "text")

    def takeaways(d: TakeawayDigest) -> Rendered:
        return Rendered(f"takeaways {d.day}", [], "text")

    return DigestService(
        store=MemoryStore(),
        chat=chat,
        calendar=FixedCalendar(),
        tz="UTC",
        workday=(time(9), time(17)),
        render_meetings=meetings,
        render_takeaways=takeaways,
        flags=flags,
    )


def test_a_digest_whose_flag_is_off_is_skipped_and_the_flip_counts_on_the_next_run() -> None:
    flags, chat = SwitchedFlags(off={("meeting-digest", "CDIGEST")}), RecordingChat()
    service = _digests(flags, chat)
    day = date(2026, 4, 15)
    skipped = service.run("meetings", "CDIGEST", day)
    assert skipped.status == "skipped" and "meeting-digest" in (skipped.error or "")
    assert service.run("takeaways", "CDIGEST", day).status == "posted"
    assert service.run("meetings", "CDIGEST", day, dry_run=True).status == "dry_run"
    flags.off.clear()
    assert service.run("meetings", "CDIGEST", day).status == "posted"
    assert ("meeting-digest", "CDIGEST", None) in flags.asked
