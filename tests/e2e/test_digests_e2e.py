"""Digests end to end: iCalendar files -> IcsCalendar -> DigestScheduler / CLI -> SqlStore claim ->
real slack_sdk WebClient -> local FakeSlack. Time is injected; nothing sleeps waiting for cron."""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient
from sqlalchemy import update

from bot.adapters.store_sql import SqlStore, digests
from bot.bootstrap import Bot, bootstrap, build_slack_client
from bot.cli import build_parser
from bot.cli.digest import run_digest
from bot.config import Settings
from bot.domain.envelope import read
from bot.domain.events import read_digest_claim
from bot.domain.ports import StoredPost
from bot.scheduler import DigestScheduler
from tests.fakes.embedder import HashEmbedder
from tests.fakes.slack_server import FakeSlack

BERLIN = ZoneInfo("Europe/Berlin")
WED = date(2026, 4, 15)
SECRET = "private-0a1b2c3d4e5f-SECRET"

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//ideabot e2e//EN
BEGIN:VEVENT
UID:standup@e2e
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20260406T091500
DTEND;TZID=Europe/Berlin:20260406T093000
RRULE:FREQ=DAILY;BYDAY=MO,TU,WE,TH,FR
SUMMARY:Team standup
X-GOOGLE-CONFERENCE:https://meet.google.com/abc-defg-hij
END:VEVENT
BEGIN:VEVENT
UID:ny@e2e
DTSTAMP:20260101T000000Z
DTSTART;TZID=America/New_York:20260415T090000
DTEND;TZID=America/New_York:20260415T100000
SUMMARY:Partner call (NY)
DESCRIPTION:https://acme.zoom.us/j/123
END:VEVENT
BEGIN:VEVENT
UID:cancel@e2e
DTSTAMP:20260101T000000Z
DTSTART;TZID=Europe/Berlin:20260415T110000
DTEND;TZID=Europe/Berlin:20260415T120000
STATUS:CANCELLED
SUMMARY:Cancelled review
END:VEVENT
END:VCALENDAR
""".replace("\n", "\r\n")


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def berlin(h: int, m: int = 0, day: date = WED) -> datetime:
    return datetime.combine(day, time(h, m), tzinfo=BERLIN)


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()


@pytest.fixture
def settings(tmp_path: Path, slack: FakeSlack) -> Settings:
    good = tmp_path / "team.ics"
    good.write_text(ICS, encoding="utf-8")
    # An unreachable secret feed: nothing listens on port 1.
    broken = f"https://127.0.0.1:1/calendar/ical/{SECRET}/basic.ics"
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        bot_data_dir=tmp_path / "data",
        slack_bot_token=slack.token,  # type: ignore[arg-type]
        slack_api_url=slack.base_url,
        digest_channel="CDIGEST",
        digest_timezone="Europe/Berlin",
        meeting_digest_at="08:30",
        takeaway_digest_at="17:30",
        digest_grace_minutes=120,
        meetings_ics=[str(good), broken],
        idea_channels=["CIDEAS", "GPRIV"],
    )


_OPEN: list[SqlStore] = []


def make_services(settings: Settings, store_url: str) -> Bot:
    """One bot "process": its own SqlStore object and WebClient, through the real bootstrap."""
    store = SqlStore(store_url)
    _OPEN.append(store)
    return bootstrap(
        settings,
        store=store,
        embedder=HashEmbedder(),
        llm=None,
        tracker=None,
        slack_client=build_slack_client(settings),
    )


@pytest.fixture(autouse=True)
def _close_stores() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def posted(slack: FakeSlack) -> list[dict[str, object]]:
    return slack.calls_to("chat.postMessage")


def cli(args: list[str], services: Bot) -> tuple[int, str, str]:
    """`ideabot digest ARGS`: the production parser, run on *services* (not bootstrapped anew)."""
    out, err = io.StringIO(), io.StringIO()
    code = run_digest(build_parser().parse_args(["digest", *args]), services, out, err)
    return code, out.getvalue(), err.getvalue()


def test_two_schedulers_racing_post_exactly_once(
    settings: Settings, store_url: str, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    procs = [make_services(settings, store_url) for _ in range(2)]
    clock = Clock(berlin(8, 30))
    scheds = [DigestScheduler(p.settings, p.digests, clock=clock) for p in procs]
    barrier = threading.Barrier(2)
    statuses: list[str] = []

    def fire(s: DigestScheduler) -> None:
        barrier.wait()
        result = s.run_slot("meetings")
        statuses.append(result.status if result else "none")

    with caplog.at_level(logging.DEBUG):
        threads = [threading.Thread(target=fire, args=(s,)) for s in scheds]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    calls = posted(slack)
    assert len(calls) == 1, statuses
    assert statuses.count("posted") == 1
    msg = calls[0]
    assert msg["channel"] == "CDIGEST"
    body = json.dumps(msg["blocks"], ensure_ascii=False)
    assert "*09:15–09:30*  Team standup · <https://meet.google.com/abc-defg-hij|Join>" in body
    assert "*15:00–16:00*  Partner call (NY) · <https://acme.zoom.us/j/123|Join>" in body
    assert "Cancelled review" not in body
    assert "Could not read feed 2 (127.0.0.1)" in body
    assert SECRET not in body and SECRET not in str(msg["text"]) and SECRET not in caplog.text
    record = procs[0].adapters.store.get_digest("meetings", "CDIGEST", WED)
    assert record is not None and record.state == "posted"
    assert record.message_ts == next(m.ts for m in slack.messages.values())


def test_restart_catch_up_within_grace_posts_once(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    first = make_services(settings, store_url)
    # Down at 08:30; back at 09:45 (within 120 min): the missed meeting digest goes out now.
    results = DigestScheduler(first.settings, first.digests, clock=Clock(berlin(9, 45))).catch_up()
    assert [(r.digest, r.status, r.day) for r in results] == [("meetings", "posted", WED)]
    # Restarted again, and a second process starting at the same time: nothing more.
    second = make_services(settings, store_url)
    assert (
        DigestScheduler(second.settings, second.digests, clock=Clock(berlin(9, 50))).catch_up()
        == []
    )
    assert (
        DigestScheduler(first.settings, first.digests, clock=Clock(berlin(9, 50))).catch_up() == []
    )
    assert len(posted(slack)) == 1


def test_missed_beyond_grace_is_not_posted_late(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    ds = DigestScheduler(services.settings, services.digests, clock=Clock(berlin(10, 31)))
    assert ds.catch_up() == []
    assert ds.run_slot("meetings") is None  # a late cron fire is refused too
    assert posted(slack) == []
    assert services.adapters.store.get_digest("meetings", "CDIGEST", WED) is None


def test_manual_run_after_scheduled_says_already_posted_and_force_reposts(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    result = DigestScheduler(
        services.settings, services.digests, clock=Clock(berlin(8, 30))
    ).run_slot("meetings")
    assert result is not None and result.status == "posted"

    code, out, err = cli(["meetings", "--date", "2026-04-15"], services)
    assert code == 0 and "already posted" in err and out == ""
    assert len(posted(slack)) == 1

    code, _, err = cli(["meetings", "--date", "2026-04-15", "--force"], services)
    assert code == 0 and "posted meetings digest for 2026-04-15 in CDIGEST" in err
    assert len(posted(slack)) == 2
    record = services.adapters.store.get_digest("meetings", "CDIGEST", WED)
    digest_msgs = sorted(m.ts for m in slack.messages.values() if m.channel == "CDIGEST")
    assert record is not None and record.message_ts == digest_msgs[-1]


def test_cli_dry_run_prints_text_or_json_and_claims_nothing(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    code, out, err = cli(["meetings", "--date", "2026-04-15", "--dry-run"], services)
    assert code == 0 and "not posted" in err
    assert out.splitlines()[0] == "Meetings · Wednesday 15 April 2026 (times in Europe/Berlin)"
    assert "  09:15–09:30  Team standup · https://meet.google.com/abc-defg-hij" in out
    assert "Could not read: feed 2 (127.0.0.1)" in out and SECRET not in out

    code, out, _ = cli(["meetings", "--date", "2026-04-15", "--dry-run", "--json"], services)
    payload = json.loads(out)
    assert code == 0 and payload["channel"] == "CDIGEST"
    assert payload["blocks"][0]["type"] == "header" and len(payload["blocks"]) <= 50
    assert posted(slack) == []
    assert services.adapters.store.get_digest("meetings", "CDIGEST", WED) is None


def test_cli_without_a_channel_exits_2(settings: Settings, store_url: str) -> None:
    services = make_services(settings.model_copy(update={"digest_channel": None}), store_url)
    code, _, err = cli(["takeaways"], services)
    assert code == 2 and "DIGEST_CHANNEL" in err
    code, _, err = cli(["takeaways", "--channel", "CX", "--dry-run"], services)
    assert code == 0


def test_rate_limited_post_is_retried_after_retry_after(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    slack.rate_limit_next("chat.postMessage", times=1, retry_after=0)
    code, _, err = cli(["meetings", "--date", "2026-04-15"], services)
    assert code == 0, err
    calls = posted(slack)
    assert len(calls) == 2  # the 429, then the retry
    assert len([m for m in slack.messages.values() if m.channel == "CDIGEST"]) == 1


def test_failed_post_releases_the_key_and_the_next_run_posts(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    slack.fail_next("chat.postMessage", "internal_error")
    code, _, err = cli(["meetings", "--date", "2026-04-15"], services)
    assert code == 1 and "not posted" in err
    assert services.adapters.store.get_digest("meetings", "CDIGEST", WED) is None
    code, _, _ = cli(["meetings", "--date", "2026-04-15"], services)
    assert code == 0 and len([m for m in slack.messages.values() if m.channel == "CDIGEST"]) == 1


def test_takeaways_post_only_what_the_digest_channel_may_see(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    now = datetime.now(UTC)
    today = now.astimezone(BERLIN).date()
    store = services.adapters.store

    def save(channel: str, ts: str, title: str, private: bool, reactions: int) -> None:
        store.save_post(
            StoredPost(
                channel=channel,
                ts=ts,
                user="U1",
                text=title,
                created=now,
                kind="idea",
                title=title,
                summary=f"{title} summary",
                reactions=reactions,
                is_private=private,
            )
        )

    save("CIDEAS", "1.000001", "Public dark mode", False, 3)
    save("GPRIV", "1.000002", "Secret acquisition idea", True, 9)
    slack.set_private("GPRIV")
    code, _, _ = cli(["takeaways", "--date", today.isoformat()], services)
    assert code == 0
    code, _, _ = cli(["takeaways", "--date", today.isoformat(), "--channel", "GPRIV"], services)
    assert code == 0
    public, private = posted(slack)
    assert public["channel"] == "CDIGEST" and private["channel"] == "GPRIV"
    assert "Public dark mode" in json.dumps(public["blocks"])
    assert "Secret acquisition" not in json.dumps(public["blocks"])
    assert "Secret acquisition idea" in json.dumps(private["blocks"])


def test_scheduler_start_and_shutdown_inside_a_process(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    ds = DigestScheduler(services.settings, services.digests, clock=Clock(berlin(9, 0)))
    assert ds.start()
    ds.shutdown(wait=True)  # waits for the start-up catch-up job
    # The catch-up ran in the scheduler's worker (08:30 slot, 30 min ago): posted once.
    assert len(posted(slack)) == 1
    assert isinstance(
        services.adapters.slack_client, WebClient
    )  # the real SDK client, via bootstrap


def test_llm_overview_and_takeaways_come_from_the_prompt_files(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    from tests.fakes.chat_model import ScriptedChatModel

    model = ScriptedChatModel(
        responses=[
            "A light day with one stand-up and a partner call. The afternoon is free <!here>.",
            "• Dark mode is the most requested change\n• Exports matter to finance",
        ]
    )
    store = SqlStore(store_url)
    _OPEN.append(store)
    services = bootstrap(
        settings,
        store=store,
        embedder=HashEmbedder(),
        llm=model,
        tracker=None,
        slack_client=build_slack_client(settings),
    )
    code, out, _ = cli(["meetings", "--date", "2026-04-15", "--dry-run"], services)
    assert code == 0
    assert "A light day with one stand-up and a partner call. The afternoon is free ." in out
    assert "09:15-09:30 Team standup" in model.prompt_text(0)
    now = datetime.now(UTC)
    store.save_post(
        StoredPost(
            channel="CIDEAS", ts="5.1", user="U1", text="Dark mode please", created=now, kind="idea"
        )
    )
    day = now.astimezone(BERLIN).date().isoformat()
    code, out, _ = cli(["takeaways", "--date", day, "--dry-run"], services)
    assert code == 0
    assert "Key takeaways:\n• Dark mode is the most requested change" in out
    assert "Dark mode please" in model.prompt_text(1)


# --------------------------------------------------------------------------- crash recovery


def _crashed_claim(services: Bot, kind: str = "meetings", age_minutes: int = 10) -> None:
    """What a process that died right after claiming leaves behind: an old, unposted claim."""
    store = services.adapters.store
    assert isinstance(store, SqlStore)
    assert store.claim_digest(kind, "CDIGEST", WED) is True
    with store.engine.begin() as conn:
        conn.execute(
            update(digests).values(claimed_at=datetime.now(UTC) - timedelta(minutes=age_minutes))
        )


def _digest_messages(slack: FakeSlack) -> list[str]:
    return sorted(m.ts for m in slack.messages.values() if m.channel == "CDIGEST")


def test_crash_after_claim_before_post_catch_up_posts_exactly_once(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    crashed = make_services(settings, store_url)
    _crashed_claim(crashed)
    restarted = make_services(settings, store_url)
    results = DigestScheduler(
        restarted.settings, restarted.digests, clock=Clock(berlin(9, 0))
    ).catch_up()
    assert [(r.digest, r.status) for r in results] == [("meetings", "posted")]
    (call,) = posted(slack)
    # The message's metadata is the event envelope, in the shape Slack takes (one level deep).
    meta = call["metadata"]
    assert meta["event_type"] == "ideabot_digest"
    assert set(meta["event_payload"]) == {"metadata", "data"}
    assert meta["event_payload"]["data"] == {
        "key": "meetings:CDIGEST:2026-04-15",
        "digest": "meetings",
        "channel": "CDIGEST",
        "day": "2026-04-15",
    }
    assert read(meta["event_payload"]).metadata.version == 1
    record = restarted.adapters.store.get_digest("meetings", "CDIGEST", WED)
    assert record is not None and record.state == "posted"
    # The claim the crashed (older) run left was bare; the record now holds the envelope.
    claim = read_digest_claim(record.extra, "meetings", "CDIGEST", WED)
    assert claim.metadata.version == 1 and claim.type == "digest.claim"
    assert claim.data["message_ts"] == record.message_ts
    assert claim.trace_id == meta["event_payload"]["metadata"]["trace_id"]
    assert [record.message_ts] == _digest_messages(slack)
    # The history was read from the start of that day, with metadata.
    (history,) = slack.calls_to("conversations.history")
    assert history["channel"] == "CDIGEST" and history["include_all_metadata"] in ("1", "true")
    assert float(history["oldest"]) <= datetime(2026, 4, 14, 22, 0, tzinfo=UTC).timestamp()
    # Another restart: nothing more.
    assert (
        DigestScheduler(restarted.settings, restarted.digests, clock=Clock(berlin(9, 5))).catch_up()
        == []
    )
    assert len(posted(slack)) == 1


def test_crash_after_post_before_record_catch_up_finds_it_and_does_not_repost(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    crashed = make_services(settings, store_url)
    _crashed_claim(crashed)
    # The dead process (the previous release: a bare key, no envelope, in the metadata) got its
    # message out but never recorded it.
    from bot.adapters.slack_chat import SlackChat

    assert crashed.adapters.slack_client is not None
    ts = SlackChat(crashed.adapters.slack_client).post(
        "CDIGEST",
        "Meetings today",
        metadata={
            "event_type": "ideabot_digest",
            "event_payload": {"key": "meetings:CDIGEST:2026-04-15"},
        },
    )
    # Unrelated tagged messages (another day, another digest) must not be mistaken for it.
    slack.add_message(
        "CDIGEST",
        f"{float(ts) + 1:.6f}",
        "Takeaways",
        metadata={
            "event_type": "ideabot_digest",
            "event_payload": {"key": "takeaways:CDIGEST:2026-04-15"},
        },
    )
    slack.reset_calls()

    restarted = make_services(settings, store_url)
    results = DigestScheduler(
        restarted.settings, restarted.digests, clock=Clock(berlin(9, 0))
    ).catch_up()
    assert [(r.digest, r.status, r.message_ts) for r in results] == [
        ("meetings", "already_posted", ts)
    ]
    assert posted(slack) == []
    record = restarted.adapters.store.get_digest("meetings", "CDIGEST", WED)
    assert record is not None and record.state == "posted" and record.message_ts == ts


def test_two_schedulers_racing_on_a_stale_claim_post_once(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    _crashed_claim(make_services(settings, store_url))
    procs = [make_services(settings, store_url) for _ in range(2)]
    clock = Clock(berlin(9, 0))
    scheds = [DigestScheduler(p.settings, p.digests, clock=clock) for p in procs]
    barrier = threading.Barrier(2)
    statuses: list[str] = []

    def go(s: DigestScheduler) -> None:
        barrier.wait()
        statuses.extend(r.status for r in s.catch_up())

    threads = [threading.Thread(target=go, args=(s,)) for s in scheds]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(posted(slack)) == 1, statuses
    assert len(_digest_messages(slack)) == 1
    assert statuses.count("posted") == 1
    assert set(statuses) <= {"posted", "in_progress", "already_posted"}


def test_fresh_claim_is_left_alone_and_history_failure_never_posts(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    _crashed_claim(services, age_minutes=1)
    ds = DigestScheduler(services.settings, services.digests, clock=Clock(berlin(9, 0)))
    assert [r.status for r in ds.catch_up()] == ["in_progress"]  # may still be running
    assert posted(slack) == [] and slack.calls_to("conversations.history") == []

    store = services.adapters.store
    assert isinstance(store, SqlStore)
    with store.engine.begin() as conn:
        conn.execute(update(digests).values(claimed_at=datetime.now(UTC) - timedelta(minutes=10)))
    slack.fail_next("conversations.history", "internal_error")
    (result,) = ds.catch_up()
    assert result.status == "failed" and posted(slack) == []  # could not look: do not guess
    record = store.get_digest("meetings", "CDIGEST", WED)
    assert record is not None and record.state == "claimed"  # kept, so the next look recovers

    with store.engine.begin() as conn:
        conn.execute(update(digests).values(claimed_at=datetime.now(UTC) - timedelta(minutes=10)))
    assert [r.status for r in ds.catch_up()] == ["posted"]
    assert len(posted(slack)) == 1


def test_unfinished_slot_gets_a_recheck_job_within_grace(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    _crashed_claim(services, age_minutes=1)
    ds = DigestScheduler(services.settings, services.digests, clock=Clock(berlin(9, 0)))
    assert ds.start(catch_up=False)
    try:
        assert [r.status for r in ds.catch_up()] == ["in_progress"]
        assert ds.scheduler is not None
        job = ds.scheduler.get_job("digest-meetings-recheck")
        assert job is not None and job.args == ("meetings", WED)
        assert job.next_run_time > berlin(9, 5)
        # Past the grace period (08:30 + 120 min) a re-check gives up without posting.
        assert ds.recheck("meetings", WED, now=berlin(10, 31)) is None
        # Within it, once the claim is stale, the re-check recovers the slot.
        store = services.adapters.store
        assert isinstance(store, SqlStore)
        with store.engine.begin() as conn:
            conn.execute(
                update(digests).values(claimed_at=datetime.now(UTC) - timedelta(minutes=10))
            )
        result = ds.recheck("meetings", WED, now=berlin(9, 6))
        assert result is not None and result.status == "posted"
    finally:
        ds.shutdown(wait=False)
    assert len(posted(slack)) == 1
