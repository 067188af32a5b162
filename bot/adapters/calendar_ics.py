"""Calendar port over iCalendar feeds (Google's / Outlook's "secret address in iCal format").

Sources are http(s)/webcal URLs or file paths; a file may hold several VCALENDAR blocks.
Recurring events are expanded with ``recurring_ical_events`` (RRULE, RDATE, EXDATE, RECURRENCE-ID
overrides, X-WR-TIMEZONE), walking each rule lazily from shortly before the day asked for;
cancelled events are left out. Each feed has limits: MAX_EVENTS_PER_DAY events and a time budget
for parse + expand; a feed that hits one is listed up to there and reported as cut. An event
that cannot be placed in time (no DTSTART, unreadable RRULE, ...) is skipped and counted, the
rest of its feed is kept. A feed that cannot be fetched or parsed is reported by a safe display
name ("feed 2 (calendar.google.com)"): secret feed URLs carry the credential in the path or
query, so neither ever reaches a post or a log line. Notes on a feed ("feed 1 (x): 3 events
skipped") go into ``CalendarDay.failed_feeds`` as text.
"""

from __future__ import annotations

import logging
import re
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import icalendar
import recurring_ical_events
import x_wr_timezone

from bot.adapters.http_fetch import FetchError, fetch_bytes, redact_source
from bot.adapters.ics_recurrence import BoundedSeries, Budget, Cut
from bot.domain.ports import CalendarDay, Meeting

logger = logging.getLogger(__name__)

MAX_FEED_BYTES = 10 * 1024 * 1024
MAX_EVENTS_PER_DAY = 500  # per feed; more is a runaway rule, not a calendar
FEED_BUDGET_SECONDS = 20.0  # parse + expand of one feed; icalendar parses about 1 MB/s
USER_AGENT = "ideabot-calendar/1.0"

_VIDEO = re.compile(
    r"https://(?:[\w-]+\.)*(?:meet\.google\.com|zoom\.us|teams\.microsoft\.com|teams\.live\.com)"
    r"/[^\s<>\"'\\,;)]*",
    re.IGNORECASE,
)
_VIDEO_PROPS = (
    "X-GOOGLE-CONFERENCE",
    "URL",
    "LOCATION",
    "DESCRIPTION",
    "X-MICROSOFT-SKYPETEAMSMEETINGURL",
)


class FeedError(Exception):
    """A feed could not be fetched or parsed; the message never contains the feed's URL."""


def is_url(source: str) -> bool:
    """True for http, https and webcal sources (everything else is a file path)."""
    return urlsplit(source.strip()).scheme.lower() in {"http", "https", "webcal"}


def display_name(source: str, position: int) -> str:
    """A name for *source* that is safe to show: position plus host (URL) or file name."""
    if is_url(source):
        host = urlsplit(source.strip()).hostname or "unknown host"
        return f"feed {position} ({host})"
    return f"feed {position} ({Path(source).name or source})"


def find_video_url(*texts: str | None) -> str | None:
    """The first Google Meet / Zoom / Teams link found in *texts*, in order."""
    for text in texts:
        if not text:
            continue
        m = _VIDEO.search(text)
        if m:
            return m.group(0).rstrip(".")
    return None


class IcsCalendar:
    """Meetings of one day from one or more iCalendar feeds, shown in time zone *tz*."""

    def __init__(
        self,
        sources: Sequence[str],
        tz: str | ZoneInfo = "UTC",
        fetch_timeout: float = 10.0,
        max_bytes: int = MAX_FEED_BYTES,
        max_events: int = MAX_EVENTS_PER_DAY,
        feed_budget: float = FEED_BUDGET_SECONDS,
        clock: Callable[[], float] = _time.monotonic,
    ) -> None:
        self.sources = [s.strip() for s in sources if s.strip()]
        self.tz = tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)
        self.fetch_timeout = fetch_timeout
        self.max_bytes = max_bytes
        self.max_events = max_events
        self.feed_budget = feed_budget
        self.clock = clock

    def meetings_on(self, day: date) -> CalendarDay:
        """All non-cancelled meetings overlapping *day* (local), sorted; failed feeds by name."""
        meetings: list[Meeting] = []
        failed: list[str] = []
        seen: set[tuple[str, date]] = set()
        for position, source in enumerate(self.sources, start=1):
            name = display_name(source, position)
            try:
                raw = self._load(source)
                feed = self._parse(raw, day, name)
            except FeedError as exc:
                logger.warning("calendar %s failed: %s", name, exc)
                failed.append(name)
            except Exception as exc:  # a malformed feed must not stop the digest
                reason = redact_source(f"{type(exc).__name__}: {exc}", source)
                logger.warning("calendar %s failed: %s", name, reason)
                failed.append(name)
            else:
                # Within a feed, recurring_ical_events already keeps one instance per UID and
                # RECURRENCE-ID; across feeds only the same UID at the same instant is merged.
                meetings += [m for key, m in feed.meetings if key is None or key not in seen]
                seen.update(key for key, _ in feed.meetings if key is not None)
                notes: list[str] = []
                if feed.skipped:
                    notes.append(f"{_plural(feed.skipped, 'event')} skipped")
                    logger.warning(
                        "calendar %s: skipped %s (%s)", name, feed.skipped, ", ".join(feed.reasons)
                    )
                if feed.cut:
                    notes.append(feed.cut)
                    logger.warning("calendar %s: %s", name, feed.cut)
                if notes:
                    failed.append(f"{name}: {', '.join(notes)}")
        meetings.sort(key=lambda m: (not m.all_day, m.start, m.end, m.title))
        return CalendarDay(meetings=meetings, failed_feeds=failed)

    # ------------------------------------------------------------------ loading

    def _load(self, source: str) -> bytes:
        if is_url(source):
            return self._fetch(source)
        path = Path(source).expanduser()
        try:
            size = path.stat().st_size
            if size > self.max_bytes:
                raise FeedError(f"file larger than {self.max_bytes} bytes")
            return path.read_bytes()
        except OSError as exc:
            raise FeedError(f"cannot read file: {exc.strerror or type(exc).__name__}") from None

    def _fetch(self, source: str) -> bytes:
        url = (
            "https://" + source[len("webcal://") :]
            if source.lower().startswith("webcal://")
            else source
        )
        try:
            return fetch_bytes(
                url,
                timeout=self.fetch_timeout,
                max_bytes=self.max_bytes,
                headers={"User-Agent": USER_AGENT, "Accept": "text/calendar"},
                clock=self.clock,
            )
        except FetchError as exc:
            raise FeedError(redact_source(str(exc), source)) from None

    # ------------------------------------------------------------------ parsing

    def _parse(self, raw: bytes, day: date, name: str) -> _Feed:
        budget = Budget(self.clock, self.feed_budget, self.max_events)
        try:
            calendars = icalendar.Calendar.from_ical(raw, multiple=True)
        except ValueError as exc:
            raise FeedError(f"not a valid iCalendar file ({type(exc).__name__})") from None
        if not calendars or any(
            not isinstance(c, icalendar.Calendar) or c.name != "VCALENDAR" for c in calendars
        ):
            raise FeedError("not a VCALENDAR")
        feed = _Feed()
        start = datetime.combine(day, time(0), tzinfo=self.tz)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz)
        try:
            for events in self._series(calendars, feed, budget):
                budget.check()
                self._expand(events, start, end, day, name, budget, feed)
        except Cut as cut:
            feed.cut = str(cut)
        return feed

    def _series(self, calendars: list[Any], feed: _Feed, budget: Budget) -> list[list[Any]]:
        """The readable VEVENTs of all VCALENDAR blocks, grouped by UID (one series each)."""
        # Grouped over all blocks: an override may sit in another block than its series.
        groups: dict[str, list[Any]] = {}
        for cal in calendars:
            budget.check()
            if str(cal.get("CALSCALE", "GREGORIAN")).upper() != "GREGORIAN":
                raise FeedError("not a Gregorian calendar")
            for event in x_wr_timezone.to_standard(cal).walk("VEVENT"):
                problem = _problem(event)
                if problem is not None:
                    feed.skip(problem)
                    continue
                uid = str(event.get("UID", "")) or f"\0{len(groups)}"
                groups.setdefault(uid, []).append(event)
        return list(groups.values())

    def _expand(
        self,
        events: list[Any],
        start: datetime,
        end: datetime,
        day: date,
        name: str,
        budget: Budget,
        feed: _Feed,
    ) -> None:
        """The instances of one series (one UID) on *day*, into *feed*; raises Cut."""
        occurrences: list[Any] = []
        cut: Cut | None = None
        try:
            series = BoundedSeries([recurring_ical_events.EventAdapter(e) for e in events])
            series.recurrence.budget = budget
            for occurrence in series.between(start, end):
                budget.take()
                occurrences.append(occurrence)
        except Cut as exc:
            cut = exc  # what was found before the cut is still listed
        except Exception as exc:  # one bad series must not cost the others
            feed.skip(type(exc).__name__, len(events))
            return
        for occurrence in occurrences:
            try:
                event = occurrence.as_component(False)
                meeting = self._meeting(event, day, name)
            except Exception as exc:
                feed.skip(type(exc).__name__)
                continue
            if meeting is not None:
                feed.meetings.append((self._invitation(event), meeting))
        if cut is not None:
            raise cut

    def _invitation(self, event: Any) -> tuple[str, date] | None:
        """What makes an instance provably the same invitation in another feed: UID and start.

        None without a UID: two such events may look alike but nothing says they are one.
        """
        uid = str(event.get("UID", "")).strip()
        if not uid:
            return None
        start = event["DTSTART"].dt
        if isinstance(start, datetime):
            return uid, self._local(start).astimezone(UTC)
        return uid, start

    def _meeting(self, event: Any, day: date, name: str) -> Meeting | None:
        if str(event.get("STATUS", "")).upper() == "CANCELLED":
            return None
        if str(event.get("TRANSP", "")).upper() == "TRANSPARENT" and _is_date(event):
            # An all-day "free" marker (birthdays, holidays of other countries) is no meeting.
            return None
        dtstart = event.get("DTSTART")
        if dtstart is None:
            return None
        s = dtstart.dt
        dtend = event.get("DTEND")
        e = dtend.dt if dtend is not None else None
        title = str(event.get("SUMMARY", "")).strip() or "(no title)"
        location = str(event.get("LOCATION", "")).strip() or None
        video = find_video_url(*(str(event.get(p, "")) for p in _VIDEO_PROPS))
        if not isinstance(s, datetime):
            first = s
            last = (
                e if isinstance(e, date) and not isinstance(e, datetime) else first + timedelta(1)
            )
            if not (first <= day < max(last, first + timedelta(days=1))):
                return None
            return Meeting(
                title=title,
                start=datetime.combine(day, time(0), tzinfo=self.tz),
                end=datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.tz),
                all_day=True,
                location=location,
                video_url=video,
                calendar=name,
            )
        start = self._local(s)
        if isinstance(e, datetime):
            end = self._local(e)
        else:
            duration = event.get("DURATION")
            end = start + (duration.dt if duration is not None else timedelta(0))
        end = max(end, start)
        return Meeting(
            title=title,
            start=start,
            end=end,
            location=location,
            video_url=video,
            calendar=name,
        )

    def _local(self, value: datetime) -> datetime:
        # Floating times (no TZID, no Z) are wall-clock times of the reader: ours.
        if value.tzinfo is None:
            return value.replace(tzinfo=self.tz)
        return value.astimezone(self.tz)


@dataclass
class _Feed:
    """What one feed gave for the day, and what it had to leave out."""

    meetings: list[tuple[tuple[str, date] | None, Meeting]] = field(default_factory=list)
    skipped: int = 0
    reasons: list[str] = field(default_factory=list)
    cut: str = ""  # why the expansion stopped early, e.g. "cut at 500 events"

    def skip(self, reason: str, count: int = 1) -> None:
        self.skipped += count
        if reason not in self.reasons:
            self.reasons.append(reason)


_TIMING_PROPS = frozenset(
    {"DTSTART", "DTEND", "DURATION", "RRULE", "EXRULE", "RDATE", "EXDATE", "RECURRENCE-ID"}
)


def _problem(event: Any) -> str | None:
    """Why *event* cannot be placed in time, or None. Reasons never quote the event's text."""
    for prop, _ in getattr(event, "errors", ()):
        if str(prop).upper() in _TIMING_PROPS:
            return f"unreadable {str(prop).upper()}"
    dtstart = event.get("DTSTART")
    if dtstart is None:
        return "no DTSTART"
    if not isinstance(getattr(dtstart, "dt", None), date):
        return "unreadable DTSTART"
    return None


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _is_date(event: Any) -> bool:
    dtstart = event.get("DTSTART")
    return dtstart is not None and not isinstance(dtstart.dt, datetime)
