"""DigestScheduler: cron triggers in DIGEST_TIMEZONE, slots, grace, catch-up; time is injected."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.adapters.store_sql import SqlStore
from bot.bootstrap import Bot, bootstrap
from bot.config import Settings
from bot.domain.ports import Meeting
from bot.scheduler import DigestScheduler, digest_trigger
from tests.fakes.chat import RecordingChat
from tests.fakes.digest_store import FixedCalendar
from tests.fakes.embedder import HashEmbedder

BERLIN = ZoneInfo("Europe/Berlin")
WED = date(2026, 4, 15)


def berlin(day: date, h: int, m: int = 0) -> datetime:
    return datetime.combine(day, time(h, m), tzinfo=BERLIN)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_data_dir=tmp_path / "data",
        digest_channel="CDIGEST",
        digest_timezone="Europe/Berlin",
        digest_days="mon-fri",
        meeting_digest_at="08:30",
        takeaway_digest_at="17:30",
        digest_grace_minutes=120,
    )


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    s = SqlStore(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    yield s
    s.close()


@pytest.fixture
def services(settings: Settings, store: SqlStore) -> Bot:
    cal = FixedCalendar([Meeting("Standup", berlin(WED, 9), berlin(WED, 9, 15))])
    return bootstrap(
        settings,
        store=store,
        embedder=HashEmbedder(),
        llm=None,
        tracker=None,
        calendar=cal,
        slack_client=None,
    )


def _svc(services: Bot, chat: RecordingChat | None = None, clock: Clock | None = None) -> Any:
    """The digest use case of *services*' adapters, speaking to *chat* at *clock*'s time."""
    a = services.adapters
    return bootstrap(
        services.settings,
        store=a.store,
        embedder=a.embedder,
        llm=None,
        tracker=None,
        calendar=a.calendar,
        slack_client=None,
        chat=chat if chat is not None else RecordingChat(),
        **({"clock": clock} if clock is not None else {}),
    ).digests


def scheduler(services: Bot, chat: RecordingChat, now: datetime) -> DigestScheduler:
    clock = Clock(now)
    return DigestScheduler(services.settings, _svc(services, chat, clock), clock=clock)


def test_triggers_use_the_digest_time_zone_and_weekdays(settings: Settings) -> None:
    trig = digest_trigger(settings, "meetings")
    assert trig.timezone == BERLIN
    # Friday 08:30 Berlin -> next is Monday 08:30 Berlin (weekend skipped).
    nxt = trig.get_next_fire_time(None, berlin(date(2026, 4, 17), 8, 31))
    assert nxt == berlin(date(2026, 4, 20), 8, 30)
    # Across the DST change (Sun 29 March 2026): still 08:30 local on Monday, i.e. 06:30 UTC.
    nxt = trig.get_next_fire_time(None, berlin(date(2026, 3, 27), 9))
    assert nxt.astimezone(UTC) == datetime(2026, 3, 30, 6, 30, tzinfo=UTC)
    take = digest_trigger(settings, "takeaways").get_next_fire_time(None, berlin(WED, 9))
    assert take == berlin(WED, 17, 30)


def test_slot_and_grace_logic(services: Bot) -> None:
    ds = scheduler(services, RecordingChat(), berlin(WED, 8, 0))
    assert ds.last_slot("meetings", berlin(WED, 8, 29)) == berlin(date(2026, 4, 14), 8, 30)
    assert ds.due_day("meetings", berlin(WED, 8, 29)) is None  # yesterday's is beyond grace
    assert ds.due_day("meetings", berlin(WED, 8, 30)) == WED
    assert ds.due_day("meetings", berlin(WED, 10, 30)) == WED  # exactly at the grace limit
    assert ds.due_day("meetings", berlin(WED, 10, 31)) is None
    saturday = date(2026, 4, 18)
    assert ds.due_day("meetings", berlin(saturday, 9)) is None  # no slot on weekends
    # A late slot is still due just after midnight, for the day it belongs to.
    ds.grace = ds.grace * 3
    ds.triggers["takeaways"] = digest_trigger(
        services.settings.model_copy(update={"takeaway_digest_at": time(23, 30)}), "takeaways"
    )
    assert ds.due_day("takeaways", berlin(date(2026, 4, 16), 0, 30)) == WED


def test_run_slot_posts_the_slot_that_just_passed_once(services: Bot) -> None:
    chat = RecordingChat()
    ds = scheduler(services, chat, berlin(WED, 8, 30))
    result = ds.run_slot("meetings")
    assert result is not None and result.status == "posted" and result.day == WED
    assert ds.run_slot("meetings") is not None
    assert len(chat.posts) == 1
    assert chat.posts[0]["text"].startswith("Meetings for Wednesday 15 April 2026: 1 meeting")


def test_run_slot_beyond_grace_posts_nothing(services: Bot) -> None:
    chat = RecordingChat()
    ds = scheduler(services, chat, berlin(WED, 11))
    assert ds.run_slot("meetings") is None
    assert chat.posts == []


def test_catch_up_runs_only_missed_slots_within_grace(services: Bot, store: SqlStore) -> None:
    chat = RecordingChat()
    # 18:00: the takeaway slot (17:30) is within grace; the meeting slot (08:30) is long gone.
    results = scheduler(services, chat, berlin(WED, 18)).catch_up()
    assert [(r.digest, r.status) for r in results] == [("takeaways", "posted")]
    assert store.get_digest("meetings", "CDIGEST", WED) is None
    # A restart a minute later finds the record and does nothing.
    assert scheduler(services, chat, berlin(WED, 18, 1)).catch_up() == []
    assert len(chat.posts) == 1


def test_start_registers_cron_jobs_and_shutdown_stops(services: Bot) -> None:
    chat = RecordingChat()
    ds = scheduler(services, chat, berlin(WED, 7))  # nothing due: catch-up posts nothing
    assert ds.start() is True
    try:
        sched = ds.scheduler
        assert sched is not None
        jobs = {j.id: j for j in sched.get_jobs()}
        assert {"digest-meetings", "digest-takeaways"} <= set(jobs)
        job: Any = jobs["digest-meetings"]
        assert job.misfire_grace_time == 7200 and job.coalesce is True
        assert str(job.trigger.timezone) == "Europe/Berlin"
        assert job.next_run_time.tzinfo is not None
        assert (job.next_run_time.astimezone(BERLIN).hour, job.next_run_time.minute) == (8, 30)
        assert ds.start() is True  # idempotent
    finally:
        ds.shutdown()
    assert ds.scheduler is None
    assert chat.posts == []


def test_no_channel_means_no_schedule(services: Bot) -> None:
    services.settings = services.settings.model_copy(update={"digest_channel": None})
    ds = DigestScheduler(services.settings, _svc(services))
    assert ds.start() is False and ds.catch_up(berlin(WED, 8, 31)) == []
    assert ds.run_slot("meetings", berlin(WED, 8, 31)) is None


def test_without_calendar_feeds_only_the_takeaways_are_scheduled(services: Bot) -> None:
    services.adapters.calendar = None  # and MEETINGS_ICS is unset in these settings
    chat = RecordingChat()
    ds = DigestScheduler(services.settings, _svc(services, chat))
    assert list(ds.triggers) == ["takeaways"]
    assert [r.digest for r in ds.catch_up(berlin(WED, 17, 40))] == ["takeaways"]
    assert ds.catch_up(berlin(WED, 8, 40)) == []  # the morning slot is not a missed meetings one


def test_stale_claim_whose_message_got_out_is_recorded_not_posted_again(
    services: Bot, store: SqlStore
) -> None:
    # A run claimed the slot, posted the tagged digest and died before recording it: the
    # catch-up takes the stale claim over and finds the message by its metadata.
    from datetime import timedelta

    from sqlalchemy import update

    from bot.adapters.store_sql import digests
    from bot.service.run_digest import DIGEST_EVENT_TYPE, digest_key

    chat = RecordingChat()
    meta = {
        "event_type": DIGEST_EVENT_TYPE,
        "event_payload": {"key": digest_key("meetings", "CDIGEST", WED)},
    }
    ts = chat.post("CDIGEST", "meetings", metadata=meta)
    assert store.claim_digest("meetings", "CDIGEST", WED) is True
    with store.engine.begin() as conn:
        conn.execute(update(digests).values(claimed_at=datetime.now(UTC) - timedelta(hours=1)))
    results = scheduler(services, chat, berlin(WED, 9)).catch_up()
    assert [(r.digest, r.status, r.message_ts) for r in results] == [
        ("meetings", "already_posted", ts)
    ]
    assert len(chat.posts) == 1
