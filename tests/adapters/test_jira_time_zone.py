"""The JQL wall time of the sync cursor: in the account's zone, never later than meant."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest

from bot.adapters.jira_tracker import UNKNOWN_ZONE_MARGIN, jql_wall_time

NEW_YORK = ZoneInfo("America/New_York")


def test_wall_time_in_the_accounts_zone_to_the_minute() -> None:
    since = datetime(2026, 1, 15, 17, 0, 42, tzinfo=UTC)
    assert jql_wall_time(since, NEW_YORK) == datetime(2026, 1, 15, 12, 0)
    assert jql_wall_time(since, ZoneInfo("Asia/Kolkata")) == datetime(2026, 1, 15, 22, 30)
    assert jql_wall_time(since, None) == datetime(2026, 1, 15, 3, 0)


def test_a_wall_time_that_happens_twice_is_moved_back() -> None:
    # 2026-11-01: New York's clocks go from 01:59 EDT back to 01:00 EST; 01:45 happens twice.
    since = datetime(2026, 11, 1, 5, 45, tzinfo=UTC)  # 01:45 EDT, the first time
    wall = jql_wall_time(since, NEW_YORK)
    latest = max(wall.replace(tzinfo=NEW_YORK, fold=f).astimezone(UTC) for f in (0, 1))
    assert latest <= since and since - latest < timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    "since",
    [
        datetime(2026, 1, 15, 17, 0, tzinfo=UTC),
        datetime(2026, 3, 8, 6, 59, tzinfo=UTC),
        datetime(2026, 3, 29, 1, 30, tzinfo=UTC),
        datetime(2026, 10, 25, 0, 30, tzinfo=UTC),
        datetime(2026, 11, 1, 5, 30, tzinfo=UTC),
    ],
)
def test_every_zone_reads_an_instant_at_or_before_the_cursor(since: datetime) -> None:
    for name in sorted(available_timezones()):
        zone = ZoneInfo(name)
        for wall, known in (
            (jql_wall_time(since, zone), True),
            (jql_wall_time(since, None), False),
        ):
            readings = [wall.replace(tzinfo=zone, fold=f).astimezone(UTC) for f in (0, 1)]
            assert max(readings) <= since, (name, known)
            if known:  # in the right zone, never more than a DST hour (and a half) early
                assert since - min(readings) <= timedelta(hours=2), name
            else:
                assert since - max(readings) <= UNKNOWN_ZONE_MARGIN + timedelta(hours=14), name
