"""A filing's short lease, kept alive by a heartbeat while its attempt runs.

Time is a fake clock moved by the test. Where the heartbeat thread itself is under test it beats
every few milliseconds of real time and the test waits on what it did (a condition), never on
how long it took.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.jira_tracker import JIRA_REQUESTS_PER_WRITE, JiraTracker
from bot.bootstrap import bootstrap, jira_request_deadline
from bot.config import ConfigError, load_settings
from bot.domain.filing import FilingJob
from bot.domain.models import NewIssue
from bot.domain.ports import Fence, TrackerRetryable
from bot.service.filing import LEASE, Filer
from bot.service.lease_keeper import LeaseKeeper
from tests.fakes.embedder import HashEmbedder
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.tracker import FakeTracker

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class UnreachableRenewals(MemoryStore):
    """A store whose lease renewals fail while ``down`` is set (this replica cannot reach the
    database; the others can): the heartbeat's outage, nothing else."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(clock)
        self.down = False
        self.renewals = 0

    def renew_lease(self, item_id: int, token: int, until: datetime) -> bool:
        if self.down:
            raise ConnectionError("database unreachable")
        self.renewals += 1
        return super().renew_lease(item_id, token, until)


def _filer(
    tracker: FakeTracker, make_store: Callable[[Clock], MemoryStore] = MemoryStore, **kw: Any
) -> tuple[Filer, RecordingNotifier, Clock]:
    clock = Clock()
    notes = RecordingNotifier()
    filer = Filer(
        store=make_store(clock),
        tracker=tracker,
        project="PROJ",
        issue_types={"idea": "Story"},
        notifier=notes,
        clock=clock,
        rng=lambda a, b: b,
        **{"heartbeat": 0, **kw},
    )
    return filer, notes, clock


class Killed(BaseException):
    """The process died here (SIGKILL): nothing after it runs, no handler sees it."""


def _killed(issue: NewIssue) -> None:
    raise Killed


def _other(filer: Filer) -> tuple[Filer, RecordingNotifier]:
    """Another replica: the same store, Jira and clock; no heartbeat of its own needed."""
    notes = RecordingNotifier()
    return dataclasses.replace(filer, notifier=notes, heartbeat=0), notes


def _job(ts: str = "1.1") -> FilingJob:
    return FilingJob(channel="C1", ts=ts, reply_ts=ts, text="Add dark mode", requester="U1")


def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("condition not reached")
        time.sleep(0.005)


# --------------------------------------------------------------------------- the lease's size


def test_the_default_lease_is_short_and_the_jira_write_ends_well_inside_it(
    tmp_path: Path,
) -> None:
    assert timedelta(seconds=60) == LEASE
    for lease in ("10", "20", "60", "300", "3600"):
        settings = load_settings(_env_file=None, bot_data_dir=tmp_path, filing_lease_seconds=lease)
        deadline = jira_request_deadline(settings)
        # the write after the last renewal: at most JIRA_REQUESTS_PER_WRITE requests, each
        # ended by its deadline; a fifth of the lease is left for clock skew between replicas
        assert JIRA_REQUESTS_PER_WRITE * deadline <= 0.8 * float(lease)
        assert deadline <= 15.0
    default = load_settings(_env_file=None, bot_data_dir=tmp_path)
    assert default.filing_lease_seconds == 60 and jira_request_deadline(default) == 12.0
    with pytest.raises(ConfigError):
        load_settings(_env_file=None, bot_data_dir=tmp_path, filing_lease_seconds="5")


def test_the_lease_and_the_tracker_deadline_come_from_the_settings(tmp_path: Path) -> None:
    settings = load_settings(
        _env_file=None,
        bot_data_dir=tmp_path,
        filing_lease_seconds="25",
        jira_url="https://jira.example",
        jira_project="PROJ",
        jira_email="bot@example.com",
        jira_api_token="t",
    )
    bot = bootstrap(settings, embedder=HashEmbedder(), llm=None, store=MemoryStore())
    assert bot.filer.lease == timedelta(seconds=25)
    assert isinstance(bot.filer.tracker, JiraTracker) and bot.filer.tracker.deadline == 5.0


# --------------------------------------------------------------------------- the keeper


def test_renew_extends_the_lease_a_full_period_from_now_until_it_is_taken_over() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    item_id = store.enqueue("t", "k", {}, T0)
    assert item_id is not None
    token = store.lease(item_id, T0 + timedelta(seconds=60), now=T0)
    assert token is not None
    keeper = LeaseKeeper(store, Fence(item_id, token), timedelta(seconds=60), clock, every=0)
    clock.now = T0 + timedelta(seconds=50)
    assert keeper.renew() is True  # until T0 + 110 s
    clock.now = T0 + timedelta(seconds=100)
    assert store.due(clock.now) == []
    clock.now = T0 + timedelta(seconds=111)  # no renewal since: the holder died
    taken = store.lease(item_id, clock.now + timedelta(seconds=60), now=clock.now)
    assert taken is not None
    assert keeper.renew() is False and keeper.lost
    assert keeper.renew() is False  # lost for good
    assert store.finish(item_id, token=token) is False  # and its completion is fenced off


def test_a_failing_heartbeat_is_logged_once_per_outage_and_does_not_end_the_keeper(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    store = UnreachableRenewals(clock)
    item_id = store.enqueue("t", "k", {}, T0)
    assert item_id is not None
    token = store.lease(item_id, T0 + timedelta(seconds=60), now=T0)
    assert token is not None
    keeper = LeaseKeeper(store, Fence(item_id, token), timedelta(seconds=60), clock, every=0)
    store.down = True
    with caplog.at_level(logging.WARNING, logger="bot.service.lease_keeper"):
        keeper.beat()
        keeper.beat()
        with pytest.raises(ConnectionError):  # before a write: not knowing is not renewed
            keeper.renew()
    assert [r.getMessage() for r in caplog.records].count(caplog.records[0].getMessage()) == 1
    assert "could not renew" in caplog.records[0].getMessage()
    assert not keeper.lost
    store.down = False
    keeper.beat()
    assert store.renewals == 1 and not keeper.lost


def test_the_heartbeat_thread_renews_while_the_work_runs_and_stops_after() -> None:
    clock = Clock()
    store = UnreachableRenewals(clock)
    item_id = store.enqueue("t", "k", {}, T0)
    assert item_id is not None
    token = store.lease(item_id, T0 + timedelta(seconds=60), now=T0)
    assert token is not None
    keeper = LeaseKeeper(store, Fence(item_id, token), timedelta(seconds=60), clock, every=0.002)
    with keeper:
        clock.now = T0 + timedelta(seconds=55)
        seen = store.renewals
        _until(lambda: store.renewals > seen + 1)  # a beat that surely read the new clock
    # renewed from T0 + 55 s: not due before T0 + 115 s
    assert store.due(T0 + timedelta(seconds=114)) == []
    assert [i.id for i in store.due(T0 + timedelta(seconds=115))] == [item_id]
    assert keeper._thread is None  # stopped (and joined) with the block


# --------------------------------------------------------------------------- the filer


def test_a_long_attempt_keeps_its_item_while_the_heartbeat_beats() -> None:
    # Jira takes 100 s (longer than the lease) on the create. The heartbeat renews meanwhile, so
    # the other replica's worker never takes the item over, and the message is filed once.
    tracker = FakeTracker()
    filer, notes, clock = _filer(tracker, UnreachableRenewals, heartbeat=0.002)
    store = filer.store
    assert isinstance(store, UnreachableRenewals)
    other, other_notes = _other(filer)
    polled: list[int] = []

    def slow_create(issue: NewIssue) -> None:
        for _ in range(4):
            clock.now += timedelta(seconds=25)
            seen = store.renewals
            _until(lambda s=seen: store.renewals > s + 1)  # a beat that surely read the new clock
            polled.append(other.run_due())

    tracker.on_create = slow_create
    assert filer.submit(_job()).status == "filed"
    assert polled == [0, 0, 0, 0]
    assert len(tracker.created) == 1 and other_notes.outcomes() == []
    assert notes.outcomes() == ["filed"] and store.pending() == []


def test_a_replica_killed_mid_create_is_taken_over_after_one_short_lease() -> None:
    # Replica A took the item and Jira created the issue; A died before recording it (its
    # heartbeat died with it). B takes the item over once the 60 s lease has run out (not
    # after 5 minutes), finds the issue by its marker and records it: one issue.
    tracker = FakeTracker()
    filer, notes, clock = _filer(tracker)
    tracker.after_create = _killed
    with pytest.raises(Killed):
        filer.submit(_job())
    tracker.after_create = None
    other, other_notes = _other(filer)
    clock.now = T0 + timedelta(seconds=59)
    assert other.run_due() == 0
    clock.now = T0 + timedelta(seconds=61)
    assert other.run_due() == 1
    assert len(tracker.created) == 1
    filing = filer.store.get_filing("C1", "1.1")
    assert filing is not None and (filing.state, filing.issue_key) == ("filed", "PROJ-1")
    assert other_notes.outcomes() == ["filed"] and notes.outcomes() == []


def _queued_then_due(filer: Filer, clock: Clock, tracker: FakeTracker) -> None:
    tracker.failures = [TrackerRetryable("503")]
    assert filer.submit(_job()).status == "queued"
    clock.now += timedelta(minutes=10)


def test_the_lease_is_renewed_right_before_the_create() -> None:
    # The marker search took 50 s of a 60 s lease. Without a renewal just before the create, the
    # item would be free 10 s into it; renewed, it stays held a full lease from the create.
    tracker = FakeTracker()
    filer, _, clock = _filer(tracker)
    other, _ = _other(filer)
    _queued_then_due(filer, clock, tracker)
    real_search = tracker.find_by_marker
    took: list[int] = []

    def slow_search(project: str, marker: str) -> Any:
        clock.now += timedelta(seconds=50)
        return real_search(project, marker)

    def slow_create(issue: NewIssue) -> None:
        clock.now += timedelta(seconds=55)  # past the lease counted from the attempt's start
        took.append(other.run_due())

    tracker.find_by_marker = slow_search  # type: ignore[method-assign]
    tracker.on_create = slow_create
    assert filer.run_due() == 1
    assert took == [0] and len(tracker.created) == 1
    filing = filer.store.get_filing("C1", "1.1")
    assert filing is not None and filing.state == "filed"


def test_a_holder_whose_lease_lapsed_and_was_taken_does_not_create() -> None:
    # A's heartbeat did not get through (a stall, a partition) and its lease ran out during its
    # marker search; B took the item over and filed. A's renewal before the create fails: A
    # neither creates nor records nor tells.
    tracker = FakeTracker()
    filer, notes, clock = _filer(tracker)
    other, other_notes = _other(filer)
    _queued_then_due(filer, clock, tracker)
    real_search = tracker.find_by_marker
    calls: list[str] = []

    def search(project: str, marker: str) -> Any:
        found = real_search(project, marker)
        calls.append("search")
        if len(calls) == 1:  # A's search found nothing; then its lease runs out and B runs
            clock.now += timedelta(seconds=61)
            assert other.run_due() == 1
        return found

    tracker.find_by_marker = search  # type: ignore[method-assign]
    assert filer.run_due() == 1
    assert len(tracker.created) == 1  # B's
    filing = filer.store.get_filing("C1", "1.1")
    assert filing is not None and (filing.state, filing.issue_key) == ("filed", "PROJ-1")
    assert other_notes.outcomes() == ["filed"] and notes.outcomes() == ["queued"]


def test_a_holder_that_cannot_renew_before_the_create_does_not_create() -> None:
    # The database does not answer the renewal right before the create: the lease may be about
    # to run out, so A must not start a write that could outlast it. The attempt is retried.
    tracker = FakeTracker()
    filer, notes, clock = _filer(tracker, UnreachableRenewals)
    store = filer.store
    assert isinstance(store, UnreachableRenewals)
    store.down = True
    assert filer.submit(_job()).status == "queued"
    assert tracker.created == []
    store.down = False
    clock.now += timedelta(minutes=10)
    assert filer.run_due() == 1
    assert len(tracker.created) == 1 and notes.outcomes() == ["queued", "filed"]


def test_a_heartbeat_that_finds_the_lease_lost_fences_off_the_completion() -> None:
    # A's create is in flight when its heartbeat learns the lease was taken over (A's renewals
    # could not get through past the lease; B took it). A's completion must not be written.
    tracker = FakeTracker()
    filer, notes, clock = _filer(tracker, UnreachableRenewals, heartbeat=0.002)
    store = filer.store
    assert isinstance(store, UnreachableRenewals)
    taken: list[int | None] = []

    def stall(issue: NewIssue) -> None:
        store.down = True  # A's heartbeat cannot get through while A stalls
        clock.now += timedelta(seconds=61)
        taken.append(store.lease(1, clock.now + filer.lease, now=clock.now))  # B takes it
        store.down = False
        seen = store.renewals
        _until(lambda: store.renewals > seen)  # A's heartbeat got through again: lost

    tracker.after_create = stall
    assert filer.submit(_job()).status == "in_progress"
    assert taken[0] is not None
    filing = store.get_filing("C1", "1.1")
    assert filing is not None and filing.state == "claimed" and filing.issue_key is None
    assert notes.outcomes() == [] and len(store.pending()) == 1
