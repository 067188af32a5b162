"""The digest models (pure) and DigestService's exactly-once run on the real SqlStore."""

from __future__ import annotations

import json
import threading
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.adapters.store_sql import SqlStore
from bot.domain.digests import (
    MeetingDigest,
    TakeawayDigest,
    build_meeting_digest,
    build_takeaway_digest,
    meeting_prompt_variables,
    merge_intervals,
    plain_meeting_overview,
    takeaway_prompt_variables,
    visible_to,
)
from bot.domain.ports import CalendarDay, Filing, Meeting, StoredPost
from bot.service.channels import IdeaChannels
from bot.service.run_digest import DigestService, Rendered
from tests.fakes.chat import RecordingChat
from tests.fakes.digest_store import FixedCalendar

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 4, 15)
WORKDAY = (time(9, 0), time(17, 30))


def at(h: int, m: int = 0, day: date = DAY, tz: ZoneInfo = BERLIN) -> datetime:
    return datetime.combine(day, time(h, m), tzinfo=tz)


def meeting(title: str, start: datetime, end: datetime, **kw: object) -> Meeting:
    return Meeting(title=title, start=start, end=end, **kw)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- meetings model


def test_meeting_digest_merges_overlaps_and_finds_free_blocks() -> None:
    cal = CalendarDay(
        meetings=[
            meeting("Offsite prep", at(0), at(0) + timedelta(days=1), all_day=True),
            meeting("Review", at(11), at(12)),
            meeting("Standup", at(9), at(9, 15)),
            meeting("Overlapping", at(11, 30), at(12, 30)),
            meeting("Tiny gap after", at(12, 40), at(13)),
            meeting("Evening", at(18), at(19)),
        ],
        failed_feeds=["feed 2 (calendar.google.com)"],
    )
    d = build_meeting_digest(DAY, cal, "Europe/Berlin", WORKDAY)
    assert d.count == 5
    assert [m.title for m in d.meetings][:2] == ["Standup", "Review"]
    assert [m.title for m in d.all_day] == ["Offsite prep"]
    # 15 + (11:00-12:30 = 90) + 20 + 60
    assert d.total_minutes == 185
    blocks = [(b.start.strftime("%H:%M"), b.end.strftime("%H:%M")) for b in d.free_blocks]
    # 12:30-12:40 is under 15 minutes and left out; the evening meeting is after work.
    assert blocks == [("09:15", "11:00"), ("13:00", "17:30")]
    assert d.failed_feeds == ("feed 2 (calendar.google.com)",)
    overview = plain_meeting_overview(d)
    assert overview.startswith("5 meetings today, 3 h 5 min in total, from 09:00 to 19:00")
    assert "Longest free block: 13:00–17:30 (4 h 30 min)." in overview


def test_meeting_digest_on_dst_day_counts_real_time() -> None:
    change = date(2026, 3, 29)  # Berlin: 02:00 -> 03:00
    cal = CalendarDay(
        meetings=[meeting("Night", at(1, 30, change), at(3, 30, change))], failed_feeds=[]
    )
    d = build_meeting_digest(change, cal, "Europe/Berlin", WORKDAY)
    assert d.total_minutes == 60
    assert [(b.start.hour, b.end.hour, b.end.minute) for b in d.free_blocks] == [(9, 17, 30)]


def test_empty_day_overview_and_prompt_variables() -> None:
    d = build_meeting_digest(DAY, CalendarDay([], []), "Europe/Berlin", WORKDAY)
    assert d.count == 0 and d.total_minutes == 0
    assert plain_meeting_overview(d) == (
        "No meetings today. Longest free block: 09:00–17:30 (8 h 30 min)."
    )
    assert meeting_prompt_variables(d) == {"day": "Wednesday 15 April 2026", "meetings": ""}


def test_overview_and_prompt_name_the_days_of_meetings_over_midnight() -> None:
    cal = CalendarDay(
        meetings=[
            meeting("Night shift", at(22) - timedelta(days=1), at(2)),
            meeting("Release", at(21), at(1) + timedelta(days=1)),
        ],
        failed_feeds=[],
    )
    d = build_meeting_digest(DAY, cal, "Europe/Berlin", WORKDAY)
    assert plain_meeting_overview(d).startswith(
        "2 meetings today, 5 h in total, from Tue 22:00 to Thu 01:00."
    )
    assert meeting_prompt_variables(d)["meetings"] == (
        "Tue 22:00-Wed 02:00 Night shift\nWed 21:00-Thu 01:00 Release"
    )
    late = build_meeting_digest(
        DAY,
        CalendarDay([meeting("Late", at(9), at(0) + timedelta(days=1))], []),
        "Europe/Berlin",
        WORKDAY,
    )
    assert "from 09:00 to 24:00." in plain_meeting_overview(late)
    assert meeting_prompt_variables(late)["meetings"] == "09:00-24:00 Late"


def test_merge_intervals_joins_touching_and_drops_empty() -> None:
    a, b, c = at(9), at(10), at(11)
    assert merge_intervals([(b, c), (a, b), (c, c)]) == [(a, c)]


# --------------------------------------------------------------------------- takeaways model


def post(
    ts: str,
    kind: str = "idea",
    channel: str = "CIDEAS",
    reactions: int = 0,
    replies: int = 0,
    private: bool = False,
    dup: bool = False,
    created: datetime | None = None,
    **kw: object,
) -> StoredPost:
    triage = None
    if dup:
        # A verdict as stored before Triage.duplicates became Triage.similar: still read.
        triage = json.dumps(
            {
                "kind": kind,
                "confidence": 0.9,
                "title": f"Title {ts}",
                "summary": "",
                "analyzer": "t",
                "likely_duplicate": True,
                "duplicates": [
                    {"key": "IDEA-7", "score": 0.9, "url": "https://jira.example/browse/IDEA-7"}
                ],
            }
        )
    return StoredPost(
        channel=channel,
        ts=ts,
        user="U1",
        text=f"text of {ts}",
        created=created or datetime(2026, 4, 15, 10, tzinfo=UTC) + timedelta(seconds=float(ts)),
        kind=kind,
        title=f"Title {ts}",
        summary=f"Summary {ts}",
        permalink=f"https://example.slack.com/archives/{channel}/p{ts}",
        reactions=reactions,
        replies=replies,
        is_private=private,
        triage_json=triage,
        **kw,  # type: ignore[arg-type]
    )


def filing(
    ts: str, state: str = "filed", key: str | None = "IDEA-1", channel: str = "CIDEAS"
) -> Filing:
    return Filing(
        channel=channel,
        ts=ts,
        state=state,
        owner="w",
        issue_key=key,
        issue_url=f"https://jira.example/browse/{key}" if key else None,
        updated=datetime(2026, 4, 15, 12, tzinfo=UTC),
    )


def test_takeaway_digest_counts_filed_duplicates_top_and_waiting() -> None:
    posts = [
        post("1", "idea", reactions=5, replies=2),
        post("2", "bug", reactions=1),
        post("3", "idea", dup=True, reactions=3),
        post("4", "question"),
        post("5", "idea"),
        post("6", "other", replies=9),
        post("7", "idea", thread_ts="1"),  # a reply in a thread is no new post
    ]
    filings = [filing("1", "filed", "IDEA-1"), filing("5", "queued", None), filing("2", "failed")]
    d = build_takeaway_digest(DAY, "UTC", "CDIGEST", posts, filings)
    assert d.total == 6
    assert dict(d.by_kind) == {"idea": 3, "bug": 1, "question": 1, "other": 1}
    assert [(f.key, f.url, f.title) for f in d.filed] == [
        ("IDEA-1", "https://jira.example/browse/IDEA-1", "Title 1")
    ]
    assert [(x.idea.ts, x.keys) for x in d.duplicates] == [("3", ("IDEA-7",))]
    assert [i.ts for i in d.top] == ["6", "1", "3", "2"]
    # 1 filed, 3 a duplicate, 5 queued for filing; 2 failed -> still waiting
    assert [i.ts for i in d.waiting] == ["2"]
    assert [i.ts for i in d.takeaway_ideas] == ["6", "1", "3"]


def test_private_channel_content_only_reaches_that_same_channel() -> None:
    posts = [
        post("1", channel="CPUBLIC", reactions=1),
        post("2", channel="GSECRET", private=True, reactions=10),
    ]
    filings = [
        filing("2", key="SEC-1", channel="GSECRET"),
        filing("9", key="OLD-1", channel="GOTHER"),
    ]
    public = build_takeaway_digest(
        DAY, "UTC", "CDIGEST", posts, filings, private_channels={"GOTHER"}
    )
    assert [i.channel for i in public.top] == ["CPUBLIC"]
    assert public.filed == ()
    assert public.hidden_private == 1
    inside = build_takeaway_digest(
        DAY, "UTC", "GSECRET", posts, filings, private_channels={"GOTHER"}
    )
    assert {i.channel for i in inside.top} == {"CPUBLIC", "GSECRET"}
    assert [f.key for f in inside.filed] == ["SEC-1"]
    assert visible_to("GSECRET", True, "GSECRET") and not visible_to("GSECRET", True, "GOTHER")
    variables = takeaway_prompt_variables(public, posts, "CDIGEST")
    assert "Title 2" not in variables["posts"] and "Title 1" in variables["posts"]


def test_takeaway_prompt_variables_nest_thread_replies() -> None:
    posts = [post("1", replies=1), post("2", thread_ts="1", channel="CIDEAS", kind="other")]
    d = build_takeaway_digest(DAY, "UTC", "CDIGEST", posts, [])
    v = takeaway_prompt_variables(d, posts, "CDIGEST")
    assert v == {"day": "2026-04-15", "posts": "- Title 1: Summary 1\n  - text of 2"}


# --------------------------------------------------------------------------- the run


def _render_m(d: MeetingDigest) -> Rendered:
    return Rendered(f"meetings {d.day}", [{"type": "section"}], f"{d.count} meetings")


def _render_t(d: TakeawayDigest) -> Rendered:
    return Rendered(f"takeaways {d.day}", [{"type": "section"}], f"{d.total} posts")


def service(
    store: SqlStore, chat: RecordingChat | None, calendar: FixedCalendar | None = None, **kw: object
) -> DigestService:
    return DigestService(
        store=store,
        chat=chat,
        calendar=calendar or FixedCalendar([meeting("Standup", at(9), at(9, 15))]),
        tz="Europe/Berlin",
        workday=WORKDAY,
        render_meetings=_render_m,
        render_takeaways=_render_t,
        **kw,  # type: ignore[arg-type]
    )


def test_run_posts_once_then_says_already_posted_and_force_posts_again(store: SqlStore) -> None:
    chat = RecordingChat()
    svc = service(store, chat)
    first = svc.run("meetings", "CDIGEST", DAY)
    assert first.status == "posted" and first.message_ts
    assert [(p["channel"], p["text"], p["blocks"]) for p in chat.posts] == [
        ("CDIGEST", "meetings 2026-04-15", [{"type": "section"}])
    ]
    payload = chat.posts[0]["metadata"]["event_payload"]
    assert payload["data"]["key"] == "meetings:CDIGEST:2026-04-15"
    assert payload["metadata"]["type"] == "ideabot_digest" and payload["metadata"]["version"] == 1
    again = svc.run("meetings", "CDIGEST", DAY)
    assert (again.status, again.message_ts) == ("already_posted", first.message_ts)
    assert len(chat.posts) == 1
    other_channel = svc.run("meetings", "COTHER", DAY)
    assert other_channel.status == "posted"
    forced = svc.run("meetings", "CDIGEST", DAY, force=True)
    assert forced.status == "posted" and forced.message_ts != first.message_ts
    record = store.get_digest("meetings", "CDIGEST", DAY)
    assert record is not None and (record.state, record.message_ts) == ("posted", forced.message_ts)
    assert len(chat.posts) == 3


def test_dry_run_claims_nothing_and_posts_nothing(store: SqlStore) -> None:
    chat = RecordingChat()
    result = service(store, chat).run("takeaways", "CDIGEST", DAY, dry_run=True)
    assert result.status == "dry_run"
    assert result.rendered is not None and result.rendered.text == "0 posts"
    assert chat.posts == [] and store.get_digest("takeaways", "CDIGEST", DAY) is None


def test_failed_post_releases_the_claim_so_a_retry_posts(store: SqlStore) -> None:
    chat = RecordingChat(fail_next=1)
    svc = service(store, chat)
    failed = svc.run("meetings", "CDIGEST", DAY)
    assert failed.status == "failed" and "ConnectionError" in (failed.error or "")
    assert store.get_digest("meetings", "CDIGEST", DAY) is None
    assert svc.run("meetings", "CDIGEST", DAY).status == "posted"
    assert len(chat.posts) == 1


def test_day_defaults_to_today_in_the_digest_zone(store: SqlStore) -> None:
    chat = RecordingChat()
    # 23:30 UTC on the 14th is already the 15th in Berlin.
    now = datetime(2026, 4, 14, 23, 30, tzinfo=UTC)
    cal = FixedCalendar()
    result = service(store, chat, cal).run("meetings", "CDIGEST", now=now)
    assert result.day == DAY and cal.asked == [DAY]


def test_concurrent_runs_on_two_store_objects_post_once(store_url: str) -> None:
    chat = RecordingChat()
    stores = [SqlStore(store_url) for _ in range(4)]
    barrier = threading.Barrier(len(stores))
    results: list[str] = []

    def go(s: SqlStore) -> None:
        barrier.wait()
        results.append(service(s, chat).run("meetings", "CDIGEST", DAY).status)

    threads = [threading.Thread(target=go, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert len(chat.posts) == 1
    assert sorted(results).count("posted") == 1
    assert set(results) <= {"posted", "already_posted", "in_progress"}


def test_llm_text_is_used_and_a_failing_writer_falls_back(store: SqlStore) -> None:
    seen: list[tuple[str, dict[str, str]]] = []

    def writer(name: str, variables: dict[str, str]) -> str | None:
        seen.append((name, variables))
        return "A calm day. Plenty of focus time."

    d = service(store, RecordingChat(), write=writer).build_meetings(DAY)
    assert (d.overview, d.overview_source) == ("A calm day. Plenty of focus time.", "llm")
    assert seen[0][0] == "meetings" and "09:00-09:15 Standup" in seen[0][1]["meetings"]

    def broken(name: str, variables: dict[str, str]) -> str | None:
        raise RuntimeError("provider down")

    d2 = service(store, RecordingChat(), write=broken).build_meetings(DAY)
    assert d2.overview_source == "offline" and d2.overview.startswith("1 meeting today")


def test_takeaways_from_the_store_respect_privacy(store: SqlStore) -> None:
    now = datetime.now(UTC)
    day = now.date()
    store.save_post(post("1", channel="CPUB", reactions=2, created=now))
    store.save_post(post("2", channel="GPRIV", private=True, reactions=5, created=now))
    assert store.claim_filing("GPRIV", "2", "w")
    store.update_filing("GPRIV", "2", state="filed", issue_key="SEC-1", issue_url="https://j/SEC-1")
    # A filing today of a post the store does not know, in a channel Slack says is private.
    assert store.claim_filing("GHIDDEN", "99", "w")
    store.update_filing("GHIDDEN", "99", state="filed", issue_key="HID-1")
    chat = RecordingChat(private={"GHIDDEN", "GPRIV"})
    svc = DigestService(
        store=store,
        chat=chat,
        calendar=None,
        tz="UTC",
        workday=WORKDAY,
        render_meetings=_render_m,
        render_takeaways=_render_t,
        idea_channels=IdeaChannels(("CPUB", "GPRIV")),
    )
    public = svc.build_takeaways(day, "CDIGEST")
    assert [i.channel for i in public.top] == ["CPUB"] and public.filed == ()
    private = svc.build_takeaways(day, "GPRIV")
    assert [f.key for f in private.filed] == ["SEC-1"]
    assert [i.channel for i in private.top] == ["GPRIV", "CPUB"]


def test_unknown_digest_kind_is_refused(store: SqlStore) -> None:
    with pytest.raises(ValueError):
        service(store, RecordingChat()).run("weekly", "C", DAY)  # type: ignore[arg-type]


def test_prompt_variables_match_the_prompt_files() -> None:
    from bot.adapters.prompts import load_prompt

    d = build_meeting_digest(DAY, CalendarDay([], []), "Europe/Berlin", WORKDAY)
    load_prompt("meetings").inputs(**meeting_prompt_variables(d))
    t = build_takeaway_digest(DAY, "UTC", "C", [post("1")], [])
    load_prompt("takeaways").inputs(**takeaway_prompt_variables(t, [post("1")], "C"))
