"""Property test: no builder lets hostile user text broadcast, mention or forge a link.

Every string that reaches Slack as mrkdwn (section/context text and the notification text) is
checked: after removing the links the builders made from URLs *we* passed in, no ``<`` is left
(so no ``<!channel>``, ``<@U…>``, ``<#C…>``, ``<!subteam^…>`` or ``<https://evil|click>``), no bare
``&`` that is not an entity, and no plain-word ``@channel``/``@here``/``@everyone``.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.domain.digests import (
    DuplicateLine,
    FiledLine,
    FreeBlock,
    IdeaLine,
    MeetingDigest,
    TakeawayDigest,
)
from bot.domain.filing import FilingResult
from bot.domain.models import Match, Triage
from bot.domain.ports import Meeting
from bot.slack import blocks, digest_blocks
from bot.slack.mrkdwn import escape_mrkdwn, link, neutralise_broadcasts

FRAGMENTS = [
    "<!channel>",
    "<!here>",
    "<!here|here>",
    "<!everyone>",
    "<!subteam^S123|@team>",
    "<@U123>",
    "<@W999|boss>",
    "<#C123|general>",
    "<https://evil.example|click>",
    "<mailto:x@y.z|mail>",
    "@channel",
    "@Here",
    "@everyone",
    "&",
    "&amp;",
    "&lt;!channel&gt;",
    "<",
    ">",
    "|",
    "\n",
    "*",
    "`",
    "\u2060",
    "\u200b",
    "!channel",
    "{noformat}",
]

hostile = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.text(max_size=12)), min_size=0, max_size=12
).map("".join)
nonempty_hostile = hostile.map(lambda s: s if s.strip() else s + "x")
SAFE_URLS = ["https://jira.example/browse/PROJ-1", "https://team.slack.com/archives/C1/p1"]
urls = st.one_of(st.none(), st.sampled_from(SAFE_URLS), hostile)
# Links the builders may emit: <http(s)://…|label> with a URL free of spaces, pipes and brackets.
_OUR_LINK = re.compile(r"<(https?://[^\s<>|]+)\|([^<>|]*)>")
_BROADCAST = re.compile(r"@(channel|here|everyone)\b", re.IGNORECASE)
_BARE_AMP = re.compile(r"&(?!(amp|lt|gt);)")
_WELL_FORMED = re.compile(r"https?://[^\s<>|]+")


def _mrkdwn_texts(obj: Any) -> list[str]:
    out: list[str] = []
    if isinstance(obj, dict):
        if obj.get("type") == "mrkdwn" and isinstance(obj.get("text"), str):
            out.append(obj["text"])
        for v in obj.values():
            out += _mrkdwn_texts(v)
    elif isinstance(obj, list):
        for v in obj:
            out += _mrkdwn_texts(v)
    return out


def assert_safe(text: str, allowed_urls: set[str]) -> None:
    """*text* cannot notify anyone and links only to *allowed_urls*."""
    for m in _OUR_LINK.finditer(text):
        assert m.group(1).replace("&amp;", "&") in allowed_urls, text
    rest = _OUR_LINK.sub(lambda m: m.group(2), text)
    assert "<" not in rest, text
    assert not _BROADCAST.search(rest), text
    assert not _BARE_AMP.search(rest), text


def _check(fallback: str, blks: list[dict[str, Any]], allowed: set[str]) -> None:
    assert_safe(fallback, allowed)
    for t in _mrkdwn_texts(blks):
        assert_safe(t, allowed)
    assert len(blks) <= 50


def _linkable(value: str | None) -> set[str]:
    """The URL a builder may link to when given *value*: itself if it is a well-formed http(s) URL.

    A URL we were handed (a Jira or Slack permalink) may become a link; what the property
    guards is that nothing else can: no injected target, no second link, no broken bracket.
    """
    if value and _WELL_FORMED.fullmatch(value):
        return {value, value.replace("&amp;", "&")}
    return set()


def _triage(title: str, summary: str, matches: list[Match]) -> Triage:
    return Triage(
        kind="idea",
        confidence=0.9,
        title=title,
        summary=summary,
        analyzer="t",
        similar=tuple(matches),
    )


def _match(key: str, title: str, url: str | None) -> Match:
    return Match(key=key, title=title, score=0.9, url=url)


FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FAST
@given(hostile, hostile)
@example("http://0", "x")  # a well-formed URL handed to link() may be linked, to itself only
def test_escape_and_neutralise_are_safe(text: str, label: str) -> None:
    assert_safe(escape_mrkdwn(text), set())
    assert_safe(neutralise_broadcasts(escape_mrkdwn(text)), set())
    assert_safe(link(SAFE_URLS[0], label), {SAFE_URLS[0]})
    assert_safe(link(text, label), _linkable(text))


@FAST
@given(nonempty_hostile, hostile, hostile, hostile, urls)
def test_triage_reply_and_duplicate_offer(
    title: str, summary: str, key: str, mtitle: str, url: str | None
) -> None:
    allowed = _linkable(url)
    m = _match(key or "K", mtitle, url)
    try:
        triage = _triage(title, summary, [m])
    except ValueError:  # a title that cleans to nothing is refused before any builder runs
        return
    _check(*blocks.build_triage_reply(triage, "C1", "1.2", "ticket"), allowed)
    _check(*blocks.build_duplicate_offer(m, "C1", "1.2"), allowed)
    assert_safe(blocks.match_line(m), allowed)


@FAST
@given(
    st.sampled_from(
        ["filed", "commented", "already", "queued", "rejected", "in_progress", "denied"]
    ),
    hostile,
    urls,
    hostile,
)
def test_filing_results_notices_and_denied(
    status: Any, key: str, url: str | None, message: str
) -> None:
    allowed = _linkable(url)
    result = FilingResult(status, key=key or None, url=url, message=message or None)
    _check(*blocks.build_filing_result(result), allowed)
    _check(*blocks.build_notice(message), set())
    _check(*blocks.build_denied(message or None), set())


@FAST
@given(hostile, hostile, urls, hostile, hostile)
def test_meeting_digest(
    title: str, location: str, video: str | None, overview: str, feed: str
) -> None:
    tz = "Europe/Berlin"
    start = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)
    meetings = tuple(
        Meeting(
            title=title,
            start=start + timedelta(hours=i),
            end=start + timedelta(hours=i, minutes=30),
            location=location,
            video_url=video,
        )
        for i in range(3)
    )
    all_day = (Meeting(title=title, start=start, end=start + timedelta(days=1), all_day=True),)
    d = MeetingDigest(
        day=date(2024, 3, 4),
        tz=tz,
        meetings=meetings,
        all_day=all_day,
        total_minutes=90,
        free_blocks=(FreeBlock(start, start + timedelta(minutes=30)),),
        workday=(time(9), time(17, 30)),
        failed_feeds=(feed,),
        overview=overview,
    )
    allowed = _linkable(video)
    _check(digest_blocks.meeting_summary(d), digest_blocks.build_meeting_blocks(d), allowed)


@FAST
@given(hostile, hostile, urls, hostile, hostile)
def test_takeaway_digest(
    title: str, summary: str, url: str | None, key: str, takeaways: str
) -> None:
    idea = IdeaLine(
        channel="C1",
        ts="1.2",
        kind="idea",
        title=title,
        summary=summary,
        permalink=url,
        reactions=3,
        replies=1,
    )
    for llm in (takeaways, ""):
        d = TakeawayDigest(
            day=date(2024, 3, 4),
            tz="UTC",
            channels=("C1",),
            by_kind={"idea": 1},
            total=1,
            filed=(FiledLine(key=key, url=url, title=title, permalink=url),),
            duplicates=(DuplicateLine(idea=idea, keys=(key,), urls=(url,)),),
            top=(idea,),
            waiting=(idea,),
            takeaways=llm,
            takeaway_ideas=(idea,),
        )
        allowed = _linkable(url)
        _check(digest_blocks.takeaway_summary(d), digest_blocks.build_takeaway_blocks(d), allowed)


def test_long_escaped_match_titles_never_leave_a_link_open() -> None:
    # 150 "<" escape to 600 characters each: ten such lines overflow a section.
    ms = [_match(f"K-{i}", "<" * 150, SAFE_URLS[0]) for i in range(10)]
    _, blks = blocks.build_triage_reply(_triage("x", "y", ms), "C1", "1.2", "ticket")
    for t in _mrkdwn_texts(blks):
        assert len(t) <= 3000
        assert_safe(t, {SAFE_URLS[0]})
    assert any("more_" in t for t in _mrkdwn_texts(blks))


def test_truncate_drops_a_cut_link_or_entity_whole() -> None:
    from bot.slack.mrkdwn import truncate

    linked = "see " + link(SAFE_URLS[0], "a title")
    for n in range(5, len(linked)):
        assert_safe(truncate(linked, n), {SAFE_URLS[0]})
    assert truncate("a &amp; b", 5) == "a …"
    assert digest_blocks._cut("x " + link(SAFE_URLS[0], "t" * 40), 30) == "x…"
