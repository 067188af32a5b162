"""Digest claims are fenced: a run that lost its claim to a takeover does not post.

Two DigestService "processes" share one MemoryStore and one chat; the store's clock is moved by
hand, with the stale period scaled down to 2 s.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

import pytest

from bot.domain.digests import MeetingDigest, TakeawayDigest
from bot.service.run_digest import DigestService, Rendered
from tests.fakes.chat import RecordingChat
from tests.fakes.digest_store import FixedCalendar
from tests.fakes.memory_store import ManualClock, MemoryStore

DAY = date(2026, 4, 15)
STALE = timedelta(seconds=2)


def _service(
    store: MemoryStore, chat: RecordingChat, clock: ManualClock, render: Callable[[], None]
) -> DigestService:
    def meetings(d: MeetingDigest) -> Rendered:
        render()
        return Rendered(f"meetings {d.day}", [{"type": "section"}], "text")

    def takeaways(d: TakeawayDigest) -> Rendered:
        return Rendered(f"takeaways {d.day}", [], "text")

    return DigestService(
        store=store,
        chat=chat,
        calendar=FixedCalendar(),
        tz="UTC",
        workday=(time(9), time(17)),
        render_meetings=meetings,
        render_takeaways=takeaways,
        clock=clock,
        stale_claim=STALE,
    )


def test_a_run_whose_claim_was_taken_over_while_building_does_not_post(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = ManualClock(datetime(2026, 4, 15, 8, 30, tzinfo=UTC))
    store, chat = MemoryStore(clock), RecordingChat()
    second: list[str] = []

    def slow_build() -> None:
        # Run A builds for 3 s (a slow model); meanwhile the scheduler of replica B runs it.
        if not second:
            clock.advance(timedelta(seconds=3))
            second.append(b.run("meetings", "CDIGEST", DAY).status)

    a = _service(store, chat, clock, slow_build)
    b = _service(store, chat, clock, lambda: None)
    with caplog.at_level(logging.WARNING):
        first = a.run("meetings", "CDIGEST", DAY)
    assert second == ["posted"]  # B found A's claim stale, saw no message, and posted
    assert first.status == "in_progress"
    assert len(chat.posts) == 1
    record = store.get_digest("meetings", "CDIGEST", DAY)
    assert record is not None and record.message_ts == chat.posts[0]["ts"]
    assert "taken over while building" in caplog.text


def test_a_slow_build_that_was_not_taken_over_posts_and_keeps_its_claim_fresh() -> None:
    clock = ManualClock(datetime(2026, 4, 15, 8, 30, tzinfo=UTC))
    store, chat = MemoryStore(clock), RecordingChat()
    a = _service(store, chat, clock, lambda: clock.advance(timedelta(seconds=3)))
    assert a.run("meetings", "CDIGEST", DAY).status == "posted"
    assert len(chat.posts) == 1


def test_a_failed_post_releases_only_its_own_claim() -> None:
    clock = ManualClock(datetime(2026, 4, 15, 8, 30, tzinfo=UTC))
    store, chat = MemoryStore(clock), RecordingChat()
    second: list[str] = []

    def slow_then_fail() -> None:
        if not second:
            clock.advance(timedelta(seconds=3))
            # B takes the stale claim over but is still building when A's post fails
            assert store.claim_digest("meetings", "CDIGEST", DAY, stale_after=STALE, token="b")
            second.append("b")
            raise ConnectionError("calendar is down")

    a = _service(store, chat, clock, slow_then_fail)
    assert a.run("meetings", "CDIGEST", DAY).status == "failed"
    assert store.renew_digest_claim("meetings", "CDIGEST", DAY, "b")  # B's claim survived
