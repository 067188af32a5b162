"""The two daily digests as plain data: what the morning meeting post and the evening takeaway
post say. Pure functions over domain types; rendering lives in ``bot.slack.digest_blocks``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

from bot.domain.models import KINDS, Triage, plain_text
from bot.domain.notes import split_idea_ts
from bot.domain.ports import CalendarDay, Filing, Meeting, StoredPost

logger = logging.getLogger(__name__)

DigestKind = Literal["meetings", "takeaways"]
DIGEST_KINDS: tuple[DigestKind, ...] = ("meetings", "takeaways")

FILED_STATES = frozenset({"filed", "commented"})
IN_FLIGHT_STATES = frozenset({"claimed", "queued"})
WAITING_KINDS = frozenset({"idea", "bug"})
TOP_N = 5
WANTED_DAYS = 7  # "most wanted": the open ideas of the last week with the most votes
TAKEAWAYS_OFFLINE_N = 3


# --------------------------------------------------------------------------- meetings


@dataclass(frozen=True)
class FreeBlock:
    start: datetime
    end: datetime

    @property
    def minutes(self) -> int:
        return elapsed_minutes(self.start, self.end)


def elapsed_minutes(start: datetime, end: datetime) -> int:
    """Real minutes between two aware datetimes (same-zone subtraction is wall-clock time)."""
    return int((end.astimezone(UTC) - start.astimezone(UTC)).total_seconds() // 60)


@dataclass(frozen=True)
class MeetingDigest:
    """Today's meetings, in the digest's time zone."""

    day: date
    tz: str
    meetings: tuple[Meeting, ...]  # timed meetings, sorted by start
    all_day: tuple[Meeting, ...]
    total_minutes: int  # overlaps merged, clipped to the day
    free_blocks: tuple[FreeBlock, ...]
    workday: tuple[time, time]
    failed_feeds: tuple[str, ...] = ()
    overview: str = ""
    overview_source: str = "offline"  # or the prompt's name@version / model

    @property
    def count(self) -> int:
        return len(self.meetings)


def merge_intervals(
    intervals: Iterable[tuple[datetime, datetime]],
) -> list[tuple[datetime, datetime]]:
    """Sorted, non-overlapping union of *intervals* (touching intervals are joined)."""
    merged: list[tuple[datetime, datetime]] = []
    for s, e in sorted(i for i in intervals if i[1] > i[0]):
        if merged and s <= merged[-1][1]:
            if e > merged[-1][1]:
                merged[-1] = (merged[-1][0], e)
        else:
            merged.append((s, e))
    return merged


def build_meeting_digest(
    day: date,
    calendar_day: CalendarDay,
    tz: str,
    workday: tuple[time, time],
    min_free_minutes: int = 15,
) -> MeetingDigest:
    """Counts, total time (overlaps merged), and free blocks of the working day for *day*."""
    zone = ZoneInfo(tz)
    day_start = datetime.combine(day, time(0), tzinfo=zone)
    day_end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    timed = sorted(
        (m for m in calendar_day.meetings if not m.all_day),
        key=lambda m: (m.start, m.end, m.title),
    )
    all_day = tuple(m for m in calendar_day.meetings if m.all_day)
    # Interval arithmetic in UTC: on a DST change day local wall-clock differences are wrong.
    day_start, day_end = day_start.astimezone(UTC), day_end.astimezone(UTC)
    clipped = [
        (max(m.start.astimezone(UTC), day_start), min(m.end.astimezone(UTC), day_end))
        for m in timed
    ]
    busy = merge_intervals(clipped)
    total = sum(int((e - s).total_seconds()) for s, e in busy) // 60

    work_start = datetime.combine(day, workday[0], tzinfo=zone).astimezone(UTC)
    work_end = datetime.combine(day, workday[1], tzinfo=zone).astimezone(UTC)
    free: list[FreeBlock] = []
    cursor = work_start
    for s, e in busy:
        if e <= cursor:
            continue
        if s >= work_end:
            break
        if s > cursor:
            free.append(FreeBlock(cursor, min(s, work_end)))
        cursor = max(cursor, e)
    if cursor < work_end:
        free.append(FreeBlock(cursor, work_end))
    free = [
        FreeBlock(b.start.astimezone(zone), b.end.astimezone(zone))
        for b in free
        if b.minutes >= min_free_minutes
    ]
    return MeetingDigest(
        day=day,
        tz=tz,
        meetings=tuple(timed),
        all_day=all_day,
        total_minutes=total,
        free_blocks=tuple(free),
        workday=workday,
        failed_feeds=tuple(calendar_day.failed_feeds),
    )


def format_duration(minutes: int) -> str:
    """90 -> '1 h 30 min', 60 -> '1 h', 25 -> '25 min'."""
    h, m = divmod(max(0, minutes), 60)
    if h and m:
        return f"{h} h {m} min"
    if h:
        return f"{h} h"
    return f"{m} min"


def clock_time(at: datetime, day: date) -> str:
    """*at* as a clock time on *day*: '09:00'; midnight ending *day* is '24:00'; any other day
    is named: 'Tue 22:00'."""
    if at.date() == day:
        return f"{at:%H:%M}"
    if at == datetime.combine(day + timedelta(days=1), time(0), tzinfo=at.tzinfo):
        return "24:00"
    return f"{at:%a %H:%M}"


def meeting_span(start: datetime, end: datetime, sep: str = "–") -> str:
    """'09:00–10:00'; over midnight both ends name their day: 'Tue 22:00–Wed 01:00'."""
    day = start.date()
    if end.date() == day or clock_time(end, day) == "24:00":
        return f"{start:%H:%M}{sep}{clock_time(end, day)}"
    return f"{start:%a %H:%M}{sep}{end:%a %H:%M}"


def plain_meeting_overview(d: MeetingDigest) -> str:
    """The offline overview: two short sentences built from the numbers."""
    if not d.meetings:
        first = "No meetings today"
        if d.all_day:
            first += f" ({', '.join(m.title for m in d.all_day[:3])})"
        first += "."
    else:
        noun = "meeting" if d.count == 1 else "meetings"
        first = (
            f"{d.count} {noun} today, {format_duration(d.total_minutes)} in total, "
            f"from {clock_time(d.meetings[0].start, d.day)} "
            f"to {clock_time(max(m.end for m in d.meetings), d.day)}."
        )
    if d.free_blocks:
        longest = max(d.free_blocks, key=lambda b: (b.minutes, -b.start.timestamp()))
        second = (
            f"Longest free block: {longest.start:%H:%M}–{longest.end:%H:%M} "
            f"({format_duration(longest.minutes)})."
        )
    else:
        second = "No free block of the working day is left."
    return f"{first} {second}"


def meeting_prompt_variables(d: MeetingDigest) -> dict[str, str]:
    """Variables for prompts/meetings.prompt.yaml (``day``, ``meetings``)."""
    lines = [f"{meeting_span(m.start, m.end, '-')} {plain_text(m.title)}" for m in d.meetings]
    lines += [f"all day {plain_text(m.title)}" for m in d.all_day]
    return {"day": f"{d.day:%A} {d.day.day} {d.day:%B %Y}", "meetings": "\n".join(lines)}


# --------------------------------------------------------------------------- takeaways


@dataclass(frozen=True)
class IdeaLine:
    """One post as the takeaway digest shows it."""

    channel: str
    ts: str
    kind: str
    title: str
    summary: str = ""
    permalink: str | None = None
    reactions: int = 0
    replies: int = 0
    votes: int = 0  # people who voted (bot.domain.votes)

    @property
    def engagement(self) -> int:
        return self.reactions + self.replies


@dataclass(frozen=True)
class FiledLine:
    key: str
    url: str | None
    title: str
    permalink: str | None = None


@dataclass(frozen=True)
class DuplicateLine:
    idea: IdeaLine
    keys: tuple[str, ...]
    urls: tuple[str | None, ...]


@dataclass(frozen=True)
class TakeawayDigest:
    """What happened in the idea channels on *day*, limited to what the digest channel may see."""

    day: date
    tz: str
    channels: tuple[str, ...]
    by_kind: Mapping[str, int]
    total: int
    filed: tuple[FiledLine, ...]
    duplicates: tuple[DuplicateLine, ...]
    top: tuple[IdeaLine, ...]
    waiting: tuple[IdeaLine, ...]
    takeaways: str = ""  # LLM text; empty offline
    takeaway_ideas: tuple[IdeaLine, ...] = ()  # offline key takeaways
    takeaways_source: str = "offline"
    hidden_private: int = field(default=0, compare=False)
    # The open ideas of the last WANTED_DAYS with the most votes, most first.
    most_wanted: tuple[IdeaLine, ...] = ()


def visible_to(post_channel: str, post_is_private: bool, digest_channel: str) -> bool:
    """Content of a private channel may only go to a digest in that very channel."""
    return not post_is_private or post_channel == digest_channel


def _idea(p: StoredPost) -> IdeaLine:
    title = plain_text(p.title or "") or _first_line(p.text)
    return IdeaLine(
        channel=p.channel,
        ts=p.ts,
        kind=p.kind or "other",
        title=title,
        summary=plain_text(p.summary or ""),
        permalink=p.permalink,
        reactions=max(0, p.reactions),
        replies=max(0, p.replies),
        votes=max(0, p.votes),
    )


def _first_line(text: str, limit: int = 100) -> str:
    line = plain_text(text.strip().splitlines()[0] if text.strip() else "") or "(empty post)"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _duplicate_of(p: StoredPost) -> tuple[tuple[str, ...], tuple[str | None, ...]] | None:
    triage = Triage.from_stored(p.triage_json)
    if triage is None or not triage.likely_duplicate or not triage.similar:
        return None
    best = triage.similar[:3]
    return tuple(m.key for m in best), tuple(m.url for m in best)


def build_takeaway_digest(
    day: date,
    tz: str,
    digest_channel: str,
    posts: Sequence[StoredPost],
    filings: Sequence[Filing],
    filing_posts: Mapping[tuple[str, str], StoredPost] | None = None,
    private_channels: Iterable[str] = (),
    wanted: Sequence[StoredPost] | None = None,
) -> TakeawayDigest:
    """The takeaway model for *day*.

    *posts* are the day's top-level posts in the idea channels; *filings* the filings updated that
    day; *filing_posts* the posts of those filings (possibly from earlier days);
    *private_channels* channels known to be private besides what ``StoredPost.is_private`` says;
    *wanted* the most voted open posts of the last days (``Votes.top_voted``; None: the day's).
    """
    private = set(private_channels)

    def ok(channel: str, is_private: bool) -> bool:
        return visible_to(channel, is_private or channel in private, digest_channel)

    top_level = [p for p in posts if p.thread_ts in (None, "", p.ts)]
    shown = [p for p in top_level if ok(p.channel, p.is_private)]
    hidden = len(top_level) - len(shown)
    ideas = [_idea(p) for p in sorted(shown, key=lambda p: (p.created, p.ts))]

    by_kind: dict[str, int] = {}
    for kind in (*KINDS, *sorted({i.kind for i in ideas} - set(KINDS))):
        n = sum(1 for i in ideas if i.kind == kind)
        if n:
            by_kind[kind] = n

    known = dict(filing_posts or {})
    known.update({(p.channel, p.ts): p for p in posts})
    filed: list[FiledLine] = []
    handled: set[tuple[str, str]] = set()
    for f in sorted(filings, key=lambda f: (f.updated or datetime.min, f.issue_key or "")):
        # One idea of a notes post is filed under its own id: the post is its message's.
        post_ts, idea = split_idea_ts(f.ts)
        post = known.get((f.channel, post_ts))
        if f.state in FILED_STATES | IN_FLIGHT_STATES:
            handled.add((f.channel, post_ts))
        if f.state not in FILED_STATES or not f.issue_key:
            continue
        is_private = post.is_private if post is not None else f.channel in private
        if not ok(f.channel, is_private):
            continue
        title = _idea(post).title if post is not None else f.issue_key
        if idea is not None:
            title = _idea_title(post, idea) or f.issue_key
        filed.append(
            FiledLine(
                key=f.issue_key,
                url=f.issue_url,
                title=title,
                permalink=post.permalink if post is not None else None,
            )
        )

    by_post = {(p.channel, p.ts): p for p in shown}
    duplicates: list[DuplicateLine] = []
    for i in ideas:
        dup = _duplicate_of(by_post[(i.channel, i.ts)])
        if dup is not None:
            duplicates.append(DuplicateLine(idea=i, keys=dup[0], urls=dup[1]))
    dup_ids = {(d.idea.channel, d.idea.ts) for d in duplicates}

    engaged = sorted(
        (i for i in ideas if i.engagement > 0), key=lambda i: (-i.engagement, -i.reactions, i.ts)
    )
    waiting = [
        i
        for i in ideas
        if i.kind in WAITING_KINDS
        and (i.channel, i.ts) not in handled
        and (i.channel, i.ts) not in dup_ids
    ]
    takeaway_ideas = [i for i in engaged if i.summary or i.title][:TAKEAWAYS_OFFLINE_N]
    if not takeaway_ideas:
        takeaway_ideas = [i for i in ideas if i.kind != "other"][:TAKEAWAYS_OFFLINE_N]
    return TakeawayDigest(
        day=day,
        tz=tz,
        channels=tuple(sorted({i.channel for i in ideas})),
        by_kind=by_kind,
        total=len(ideas),
        filed=tuple(filed),
        duplicates=tuple(duplicates),
        top=tuple(engaged[:TOP_N]),
        waiting=tuple(waiting),
        takeaway_ideas=tuple(takeaway_ideas),
        hidden_private=hidden,
        most_wanted=_most_wanted(shown if wanted is None else wanted, ok),
    )


def _most_wanted(
    posts: Sequence[StoredPost], ok: Callable[[str, bool], bool]
) -> tuple[IdeaLine, ...]:
    """The voted-for top-level posts the digest channel may see, most votes first."""
    voted = [
        p
        for p in posts
        if p.votes > 0 and p.thread_ts in (None, "", p.ts) and ok(p.channel, p.is_private)
    ]
    voted.sort(key=lambda p: (-p.votes, p.created, p.ts))
    return tuple(_idea(p) for p in voted[:TOP_N])


def takeaway_prompt_variables(
    d: TakeawayDigest, posts: Sequence[StoredPost], digest_channel: str, limit: int = 12000
) -> dict[str, str]:
    """Variables for prompts/takeaways.prompt.yaml (``day``, ``posts``), visible posts only.

    Top-level posts are "- " lines, most engaged first; thread replies the store holds follow
    their post, indented. Capped at *limit* characters.
    """
    visible = [p for p in posts if visible_to(p.channel, p.is_private, digest_channel)]
    replies: dict[tuple[str, str], list[StoredPost]] = {}
    tops: list[StoredPost] = []
    for p in visible:
        if p.thread_ts in (None, "", p.ts):
            tops.append(p)
        else:
            replies.setdefault((p.channel, str(p.thread_ts)), []).append(p)
    lines: list[str] = []
    size = 0
    for p in sorted(tops, key=lambda p: (-(p.reactions + p.replies), p.ts)):
        head = plain_text(p.title or "")
        body = plain_text(p.summary or p.text)[:500]
        block = [f"- {head}: {body}" if head else f"- {body}"]
        for r in sorted(replies.get((p.channel, p.ts), []), key=lambda r: r.ts)[:10]:
            block.append(f"  - {plain_text(r.text)[:300]}")
        chunk = "\n".join(block)
        if size + len(chunk) > limit:
            break
        lines.append(chunk)
        size += len(chunk) + 1
    return {"day": d.day.isoformat(), "posts": "\n".join(lines)}


def local_day_bounds(day: date, tz: str) -> tuple[datetime, datetime]:
    """[start, end) of *day* in time zone *tz*, as aware datetimes."""
    zone = ZoneInfo(tz)
    return (
        datetime.combine(day, time(0), tzinfo=zone),
        datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone),
    )


def _idea_title(post: StoredPost | None, index: int) -> str | None:
    """The title of idea *index* of a notes post, from its stored verdict."""
    triage = Triage.from_stored(post.triage_json) if post is not None else None
    if triage is None or not 0 <= index < len(triage.ideas):
        return None
    return triage.ideas[index].title
