"""IcsCalendar on iCalendar files the tests write: recurrence, exceptions, DST, all-day, cancelled,
other time zones, broken feeds and secret http feeds."""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar
import pytest
import recurring_ical_events
from dateutil.rrule import rrulestr
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.adapters.calendar_ics import (
    MAX_EVENTS_PER_DAY,
    IcsCalendar,
    display_name,
    find_video_url,
)
from bot.adapters.ics_recurrence import BoundedSeries

BERLIN = ZoneInfo("Europe/Berlin")
NY = ZoneInfo("America/New_York")


def vcal(*events: str, extra: str = "") -> str:
    body = "\n".join(events)
    text = (
        f"BEGIN:VCALENDAR\nVERSION:2.0\nPRODID:-//ideabot tests//EN\n{extra}{body}\nEND:VCALENDAR\n"
    )
    return text.replace("\n", "\r\n")


def vevent(uid: str, *lines: str) -> str:
    return "\n".join(
        ["BEGIN:VEVENT", f"UID:{uid}", "DTSTAMP:20260101T000000Z", *lines, "END:VEVENT"]
    )


def write(tmp_path: Path, name: str, text: str) -> str:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return str(p)


WEEKLY = vcal(
    vevent(
        "standup",
        "DTSTART;TZID=Europe/Berlin:20260302T100000",
        "DTEND;TZID=Europe/Berlin:20260302T103000",
        "RRULE:FREQ=WEEKLY;BYDAY=MO",
        "EXDATE;TZID=Europe/Berlin:20260309T100000",
        "SUMMARY:Standup",
        "LOCATION:https://meet.google.com/abc-defg-hij",
    ),
    vevent(
        "standup",
        "RECURRENCE-ID;TZID=Europe/Berlin:20260316T100000",
        "DTSTART;TZID=Europe/Berlin:20260316T140000",
        "DTEND;TZID=Europe/Berlin:20260316T143000",
        "SUMMARY:Standup (moved)",
        "LOCATION:Room 4",
    ),
    vevent(
        "standup",
        "RECURRENCE-ID;TZID=Europe/Berlin:20260323T100000",
        "DTSTART;TZID=Europe/Berlin:20260323T100000",
        "DTEND;TZID=Europe/Berlin:20260323T103000",
        "STATUS:CANCELLED",
        "SUMMARY:Standup",
    ),
)


def test_weekly_rrule_with_exdate_moved_and_cancelled_instances(tmp_path: Path) -> None:
    cal = IcsCalendar([write(tmp_path, "team.ics", WEEKLY)], tz=BERLIN)

    first = cal.meetings_on(date(2026, 3, 2)).meetings
    assert [(m.title, m.start.hour, m.start.minute) for m in first] == [("Standup", 10, 0)]
    assert first[0].video_url == "https://meet.google.com/abc-defg-hij"

    assert cal.meetings_on(date(2026, 3, 9)).meetings == []  # EXDATE
    assert cal.meetings_on(date(2026, 3, 3)).meetings == []  # not a Monday

    moved = cal.meetings_on(date(2026, 3, 16)).meetings
    assert [(m.title, m.start.hour, m.location) for m in moved] == [
        ("Standup (moved)", 14, "Room 4")
    ]
    assert cal.meetings_on(date(2026, 3, 23)).meetings == []  # cancelled instance


def test_dst_change_day_keeps_local_wall_clock_times(tmp_path: Path) -> None:
    # Berlin springs forward on Sunday 2026-03-29 at 02:00; a daily 09:00 meeting stays at 09:00.
    ics = vcal(
        vevent(
            "daily",
            "DTSTART;TZID=Europe/Berlin:20260325T090000",
            "DTEND;TZID=Europe/Berlin:20260325T093000",
            "RRULE:FREQ=DAILY;COUNT=10",
            "SUMMARY:Daily",
        ),
        # 01:30-03:30 local on the change day is one real hour long.
        vevent(
            "night",
            "DTSTART;TZID=Europe/Berlin:20260329T013000",
            "DTEND;TZID=Europe/Berlin:20260329T033000",
            "SUMMARY:Night shift handover",
        ),
    )
    cal = IcsCalendar([write(tmp_path, "dst.ics", ics)], tz=BERLIN)
    before = cal.meetings_on(date(2026, 3, 28)).meetings
    change = cal.meetings_on(date(2026, 3, 29)).meetings
    after = cal.meetings_on(date(2026, 3, 30)).meetings
    for day in (before, after):
        assert [(m.start.hour, m.start.minute) for m in day] == [(9, 0)]
    assert {m.title: (m.start.hour, m.start.minute) for m in change} == {
        "Night shift handover": (1, 30),
        "Daily": (9, 0),
    }
    assert before[0].start.utcoffset() == timedelta(hours=1)
    assert after[0].start.utcoffset() == timedelta(hours=2)
    night = next(m for m in change if m.title.startswith("Night"))
    assert night.end.astimezone(UTC) - night.start.astimezone(UTC) == timedelta(hours=1)


def test_new_york_dst_change_day(tmp_path: Path) -> None:
    ics = vcal(
        vevent(
            "ny",
            "DTSTART;TZID=America/New_York:20260306T110000",
            "DTEND;TZID=America/New_York:20260306T120000",
            "RRULE:FREQ=DAILY;COUNT=4",
            "SUMMARY:NY sync",
        )
    )
    cal = IcsCalendar([write(tmp_path, "ny.ics", ics)], tz=NY)
    for d in (date(2026, 3, 7), date(2026, 3, 8), date(2026, 3, 9)):
        (m,) = cal.meetings_on(d).meetings
        assert (m.start.hour, m.end.hour) == (11, 12)


def test_event_in_another_time_zone_is_shown_in_the_digest_zone(tmp_path: Path) -> None:
    ics = vcal(
        vevent(
            "ny-call",
            "DTSTART;TZID=America/New_York:20260415T090000",
            "DTEND;TZID=America/New_York:20260415T100000",
            "SUMMARY:Call with NY",
            "DESCRIPTION:Join: https://acme.zoom.us/j/123456789?pwd=x",
        ),
        vevent(
            "utc",
            "DTSTART:20260415T120000Z",
            "DTEND:20260415T123000Z",
            "SUMMARY:UTC lunch talk",
            "X-GOOGLE-CONFERENCE:https://meet.google.com/xyz-abcd-efg",
        ),
    )
    cal = IcsCalendar([write(tmp_path, "tz.ics", ics)], tz="Europe/Berlin")
    got = {m.title: m for m in cal.meetings_on(date(2026, 4, 15)).meetings}
    assert (got["Call with NY"].start.hour, got["Call with NY"].end.hour) == (15, 16)
    assert got["Call with NY"].start.tzinfo == BERLIN
    assert got["Call with NY"].video_url == "https://acme.zoom.us/j/123456789?pwd=x"
    assert (got["UTC lunch talk"].start.hour, got["UTC lunch talk"].start.minute) == (14, 0)
    assert got["UTC lunch talk"].video_url == "https://meet.google.com/xyz-abcd-efg"


def test_event_late_in_new_york_lands_on_the_next_berlin_day(tmp_path: Path) -> None:
    ics = vcal(
        vevent(
            "late",
            "DTSTART;TZID=America/New_York:20260415T200000",
            "DTEND;TZID=America/New_York:20260415T210000",
            "SUMMARY:Late NY call",
        )
    )
    cal = IcsCalendar([write(tmp_path, "late.ics", ics)], tz=BERLIN)
    assert cal.meetings_on(date(2026, 4, 15)).meetings == []
    (m,) = cal.meetings_on(date(2026, 4, 16)).meetings
    assert (m.start.hour, m.end.hour) == (2, 3)


def test_all_day_and_cancelled_events(tmp_path: Path) -> None:
    ics = vcal(
        vevent(
            "offsite", "DTSTART;VALUE=DATE:20260415", "DTEND;VALUE=DATE:20260417", "SUMMARY:Offsite"
        ),
        vevent(
            "gone",
            "DTSTART;TZID=Europe/Berlin:20260415T110000",
            "DTEND;TZID=Europe/Berlin:20260415T120000",
            "STATUS:CANCELLED",
            "SUMMARY:Cancelled review",
        ),
        vevent(
            "kept",
            "DTSTART;TZID=Europe/Berlin:20260415T130000",
            "DURATION:PT45M",
            "SUMMARY:Planning",
            "URL:https://teams.microsoft.com/l/meetup-join/abc",
        ),
    )
    cal = IcsCalendar([write(tmp_path, "mix.ics", ics)], tz=BERLIN)
    day = cal.meetings_on(date(2026, 4, 15))
    assert [(m.title, m.all_day) for m in day.meetings] == [
        ("Offsite", True),
        ("Planning", False),
    ]
    planning = day.meetings[1]
    assert planning.end - planning.start == timedelta(minutes=45)
    assert planning.video_url == "https://teams.microsoft.com/l/meetup-join/abc"
    second = cal.meetings_on(date(2026, 4, 16)).meetings
    assert [(m.title, m.all_day) for m in second] == [("Offsite", True)]
    assert cal.meetings_on(date(2026, 4, 17)).meetings == []  # DTEND of all-day is exclusive


def test_floating_times_are_read_in_the_digest_zone(tmp_path: Path) -> None:
    # Google exports some calendars with UTC times plus X-WR-TIMEZONE; floating times are local.
    ics = vcal(
        vevent(
            "floating",
            "DTSTART:20260415T083000",
            "DTEND:20260415T090000",
            "SUMMARY:Floating breakfast",
        )
    )
    cal = IcsCalendar([write(tmp_path, "float.ics", ics)], tz=BERLIN)
    (m,) = cal.meetings_on(date(2026, 4, 15)).meetings
    assert (m.start.hour, m.start.minute, m.start.tzinfo) == (8, 30, BERLIN)


def test_same_meeting_in_two_feeds_is_listed_once(tmp_path: Path) -> None:
    ev = vevent(
        "dup",
        "DTSTART;TZID=Europe/Berlin:20260415T100000",
        "DTEND;TZID=Europe/Berlin:20260415T110000",
        "SUMMARY:Roadmap",
    )
    a = write(tmp_path, "a.ics", vcal(ev))
    b = write(tmp_path, "b.ics", vcal(ev))
    assert len(IcsCalendar([a, b], tz=BERLIN).meetings_on(date(2026, 4, 15)).meetings) == 1


def test_broken_feed_is_named_and_good_feed_still_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    good = write(tmp_path, "good.ics", WEEKLY)
    broken = write(tmp_path, "broken.ics", "BEGIN:VCALENDAR\nthis is not: ical\n")
    missing = str(tmp_path / "missing.ics")
    cal = IcsCalendar([broken, good, missing], tz=BERLIN)
    with caplog.at_level(logging.WARNING):
        day = cal.meetings_on(date(2026, 3, 2))
    assert [m.title for m in day.meetings] == ["Standup"]
    assert day.failed_feeds == ["feed 1 (broken.ics)", "feed 3 (missing.ics)"]
    assert "feed 1 (broken.ics)" in caplog.text and "feed 3 (missing.ics)" in caplog.text


class _Feeds:
    """A local http server for calendar feeds: path -> (status, body).

    ``slow`` paths trickle: path -> (where, interval), one byte per *interval* seconds either
    inside a header line or into a body that never completes (for at most 5 s).
    """

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, bytes]] = {}
        self.slow: dict[str, tuple[str, float]] = {}
        self.short: dict[str, bytes] = {}  # path -> body sent under a longer Content-Length
        self.stop = threading.Event()
        feeds = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def trickle(self, interval: float) -> None:
                for _ in range(int(5 / interval)):
                    try:
                        self.wfile.write(b"a")
                    except OSError:
                        return  # the client hung up, as it should
                    if feeds.stop.wait(interval):
                        return

            def do_GET(self) -> None:
                if self.path in feeds.slow:
                    where, interval = feeds.slow[self.path]
                    if where == "headers":
                        self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    else:
                        self.send_response(200)
                        self.send_header("Content-Length", "1000000")
                        self.end_headers()
                    self.trickle(interval)
                    return
                if self.path in feeds.short:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(feeds.short[self.path]) + 100))
                    self.end_headers()
                    self.wfile.write(feeds.short[self.path])
                    self.close_connection = True
                    return
                status, body = feeds.routes.get(self.path, (404, b"nope"))
                self.send_response(status)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feeds() -> Iterator[_Feeds]:
    f = _Feeds()
    try:
        yield f
    finally:
        f.close()


SECRET = "s3cr3t-T0KEN-abcdef0123456789"


def test_http_feed_secret_never_in_logs_or_names(
    feeds: _Feeds, caplog: pytest.LogCaptureFixture
) -> None:
    feeds.routes[f"/calendar/ical/{SECRET}/basic.ics"] = (200, WEEKLY.encode())
    good = f"{feeds.base}/calendar/ical/{SECRET}/basic.ics"
    gone = f"{feeds.base}/private-{SECRET}/other.ics?token={SECRET}"
    garbage_path = f"/garbage/{SECRET}.ics"
    feeds.routes[garbage_path] = (200, b"<html>login page</html>")
    garbage = feeds.base + garbage_path
    unreachable = f"https://127.0.0.1:1/{SECRET}/x.ics"  # port 1: refused, nothing listens
    cal = IcsCalendar([good, gone, garbage, unreachable], tz=BERLIN, fetch_timeout=5)
    with caplog.at_level(logging.DEBUG):
        day = cal.meetings_on(date(2026, 3, 2))
    assert [m.title for m in day.meetings] == ["Standup"]
    assert day.failed_feeds == [
        "feed 2 (127.0.0.1)",
        "feed 3 (127.0.0.1)",
        "feed 4 (127.0.0.1)",
    ]
    assert "HTTP 404" in caplog.text
    assert SECRET not in caplog.text
    assert all(SECRET not in name for name in day.failed_feeds)


def test_oversized_feed_fails_safely(feeds: _Feeds) -> None:
    feeds.routes["/big.ics"] = (200, WEEKLY.encode())
    cal = IcsCalendar([f"{feeds.base}/big.ics"], tz=BERLIN, max_bytes=100)
    assert cal.meetings_on(date(2026, 3, 2)).failed_feeds == ["feed 1 (127.0.0.1)"]


def test_display_name_and_video_links() -> None:
    assert (
        display_name("https://calendar.google.com/calendar/ical/a%40b/private-xyz/basic.ics", 2)
        == "feed 2 (calendar.google.com)"
    )
    assert display_name("webcal://outlook.office365.com/owa/calendar/x/y/calendar.ics", 1) == (
        "feed 1 (outlook.office365.com)"
    )
    assert find_video_url(None, "see https://zoom.us/j/99.", "x") == "https://zoom.us/j/99"
    assert find_video_url("https://example.com/room") is None


def test_meetings_are_sorted_all_day_first_then_by_start(tmp_path: Path) -> None:
    ics = vcal(
        vevent("b", "DTSTART:20260415T130000Z", "DTEND:20260415T140000Z", "SUMMARY:B"),
        vevent("a", "DTSTART:20260415T070000Z", "DTEND:20260415T080000Z", "SUMMARY:A"),
        vevent("h", "DTSTART;VALUE=DATE:20260415", "SUMMARY:Holiday"),
    )
    day = IcsCalendar([write(tmp_path, "s.ics", ics)], tz="UTC").meetings_on(date(2026, 4, 15))
    assert [m.title for m in day.meetings] == ["Holiday", "A", "B"]
    assert day.meetings[1].start == datetime(2026, 4, 15, 7, tzinfo=ZoneInfo("UTC"))


# --------------------------------------------------------------------------- broken events (#9)


def test_event_without_dtstart_is_skipped_and_the_rest_is_listed(tmp_path: Path) -> None:
    ics = vcal(
        vevent("good", "DTSTART:20260415T080000Z", "DTEND:20260415T090000Z", "SUMMARY:Kept"),
        vevent("no-start", "DTEND:20260415T100000Z", "SUMMARY:No start"),
        vevent("bad-start", "DTSTART:tomorrow-ish", "SUMMARY:Unreadable start"),
        vevent("bad-rule", "DTSTART:20260415T110000Z", "RRULE:FREQ=FORTNIGHTLY", "SUMMARY:Bad"),
        vevent("late", "DTSTART:20260415T150000Z", "DURATION:PT1H", "SUMMARY:Also kept"),
    )
    day = IcsCalendar([write(tmp_path, "team.ics", ics)], tz="UTC").meetings_on(date(2026, 4, 15))
    assert [m.title for m in day.meetings] == ["Kept", "Also kept"]
    assert day.failed_feeds == ["feed 1 (team.ics): 3 events skipped"]


def test_one_skipped_event_is_named_in_the_singular(tmp_path: Path) -> None:
    ics = vcal(
        vevent("good", "DTSTART:20260415T080000Z", "DTEND:20260415T090000Z", "SUMMARY:Kept"),
        vevent("no-start", "SUMMARY:No start"),
    )
    day = IcsCalendar([write(tmp_path, "a.ics", ics)], tz="UTC").meetings_on(date(2026, 4, 15))
    assert [m.title for m in day.meetings] == ["Kept"]
    assert day.failed_feeds == ["feed 1 (a.ics): 1 event skipped"]


def test_several_vcalendar_blocks_are_one_feed(tmp_path: Path) -> None:
    first = vcal(
        vevent("a", "DTSTART:20260415T080000Z", "DTEND:20260415T090000Z", "SUMMARY:First block")
    )
    second = vcal(
        vevent(
            "b",
            "DTSTART;TZID=Europe/Berlin:20260415T120000",
            "DTEND;TZID=Europe/Berlin:20260415T130000",
            "SUMMARY:Second block",
        )
    )
    path = write(tmp_path, "two.ics", first + second)
    day = IcsCalendar([path], tz=BERLIN).meetings_on(date(2026, 4, 15))
    assert [(m.title, m.start.hour) for m in day.meetings] == [
        ("First block", 10),
        ("Second block", 12),
    ]
    assert day.failed_feeds == []


# --------------------------------------------------------------------------- de-duplication (#8)


def test_separate_events_with_the_same_title_and_time_are_all_listed(tmp_path: Path) -> None:
    ics = vcal(
        *(
            vevent(
                f"event-{i}",
                "DTSTART:20260415T090000Z",
                "DTEND:20260415T100000Z",
                "SUMMARY:Interview slot",
            )
            for i in range(1, 11)
        )
    )
    day = IcsCalendar([write(tmp_path, "slots.ics", ics)], tz="UTC").meetings_on(date(2026, 4, 15))
    assert [m.title for m in day.meetings] == ["Interview slot"] * 10


def test_overlapping_instances_of_one_series_are_all_listed(tmp_path: Path) -> None:
    # A three-day all-day event repeating daily: on the 15th the instances of the 13th, 14th
    # and 15th all run; all three are shown as "all day" on that day, yet they are three.
    ics = vcal(
        vevent(
            "rota",
            "DTSTART;VALUE=DATE:20260413",
            "DTEND;VALUE=DATE:20260416",
            "RRULE:FREQ=DAILY;COUNT=5",
            "SUMMARY:On call",
        )
    )
    day = IcsCalendar([write(tmp_path, "rota.ics", ics)], tz="UTC").meetings_on(date(2026, 4, 15))
    assert [(m.title, m.all_day) for m in day.meetings] == [("On call", True)] * 3


def test_same_title_and_time_in_two_feeds_but_other_uid_is_listed_twice(tmp_path: Path) -> None:
    def ev(uid: str) -> str:
        return vevent(uid, "DTSTART:20260415T100000Z", "DTEND:20260415T110000Z", "SUMMARY:Lunch")

    a = write(tmp_path, "a.ics", vcal(ev("lunch-team-a")))
    b = write(tmp_path, "b.ics", vcal(ev("lunch-team-b")))
    assert len(IcsCalendar([a, b], tz="UTC").meetings_on(date(2026, 4, 15)).meetings) == 2


def test_same_invitation_in_two_feeds_matches_by_uid_and_instant(tmp_path: Path) -> None:
    # The organiser's feed says Berlin time, the attendee's says UTC: the same instant.
    a = vcal(
        vevent(
            "invite-1",
            "DTSTART;TZID=Europe/Berlin:20260415T100000",
            "DTEND;TZID=Europe/Berlin:20260415T110000",
            "SUMMARY:Roadmap",
        ),
        vevent("moved-twin", "DTSTART:20260415T140000Z", "SUMMARY:Moved copy"),
    )
    b = vcal(
        vevent("invite-1", "DTSTART:20260415T080000Z", "DTEND:20260415T090000Z", "SUMMARY:Roadmap"),
        vevent("moved-twin", "DTSTART:20260415T150000Z", "SUMMARY:Moved copy"),
    )
    cal = IcsCalendar([write(tmp_path, "a.ics", a), write(tmp_path, "b.ics", b)], tz=BERLIN)
    day = cal.meetings_on(date(2026, 4, 15))
    assert [(m.title, m.start.hour, m.calendar) for m in day.meetings] == [
        ("Roadmap", 10, "feed 1 (a.ics)"),
        ("Moved copy", 16, "feed 1 (a.ics)"),
        ("Moved copy", 17, "feed 2 (b.ics)"),
    ]


def test_events_without_uid_are_never_merged(tmp_path: Path) -> None:
    ev = "\n".join(
        [
            "BEGIN:VEVENT",
            "DTSTART:20260415T100000Z",
            "DTEND:20260415T110000Z",
            "SUMMARY:Sync",
            "END:VEVENT",
        ]
    )
    a = write(tmp_path, "a.ics", vcal(ev, ev))
    b = write(tmp_path, "b.ics", vcal(ev))
    assert len(IcsCalendar([a, b], tz="UTC").meetings_on(date(2026, 4, 15)).meetings) == 3


def test_moved_instance_landing_on_another_instance_keeps_both(tmp_path: Path) -> None:
    ics = vcal(
        vevent(
            "daily",
            "DTSTART:20260414T090000Z",
            "DTEND:20260414T093000Z",
            "RRULE:FREQ=DAILY;COUNT=3",
            "SUMMARY:Daily",
        ),
        vevent(
            "daily",
            "RECURRENCE-ID:20260414T090000Z",
            "DTSTART:20260415T090000Z",
            "DTEND:20260415T093000Z",
            "SUMMARY:Daily",
        ),
    )
    day = IcsCalendar([write(tmp_path, "d.ics", ics)], tz="UTC").meetings_on(date(2026, 4, 15))
    assert [m.title for m in day.meetings] == ["Daily", "Daily"]


# ------------------------------------------------------------------- runaway recurrence (#6)


class Ticker:
    """A clock that moves *step* seconds each time it is read: budgets run out after a known
    number of checks, without sleeping."""

    def __init__(self, step: float) -> None:
        self.now = 1000.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


# The 194-byte event of the issue: it starts a year before the day and repeats every second.
FLOOD = vevent("flood", "DTSTART:20250415T000000Z", "RRULE:FREQ=SECONDLY", "SUMMARY:x")


def test_secondly_event_is_cut_at_the_cap_and_the_feed_is_named(tmp_path: Path) -> None:
    other = vevent("real", "DTSTART:20260415T090000Z", "DURATION:PT1H", "SUMMARY:Real")
    flood = write(tmp_path, "flood.ics", vcal(FLOOD))
    good = write(tmp_path, "good.ics", vcal(other))
    began = time.monotonic()
    day = IcsCalendar([flood, good], tz="UTC").meetings_on(date(2026, 4, 15))
    assert time.monotonic() - began < 3
    assert len(day.meetings) == MAX_EVENTS_PER_DAY + 1
    assert "Real" in [m.title for m in day.meetings]
    assert day.failed_feeds == [f"feed 1 (flood.ics): cut at {MAX_EVENTS_PER_DAY} events"]
    flooded = [m for m in day.meetings if m.title == "x"]
    # The day's first seconds, in order: nothing before the day, nothing skipped.
    assert flooded[0].start == datetime(2026, 4, 15, tzinfo=ZoneInfo("UTC"))
    assert flooded[-1].start == flooded[0].start + timedelta(seconds=MAX_EVENTS_PER_DAY - 1)


def test_cap_counts_every_event_of_the_feed(tmp_path: Path) -> None:
    ics = vcal(*(vevent(f"e{i}", "DTSTART:20260415T090000Z", "SUMMARY:Slot") for i in range(12)))
    cal = IcsCalendar([write(tmp_path, "slots.ics", ics)], tz="UTC", max_events=10)
    day = cal.meetings_on(date(2026, 4, 15))
    assert len(day.meetings) == 10
    assert day.failed_feeds == ["feed 1 (slots.ics): cut at 10 events"]
    exact = IcsCalendar([write(tmp_path, "ten.ics", ics)], tz="UTC", max_events=12)
    assert exact.meetings_on(date(2026, 4, 15)).failed_feeds == []


def test_feed_over_its_time_budget_is_cut_and_named(tmp_path: Path) -> None:
    # COUNT pins the series to its start, so the rule has to be walked from 2025: the budget,
    # not the cap, stops it. The clock moves 10 ms per look: 1 s is ~100 looks, no waiting.
    counted = vevent(
        "counted", "DTSTART:20250415T000000Z", "RRULE:FREQ=SECONDLY;COUNT=99999999", "SUMMARY:x"
    )
    path = write(tmp_path, "slow.ics", vcal(counted))
    cal = IcsCalendar([path], tz="UTC", feed_budget=1.0, clock=Ticker(0.01))
    began = time.monotonic()
    day = cal.meetings_on(date(2026, 4, 15))
    assert time.monotonic() - began < 3
    assert day.meetings == []
    assert day.failed_feeds == ["feed 1 (slow.ics): cut after 1 s"]


def test_fast_forwarded_rule_keeps_its_phase(tmp_path: Path) -> None:
    # Every 7 minutes since 2025-01-01 00:03 Berlin time, across DST changes: the 2026-04-15
    # instances are the ones a walk from the first start gives.
    ics = vcal(
        vevent(
            "seven",
            "DTSTART;TZID=Europe/Berlin:20250101T000300",
            "DURATION:PT2M",
            "RRULE:FREQ=MINUTELY;INTERVAL=7;BYHOUR=9,10",
            "SUMMARY:Tick",
        )
    )
    cal = IcsCalendar([write(tmp_path, "seven.ics", ics)], tz=BERLIN)
    got = [m.start for m in cal.meetings_on(date(2026, 4, 15)).meetings]
    rule = rrulestr(
        "FREQ=MINUTELY;INTERVAL=7;BYHOUR=9,10",
        dtstart=datetime(2025, 1, 1, 0, 3, tzinfo=BERLIN),
    )
    want = rule.between(
        datetime(2026, 4, 15, tzinfo=BERLIN), datetime(2026, 4, 16, tzinfo=BERLIN), inc=True
    )
    assert got == want and len(want) > 10


FREQS = ["SECONDLY", "MINUTELY", "HOURLY", "DAILY", "WEEKLY", "MONTHLY", "YEARLY"]
UNIT = {
    "SECONDLY": timedelta(seconds=1),
    "MINUTELY": timedelta(minutes=1),
    "HOURLY": timedelta(hours=1),
    "DAILY": timedelta(days=1),
    "WEEKLY": timedelta(weeks=1),
    "MONTHLY": timedelta(days=31),
    "YEARLY": timedelta(days=366),
}
DAY = date(2026, 4, 15)


@settings(max_examples=60, deadline=None)
@given(
    freq=st.sampled_from(FREQS),
    interval=st.integers(1, 40),
    count=st.none() | st.integers(1, 10**9),
    steps_before=st.integers(0, 10**6),
    minutes=st.integers(0, 3 * 24 * 60),
    tz=st.sampled_from(["UTC", "Europe/Berlin", "America/New_York"]),
    byday=st.sets(st.sampled_from(["MO", "TU", "WE", "TH", "FR", "SA", "SU"]), max_size=3),
    byhour=st.sets(st.integers(0, 23), max_size=3),
)
def test_any_rule_stays_under_the_cap_and_within_budget(
    freq: str,
    interval: int,
    count: int | None,
    steps_before: int,
    minutes: int,
    tz: str,
    byday: set[str],
    byhour: set[int],
) -> None:
    zone = ZoneInfo(tz)
    anchor = datetime(2026, 4, 15, 12, tzinfo=zone)
    first = anchor - UNIT[freq] * min(
        steps_before, (anchor - datetime(1990, 1, 1, tzinfo=zone)) // UNIT[freq]
    )
    if (freq == "HOURLY" and byhour) or (freq == "DAILY" and interval % 7 == 0):
        # These could step over every listed weekday forever: dateutil then searches up to the
        # year 9999 (seconds, uninterruptible) before it gives up. Not what this test is about.
        byday = set()
    rule = f"FREQ={freq};INTERVAL={interval}" + (f";COUNT={count}" if count else "")
    rule += f";BYDAY={','.join(sorted(byday))}" if byday else ""
    rule += f";BYHOUR={','.join(map(str, sorted(byhour)))}" if byhour else ""
    ics = vcal(
        vevent(
            "r",
            f"DTSTART;TZID={tz}:{first:%Y%m%dT%H%M%S}",
            f"DURATION:PT{minutes}M",
            f"RRULE:{rule}",
            "SUMMARY:r",
        )
    )
    cap = 50
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), "r.ics", ics)
        cal = IcsCalendar([path], tz=zone, max_events=cap, feed_budget=5.0, clock=Ticker(1e-3))
        began = time.monotonic()
        day = cal.meetings_on(DAY)
        assert time.monotonic() - began < 2.5
    day_start, day_end = datetime(2026, 4, 15, tzinfo=zone), datetime(2026, 4, 16, tzinfo=zone)
    assert len(day.meetings) <= cap
    assert all(m.start < day_end and (m.end > day_start or m.end == m.start) for m in day.meetings)
    if not day.failed_feeds:
        # Nothing was cut: the day's instances are the ones dateutil walks to from DTSTART, plus
        # DTSTART itself (an instance even where the rule would not give it).
        length = timedelta(minutes=minutes)
        starts = {first, *rrulestr(rule, dtstart=first).between(day_start - length, day_end, True)}
        want = sorted(
            s
            for s in starts
            if s < day_end and (s + length > day_start if length else s >= day_start)
        )
        assert sorted(m.start for m in day.meetings) == want


def test_parsing_counts_against_the_budget(tmp_path: Path) -> None:
    ics = vcal(vevent("a", "DTSTART:20260415T090000Z", "SUMMARY:A"))
    cal = IcsCalendar([write(tmp_path, "a.ics", ics)], tz="UTC", feed_budget=5, clock=Ticker(6))
    day = cal.meetings_on(date(2026, 4, 15))
    assert (day.meetings, day.failed_feeds) == ([], ["feed 1 (a.ics): cut after 5 s"])


# --------------------------------------------------------------------------- slow feeds (#7)


@pytest.mark.parametrize("where", ["body", "headers"])
def test_trickling_feed_is_cut_at_one_total_deadline(
    feeds: _Feeds, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    # A byte every 20 ms never trips a per-read timeout of 0.4 s; the total deadline must.
    feeds.slow[f"/{SECRET}/slow.ics"] = (where, 0.02)
    feeds.routes["/ok.ics"] = (200, WEEKLY.encode())
    cal = IcsCalendar(
        [f"{feeds.base}/{SECRET}/slow.ics", f"{feeds.base}/ok.ics"], tz=BERLIN, fetch_timeout=0.4
    )
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        day = cal.meetings_on(date(2026, 3, 2))
    assert time.monotonic() - began < 2
    assert day.failed_feeds == ["feed 1 (127.0.0.1)"]
    assert [m.title for m in day.meetings] == ["Standup"]
    assert "timed out after 0.4 s" in caplog.text
    assert SECRET not in caplog.text


def test_fetch_deadline_reads_the_injected_clock(
    feeds: _Feeds, caplog: pytest.LogCaptureFixture
) -> None:
    # Bytes arrive every 5 ms but the clock says a second passes per look: past 10 s after a
    # handful of reads, long before the real 10 s.
    feeds.slow["/slow.ics"] = ("body", 0.005)
    cal = IcsCalendar([f"{feeds.base}/slow.ics"], tz=BERLIN, fetch_timeout=10, clock=Ticker(1))
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        day = cal.meetings_on(date(2026, 3, 2))
    assert time.monotonic() - began < 2
    assert day.failed_feeds == ["feed 1 (127.0.0.1)"]
    assert "timed out after 10 s" in caplog.text


def test_feed_announcing_too_many_bytes_is_refused_before_reading(
    feeds: _Feeds, caplog: pytest.LogCaptureFixture
) -> None:
    feeds.slow["/huge.ics"] = ("body", 0.02)  # says Content-Length: 1000000
    cal = IcsCalendar([f"{feeds.base}/huge.ics"], tz=BERLIN, max_bytes=1000, fetch_timeout=5)
    began = time.monotonic()
    with caplog.at_level(logging.WARNING):
        day = cal.meetings_on(date(2026, 3, 2))
    assert time.monotonic() - began < 1
    assert day.failed_feeds == ["feed 1 (127.0.0.1)"]
    assert "larger than 1000 bytes" in caplog.text


def test_feed_cut_short_by_the_server_is_not_read_as_complete(
    feeds: _Feeds, caplog: pytest.LogCaptureFixture
) -> None:
    feeds.short["/short.ics"] = WEEKLY.encode()
    with caplog.at_level(logging.WARNING):
        day = IcsCalendar([f"{feeds.base}/short.ics"], tz=BERLIN).meetings_on(date(2026, 3, 2))
    assert (day.meetings, day.failed_feeds) == ([], ["feed 1 (127.0.0.1)"])
    assert "connection closed before the end of the feed" in caplog.text


def test_recurring_ical_events_still_walks_rules_through_our_override() -> None:
    # The bound relies on Series building its rules from self.RecurrenceRules and asking them
    # for rrule_between(); a library release that changes that must fail here, not hang above.
    event = icalendar.Calendar.from_ical(vcal(FLOOD)).walk("VEVENT")[0]
    series = BoundedSeries([recurring_ical_events.EventAdapter(event)])
    assert type(series.recurrence) is BoundedSeries.RecurrenceRules
    calls: list[object] = []
    series.recurrence.rrule_between = lambda a, b: calls.append((a, b)) or iter(())
    start = datetime(2026, 4, 15, tzinfo=ZoneInfo("UTC"))
    assert list(series.between(start, start + timedelta(days=1))) == []
    assert calls
