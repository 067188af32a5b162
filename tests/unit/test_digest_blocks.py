"""Block Kit and text rendering of the digests: content, Slack limits, escaping, no broadcasts."""

from __future__ import annotations

import json
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from bot.domain.digests import (
    DuplicateLine,
    FiledLine,
    IdeaLine,
    MeetingDigest,
    TakeawayDigest,
    build_meeting_digest,
    plain_meeting_overview,
)
from bot.domain.ports import CalendarDay, Meeting
from bot.slack.digest_blocks import (
    MAX_BLOCKS,
    MAX_SECTION,
    build_meeting_blocks,
    build_takeaway_blocks,
    esc,
    link,
    meeting_summary,
    meeting_text,
    takeaway_summary,
    takeaway_text,
)

BERLIN = ZoneInfo("Europe/Berlin")
DAY = date(2026, 4, 15)
WORKDAY = (time(9), time(17, 30))


def at(h: int, m: int = 0) -> datetime:
    return datetime.combine(DAY, time(h, m), tzinfo=BERLIN)


def meeting_digest(meetings: list[Meeting], failed: list[str] | None = None) -> MeetingDigest:
    from dataclasses import replace

    d = build_meeting_digest(DAY, CalendarDay(meetings, failed or []), "Europe/Berlin", WORKDAY)
    return replace(d, overview=plain_meeting_overview(d))


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    for b in blocks:
        if "text" in b:
            out.append(b["text"]["text"])
        for e in b.get("elements", []):
            out.append(e["text"])
    return out


def check_limits(blocks: list[dict[str, Any]]) -> None:
    assert len(blocks) <= MAX_BLOCKS
    for b in blocks:
        if b["type"] == "section":
            assert len(b["text"]["text"]) <= MAX_SECTION
        if b["type"] == "header":
            assert len(b["text"]["text"]) <= 150
    dumped = json.dumps(blocks)
    for bad in ("<!channel>", "<!here>", "<!everyone>", "@channel", "@here", "@everyone"):
        assert bad not in dumped


def test_meeting_blocks_show_times_titles_links_free_blocks_and_failed_feeds() -> None:
    d = meeting_digest(
        [
            Meeting("Standup", at(9), at(9, 15), video_url="https://meet.google.com/abc-defg-hij"),
            Meeting("Roadmap & <budget>", at(11), at(12), location="Room 4"),
            Meeting("Company holiday", at(0), at(0) + timedelta(days=1), all_day=True),
        ],
        failed=["feed 2 (calendar.google.com)"],
    )
    blocks = build_meeting_blocks(d)
    check_limits(blocks)
    assert blocks[0] == {
        "type": "header",
        "text": {"type": "plain_text", "text": "Meetings · Wednesday 15 April 2026", "emoji": True},
    }
    body = "\n".join(texts(blocks))
    assert "*09:00–09:15*  Standup · <https://meet.google.com/abc-defg-hij|Join>" in body
    assert "*11:00–12:00*  Roadmap &amp; &lt;budget&gt; · Room 4" in body
    assert "• Company holiday" in body
    assert "09:15–11:00 (1 h 45 min), 12:00–17:30 (5 h 30 min)" in body
    assert "2 meetings · 1 h 15 min in meetings · times in Europe/Berlin" in body
    assert ":warning: Could not read feed 2 (calendar.google.com)" in body
    assert (
        meeting_summary(d)
        == "Meetings for Wednesday 15 April 2026: 2 meetings, 1 h 15 min in total"
    )


def test_meeting_text_is_readable_plain_text() -> None:
    d = meeting_digest(
        [
            Meeting("Standup", at(9), at(9, 15), video_url="https://meet.google.com/abc"),
            Meeting(
                "Review",
                at(14),
                at(15),
                location="https://zoom.us/j/1",
                video_url="https://zoom.us/j/1",
            ),
        ]
    )
    text = meeting_text(d)
    assert text.splitlines()[0] == "Meetings · Wednesday 15 April 2026 (times in Europe/Berlin)"
    assert "  09:00–09:15  Standup · https://meet.google.com/abc" in text
    assert "  14:00–15:00  Review · https://zoom.us/j/1" in text  # location == link: once
    assert "Free in the working day (09:00–17:30): 09:15–14:00 (4 h 45 min), 15:00–17:30" in text
    assert "*" not in text and "<" not in text


def test_a_day_with_many_meetings_is_trimmed_with_and_n_more() -> None:
    many = [
        Meeting(
            f"Meeting {i} " + "x" * 200,
            at(8) + timedelta(minutes=5 * i),
            at(8) + timedelta(minutes=5 * i + 5),
        )
        for i in range(120)
    ]
    blocks = build_meeting_blocks(meeting_digest(many))
    check_limits(blocks)
    body = "\n".join(texts(blocks))
    assert "_…and 95 more_" in body
    assert "Meeting 0 " in body and "Meeting 24 " in body and "Meeting 25 " not in body


def test_broadcasts_and_markup_in_user_text_are_defused() -> None:
    evil = "<!channel> ping @here & <@U123> <https://evil.example|click>"
    d = meeting_digest([Meeting(evil, at(10), at(11), location="@everyone room")])
    blocks = build_meeting_blocks(d)
    check_limits(blocks)
    body = "\n".join(texts(blocks))
    assert "&lt;!channel&gt; ping @\u200bhere &amp; &lt;@U123&gt;" in body
    assert "@\u200beveryone room" in body
    assert esc("a<b>&c") == "a&lt;b&gt;&amp;c"
    assert link("javascript:alert(1)", "x") == "x"
    assert link("https://ok.example/a?b=1&c=2", "a|b") == "<https://ok.example/a?b=1&amp;c=2|a¦b>"
    assert "@here" not in meeting_text(d) and "@\u200bhere" in meeting_text(d)


def idea(ts: str, title: str, kind: str = "idea", reactions: int = 0, replies: int = 0) -> IdeaLine:
    return IdeaLine(
        channel="CIDEAS",
        ts=ts,
        kind=kind,
        title=title,
        summary=f"Summary of {title}",
        permalink=f"https://example.slack.com/archives/CIDEAS/p{ts}",
        reactions=reactions,
        replies=replies,
    )


def takeaway_digest(**kw: Any) -> TakeawayDigest:
    a, b, c = (
        idea("1", "Dark mode", reactions=6, replies=3),
        idea("2", "Login loop", "bug", 2),
        idea("3", "CSV export"),
    )
    base: dict[str, Any] = dict(
        day=DAY,
        tz="Europe/Berlin",
        channels=("CIDEAS",),
        by_kind={"idea": 2, "bug": 1},
        total=3,
        filed=(
            FiledLine("IDEA-42", "https://jira.example/browse/IDEA-42", "Dark mode", a.permalink),
        ),
        duplicates=(DuplicateLine(c, ("IDEA-7",), ("https://jira.example/browse/IDEA-7",)),),
        top=(a, b),
        waiting=(b,),
        takeaway_ideas=(a, b),
    )
    base.update(kw)
    return TakeawayDigest(**base)


def test_takeaway_blocks_list_every_part_with_links() -> None:
    d = takeaway_digest()
    blocks = build_takeaway_blocks(d)
    check_limits(blocks)
    body = "\n".join(texts(blocks))
    assert "*3 new posts:* 2 ideas, 1 bug" in body
    assert (
        "*Key takeaways*\n• <https://example.slack.com/archives/CIDEAS/p1|Dark mode>"
        " — Summary of Dark mode" in body
    )
    assert "*Tickets filed (1)*\n• <https://jira.example/browse/IDEA-42|IDEA-42>" in body
    assert (
        "*Duplicates found (1)*\n• <https://example.slack.com/archives/CIDEAS/p3|CSV export> → <https://jira.example/browse/IDEA-7|IDEA-7>"
        in body
    )
    assert "Dark mode> — 6 reactions, 3 replies" in body
    assert (
        "*Waiting to be filed (1)*\n"
        "• <https://example.slack.com/archives/CIDEAS/p2|Login loop> (bug)" in body
    )
    assert takeaway_summary(d) == "Takeaways for Wednesday 15 April 2026: 3 new posts, 1 filed"


def test_takeaway_llm_text_is_escaped_and_replaces_the_offline_list() -> None:
    d = takeaway_digest(takeaways="• People want <dark mode> & exports\n• Login loop hurts")
    body = "\n".join(texts(build_takeaway_blocks(d)))
    assert (
        "*Key takeaways*\n• People want &lt;dark mode&gt; &amp; exports\n• Login loop hurts" in body
    )
    assert "Summary of Dark mode" not in body
    assert "Key takeaways:\n• People want <dark mode> & exports" in takeaway_text(d)


def test_empty_takeaway_day() -> None:
    d = takeaway_digest(
        by_kind={}, total=0, filed=(), duplicates=(), top=(), waiting=(), takeaway_ideas=()
    )
    blocks = build_takeaway_blocks(d)
    assert texts(blocks)[1] == "No new posts in the idea channels today."
    assert takeaway_text(d).splitlines() == [
        "Takeaways · Wednesday 15 April 2026",
        "No new posts today.",
    ]


def test_huge_takeaway_day_stays_within_limits() -> None:
    ideas = tuple(idea(str(i), f"Idea {i} " + "y" * 400, reactions=i) for i in range(300))
    d = takeaway_digest(
        total=300,
        by_kind={"idea": 300},
        top=ideas[:5],
        waiting=ideas,
        filed=tuple(FiledLine(f"IDEA-{i}", None, f"t{i} " + "z" * 300) for i in range(200)),
        duplicates=tuple(DuplicateLine(i, ("IDEA-1",), (None,)) for i in ideas),
        takeaways="x" * 5000,
    )
    blocks = build_takeaway_blocks(d)
    check_limits(blocks)
    body = "\n".join(texts(blocks))
    assert "_…and 175 more_" in body and "_…and 275 more_" in body


def test_takeaway_text_rendering() -> None:
    text = takeaway_text(takeaway_digest())
    assert text.splitlines()[:2] == [
        "Takeaways · Wednesday 15 April 2026",
        "3 new posts: 2 ideas, 1 bug",
    ]
    assert "  IDEA-42  Dark mode  https://jira.example/browse/IDEA-42" in text
    assert "  CSV export → IDEA-7" in text
    assert "  Dark mode — 6 reactions, 3 replies" in text
    assert "Waiting to be filed (1):\n  Login loop (bug)" in text


def test_meetings_over_midnight_name_the_day_at_both_ends() -> None:
    d = meeting_digest(
        [
            Meeting("Night shift", at(22) - timedelta(days=1), at(2)),
            Meeting("Release", at(21), at(1) + timedelta(days=1)),
            Meeting("Late call", at(23), at(0) + timedelta(days=1)),
        ]
    )
    body = "\n".join(texts(build_meeting_blocks(d)))
    assert "*Tue 22:00–Wed 02:00*  Night shift" in body
    assert "*Wed 21:00–Thu 01:00*  Release" in body
    assert "*23:00–24:00*  Late call" in body  # ends at midnight: no other day to name
    text = meeting_text(d)
    assert "  Tue 22:00–Wed 02:00  Night shift" in text
    assert "  Wed 21:00–Thu 01:00  Release" in text
