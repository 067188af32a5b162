"""The inbox workers on the in-memory store: pools, retries, back-pressure, leases, draining.

Handlers here are plain functions that record what they saw; a handler that must be "running" at
some moment waits on an Event the test sets. Time is a ManualClock; nothing sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.domain.ports import InboxEvent
from bot.service.work_fence import still_ours
from bot.workers import HANDOFF, INBOX_LEASE, InboxWorkers, PoolSpec, retry_delay
from tests.fakes.memory_store import ManualClock, MemoryStore

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
POOLS = (PoolSpec("triage", threads=1, queue_size=2), PoolSpec("filing", threads=1, queue_size=2))


class Recorder:
    """A handler: records event ids; fails while ``failing``; blocks on ``gate`` if set."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.failing = False
        self.gate: threading.Event | None = None
        self.entered = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, event: InboxEvent) -> None:
        self.entered.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        with self._lock:
            self.seen.append(event.event_id)
        if self.failing:
            raise RuntimeError("listener broke")


class FlakyStore(MemoryStore):
    """A MemoryStore whose writes fail while ``down``, like a database that went away."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__(clock)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise ConnectionError("database unreachable")

    def record_event(self, *a: Any, **kw: Any) -> bool:
        self._check()
        return super().record_event(*a, **kw)

    def finish_event(self, *a: Any, **kw: Any) -> bool:
        self._check()
        return super().finish_event(*a, **kw)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(T0)


@pytest.fixture
def store(clock: ManualClock) -> FlakyStore:
    return FlakyStore(clock)


@pytest.fixture
def handler() -> Recorder:
    return Recorder()


@pytest.fixture
def workers(store: FlakyStore, handler: Recorder, clock: ManualClock) -> Iterator[InboxWorkers]:
    w = InboxWorkers(store, handler, pools=POOLS, clock=clock, owner="me")
    yield w
    if handler.gate is not None:
        handler.gate.set()
    w.stop(time.monotonic() + 5)


def env(event_id: str) -> dict[str, Any]:
    return {"metadata": {"event_id": event_id, "trace_id": "t"}, "data": {"n": event_id}}


def test_recorded_events_are_processed_and_finished(
    workers: InboxWorkers, store: FlakyStore, handler: Recorder
) -> None:
    workers.start(poll=False)
    assert workers.record("Ev1", "triage", env("Ev1")) is True
    assert workers.record("Ev1", "triage", env("Ev1")) is False  # a redelivery
    assert workers.record("Ev2", "filing", env("Ev2")) is True
    workers.wait_idle()
    assert sorted(handler.seen) == ["Ev1", "Ev2"]
    for event_id in ("Ev1", "Ev2"):
        got = store.get_event(event_id)
        assert got is not None and got.state == "done"


def test_an_unknown_pool_goes_to_the_last_pool(workers: InboxWorkers, store: FlakyStore) -> None:
    workers.record("Ev1", "mystery", env("Ev1"))
    got = store.get_event("Ev1")
    assert got is not None and got.pool == "filing"


def test_a_failing_event_is_retried_with_back_off_then_given_up(
    workers: InboxWorkers, store: FlakyStore, handler: Recorder, clock: ManualClock
) -> None:
    handler.failing = True
    store.record_event("Ev1", "triage", env("Ev1"), T0)
    assert workers.run_once() == 1
    got = store.get_event("Ev1")
    assert got is not None and got.state == "pending" and got.attempts == 1
    assert got.next_at == T0 + retry_delay(1) and "listener broke" in (got.last_error or "")
    assert workers.run_once() == 0  # not due yet
    for attempt in range(2, workers.max_attempts + 1):
        clock.advance(retry_delay(attempt - 1))
        assert workers.run_once() == 1
    failed = store.get_event("Ev1")
    assert failed is not None and failed.state == "failed"
    assert failed.attempts == workers.max_attempts
    clock.advance(timedelta(days=1))
    assert workers.run_once() == 0
    assert retry_delay(1) == timedelta(seconds=5) and retry_delay(9) == timedelta(minutes=5)


def test_a_full_queue_leaves_the_event_in_the_inbox_for_a_later_pass(
    workers: InboxWorkers,
    store: FlakyStore,
    handler: Recorder,
    caplog: pytest.LogCaptureFixture,
) -> None:
    handler.gate = threading.Event()
    workers.start(poll=False)
    workers.record("Ev1", "triage", env("Ev1"))
    assert handler.entered.wait(5)  # Ev1 runs; the queue (2) takes two more
    workers.record("Ev2", "triage", env("Ev2"))
    workers.record("Ev3", "triage", env("Ev3"))
    with caplog.at_level("INFO"):
        workers.record("Ev4", "triage", env("Ev4"))
        workers.record("Ev5", "triage", env("Ev5"))
        full = [r.getMessage() for r in caplog.records if "queue full" in r.getMessage()]
        assert len(full) == 1 and "triage queue full" in full[0]  # one line, not one per event
        assert "Ev4 and what follows stay in the inbox" in full[0]
        left = store.get_event("Ev5")
        assert left is not None and left.state == "pending" and left.owner is None
        assert workers.poll_once() == 0  # still no room
        handler.gate.set()
        workers.wait_idle()
        assert workers.poll_once() == 2  # room again: the next pass takes them
        workers.wait_idle()
        assert workers.poll_once() == 0  # and the one after finds none left waiting
        assert any("room again (2 events had to wait" in r.getMessage() for r in caplog.records)
    assert sorted(handler.seen) == ["Ev1", "Ev2", "Ev3", "Ev4", "Ev5"]
    assert store.pending_events() == []


def test_a_slow_pool_does_not_hold_up_the_other(workers: InboxWorkers, store: FlakyStore) -> None:
    gate = threading.Event()
    triaged = threading.Event()

    def handler(event: InboxEvent) -> None:
        if event.pool == "filing":
            assert gate.wait(10)  # Jira is slow
        else:
            triaged.set()

    workers.bind(handler)
    workers.start(poll=False)
    workers.record("EvFile", "filing", env("EvFile"))
    workers.record("EvPost", "triage", env("EvPost"))
    assert triaged.wait(5)
    gate.set()
    workers.wait_idle()


def test_a_dead_replicas_events_are_taken_over_once_its_lease_runs_out(
    store: FlakyStore, handler: Recorder, clock: ManualClock
) -> None:
    dead = InboxWorkers(store, handler, pools=POOLS, clock=clock, owner="dead")
    dead.record("Ev1", "triage", env("Ev1"))  # claimed and queued; the process then dies
    other = InboxWorkers(store, handler, pools=POOLS, clock=clock, owner="other")
    assert other.run_once() == 0  # the lease holds
    clock.advance(INBOX_LEASE)
    assert other.run_once() == 1
    assert handler.seen == ["Ev1"]
    got = store.get_event("Ev1")
    assert got is not None and got.state == "done"


def test_leases_are_renewed_while_the_work_runs(
    workers: InboxWorkers, store: FlakyStore, handler: Recorder, clock: ManualClock
) -> None:
    handler.gate = threading.Event()
    workers.start(poll=False)
    workers.record("Ev1", "triage", env("Ev1"))
    assert handler.entered.wait(5)
    clock.advance(INBOX_LEASE * 0.9)
    workers._renewed_at -= INBOX_LEASE.total_seconds()  # a third of a lease has passed
    workers.poll_once()
    clock.advance(INBOX_LEASE * 0.5)
    other = InboxWorkers(store, Recorder(), pools=POOLS, clock=clock, owner="other")
    assert other.run_once() == 0  # past the first lease, but it was renewed
    handler.gate.set()
    workers.wait_idle()


def test_draining_offers_queued_events_to_other_replicas_and_keeps_recording(
    workers: InboxWorkers, store: FlakyStore, handler: Recorder, clock: ManualClock
) -> None:
    handler.gate = threading.Event()
    workers.start(poll=False)
    workers.record("Ev1", "triage", env("Ev1"))
    assert handler.entered.wait(5)
    workers.record("Ev2", "triage", env("Ev2"))  # queued behind Ev1
    workers.pause()
    workers.record("Ev3", "triage", env("Ev3"))  # arrives while draining: recorded, not taken
    left = store.get_event("Ev3")
    assert left is not None and left.state == "pending" and left.owner is None
    assert workers.begin_drain() == 1
    taken = store.claim_events("triage", "other", clock(), clock() + INBOX_LEASE)
    assert sorted(e.event_id for e in taken) == ["Ev2", "Ev3"]  # at once, not a lease later
    handler.gate.set()
    assert workers.stop(time.monotonic() + 5) is True  # Ev1 finished within the deadline
    assert handler.seen == ["Ev1"]  # Ev2 was left to the replica that took it
    done = store.get_event("Ev1")
    assert done is not None and done.state == "done"
    ev2 = store.get_event("Ev2")
    assert ev2 is not None and ev2.owner == "other"
    assert workers.poll_once() == 0  # a stopped replica takes nothing


def test_a_lone_draining_replica_finishes_its_queue_within_the_deadline(
    workers: InboxWorkers, store: FlakyStore, handler: Recorder
) -> None:
    handler.gate = threading.Event()
    workers.start(poll=False)
    workers.record("Ev1", "triage", env("Ev1"))
    assert handler.entered.wait(5)
    workers.record("Ev2", "triage", env("Ev2"))
    assert workers.begin_drain() == 1  # offered, but nobody takes it
    handler.gate.set()
    assert workers.stop(time.monotonic() + 5) is True
    assert handler.seen == ["Ev1", "Ev2"]
    assert store.pending_events() == []


def test_work_still_running_at_the_deadline_is_handed_back(
    workers: InboxWorkers, store: FlakyStore, handler: Recorder, clock: ManualClock
) -> None:
    handler.gate = threading.Event()
    workers.start(poll=False)
    workers.record("Ev1", "filing", env("Ev1"))
    assert handler.entered.wait(5)
    assert workers.stop(time.monotonic() + 0.05) is False
    got = store.get_event("Ev1")
    assert got is not None and got.state == "pending"
    other = InboxWorkers(store, Recorder(), pools=POOLS, clock=clock, owner="other")
    # Not at once: a reply being posted when the grace ran out lands first, so that the next
    # holder finds it. But well before a lease.
    assert other.run_once() == 0
    clock.advance(HANDOFF)
    assert HANDOFF < INBOX_LEASE / 2
    assert other.run_once() == 1


class Poster:
    """A handler that, once let through, posts only if its work is still its own (as the
    triage reply does) and records what it did."""

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.entered = threading.Event()
        self.done = threading.Event()
        self.posted: list[str] = []

    def __call__(self, event: InboxEvent) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        try:
            if still_ours():
                self.posted.append(event.event_id)
        finally:
            self.done.set()


def test_work_cut_short_by_the_deadline_posts_nothing_and_is_left_to_the_next_holder(
    store: FlakyStore, clock: ManualClock
) -> None:
    poster = Poster()
    workers = InboxWorkers(store, poster, pools=POOLS, clock=clock, owner="me")
    workers.start(poll=False)
    workers.record("Ev1", "triage", env("Ev1"))
    assert poster.entered.wait(5)
    assert workers.stop(time.monotonic() + 0.05) is False  # the grace ran out mid-triage
    poster.gate.set()  # the triage ends after the deadline: its reply must not go out
    assert poster.done.wait(5)
    assert poster.posted == []
    clock.advance(HANDOFF)
    after = Poster()
    after.gate.set()
    other = InboxWorkers(store, after, pools=POOLS, clock=clock, owner="other")
    assert other.run_once() == 1
    assert after.posted == ["Ev1"]
    got = store.get_event("Ev1")
    assert got is not None and got.state == "done"


def test_work_taken_over_by_another_replica_posts_nothing_and_is_not_settled_here(
    store: FlakyStore, clock: ManualClock
) -> None:
    poster = Poster()
    workers = InboxWorkers(store, poster, pools=POOLS, clock=clock, owner="me")
    workers.start(poll=False)
    try:
        workers.record("Ev1", "triage", env("Ev1"))
        assert poster.entered.wait(5)
        clock.advance(INBOX_LEASE)  # this replica stalled past its lease; another took over
        taken = store.claim_events("triage", "other", clock(), clock() + INBOX_LEASE)
        assert [e.event_id for e in taken] == ["Ev1"]
        poster.gate.set()
        workers.wait_idle()
        assert poster.posted == []
        got = store.get_event("Ev1")
        assert got is not None and got.state == "pending" and got.owner == "other"
    finally:
        poster.gate.set()
        workers.stop(time.monotonic() + 5)


def test_work_that_still_holds_its_event_posts(store: FlakyStore, clock: ManualClock) -> None:
    poster = Poster()
    poster.gate.set()
    workers = InboxWorkers(store, poster, pools=POOLS, clock=clock, owner="me")
    workers.record("Ev1", "triage", env("Ev1"))
    assert workers.run_once() == 0  # queued here already, not claimable again
    workers.start(poll=False)
    try:
        workers.wait_idle()
    finally:
        workers.stop(time.monotonic() + 5)
    assert poster.posted == ["Ev1"]
    got = store.get_event("Ev1")
    assert got is not None and got.state == "done"


def test_an_outcome_the_store_missed_is_written_when_it_answers_again(
    workers: InboxWorkers, store: FlakyStore, handler: Recorder, clock: ManualClock
) -> None:
    handler.gate = threading.Event()
    workers.start(poll=False)
    workers.record("Ev1", "triage", env("Ev1"))
    assert handler.entered.wait(5)
    store.down = True
    handler.gate.set()
    with pytest.raises(TimeoutError):
        workers.wait_idle(timeout=0.2)  # processed, but not recorded as done: still held
    got = store.get_event("Ev1")
    assert got is not None and got.state == "pending" and got.owner == "me"
    with pytest.raises(ConnectionError):
        workers.record("Ev2", "triage", env("Ev2"))  # the endpoint answers 503 on this
    store.down = False
    workers.poll_once()
    workers.wait_idle()
    done = store.get_event("Ev1")
    assert done is not None and done.state == "done"
    assert handler.seen == ["Ev1"]


def test_start_needs_a_handler(store: FlakyStore) -> None:
    with pytest.raises(RuntimeError, match="handler"):
        InboxWorkers(store, pools=POOLS).start()
