"""Digests end to end: iCalendar files -> IcsCalendar -> DigestScheduler / CLI -> SqlStore claim ->
real slack_sdk WebClient -> local FakeSlack. Time is injected; nothing sleeps waiting for cron."""

from __future__ import annotations

import argparse
import io
import json
import logging
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from slack_sdk import WebClient

from bot.adapters.store_sql import SqlStore
from bot.bootstrap import bootstrap, build_slack_client
from bot.cli_digest import add_digest_parser, run_digest_command
from bot.config import Settings
from bot.domain.ports import StoredPost
from bot.scheduler import DigestScheduler
from bot.services import Services
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


def make_services(settings: Settings, store_url: str) -> Services:
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


def cli(args: list[str], services: Services) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser()
    add_digest_parser(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    code = run_digest_command(parser.parse_args(["digest", *args]), services, out, err)
    return code, out.getvalue(), err.getvalue()


def test_two_schedulers_racing_post_exactly_once(
    settings: Settings, store_url: str, slack: FakeSlack, caplog: pytest.LogCaptureFixture
) -> None:
    procs = [make_services(settings, store_url) for _ in range(2)]
    clock = Clock(berlin(8, 30))
    scheds = [DigestScheduler(p, clock=clock) for p in procs]
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
    record = procs[0].store.get_digest("meetings", "CDIGEST", WED)
    assert record is not None and record.state == "posted"
    assert record.message_ts == next(m.ts for m in slack.messages.values())


def test_restart_catch_up_within_grace_posts_once(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    first = make_services(settings, store_url)
    # Down at 08:30; back at 09:45 (within 120 min): the missed meeting digest goes out now.
    results = DigestScheduler(first, clock=Clock(berlin(9, 45))).catch_up()
    assert [(r.digest, r.status, r.day) for r in results] == [("meetings", "posted", WED)]
    # Restarted again, and a second process starting at the same time: nothing more.
    second = make_services(settings, store_url)
    assert DigestScheduler(second, clock=Clock(berlin(9, 50))).catch_up() == []
    assert DigestScheduler(first, clock=Clock(berlin(9, 50))).catch_up() == []
    assert len(posted(slack)) == 1


def test_missed_beyond_grace_is_not_posted_late(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    ds = DigestScheduler(services, clock=Clock(berlin(10, 31)))
    assert ds.catch_up() == []
    assert ds.run_slot("meetings") is None  # a late cron fire is refused too
    assert posted(slack) == []
    assert services.store.get_digest("meetings", "CDIGEST", WED) is None


def test_manual_run_after_scheduled_says_already_posted_and_force_reposts(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    result = DigestScheduler(services, clock=Clock(berlin(8, 30))).run_slot("meetings")
    assert result is not None and result.status == "posted"

    code, out, err = cli(["meetings", "--date", "2026-04-15"], services)
    assert code == 0 and "already posted" in err and out == ""
    assert len(posted(slack)) == 1

    code, _, err = cli(["meetings", "--date", "2026-04-15", "--force"], services)
    assert code == 0 and "posted meetings digest for 2026-04-15 in CDIGEST" in err
    assert len(posted(slack)) == 2
    record = services.store.get_digest("meetings", "CDIGEST", WED)
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
    assert services.store.get_digest("meetings", "CDIGEST", WED) is None


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
    assert services.store.get_digest("meetings", "CDIGEST", WED) is None
    code, _, _ = cli(["meetings", "--date", "2026-04-15"], services)
    assert code == 0 and len([m for m in slack.messages.values() if m.channel == "CDIGEST"]) == 1


def test_takeaways_post_only_what_the_digest_channel_may_see(
    settings: Settings, store_url: str, slack: FakeSlack
) -> None:
    services = make_services(settings, store_url)
    now = datetime.now(UTC)
    today = now.astimezone(BERLIN).date()
    store = services.store

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
    ds = DigestScheduler(services, clock=Clock(berlin(9, 0)))
    assert ds.start()
    ds.shutdown(wait=True)  # waits for the start-up catch-up job
    # The catch-up ran in the scheduler's worker (08:30 slot, 30 min ago): posted once.
    assert len(posted(slack)) == 1
    assert isinstance(services.slack_client, WebClient)  # the real SDK client, via bootstrap


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
