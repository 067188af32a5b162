"""The store contract, on the in-memory fake, SQLite files and a real PostgreSQL.

Contract tests take ``store`` (and ``backend`` when they must reach past the ports, e.g. to age a
claim) and run on ``memory``, ``sqlite`` and ``postgres``: the fake the use-case tests rely on is
held to the same behaviour as the SQL store. Tests of SQL itself (schema, files, URLs, several
instances and processes on one database) take ``sql_store``/``store_url`` and run on SQL only.
Fixtures: ``store_backend``/``store_url`` in tests/conftest.py.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text, update
from sqlalchemy.engine import make_url

from bot.adapters.store_sql import (
    DONE_OUTBOX_KEEP,
    ERROR_MAX,
    EVENT_KEEP,
    RECORD_DEADLINE,
    SCHEMA_VERSION,
    SQLITE_BUSY_TIMEOUT_MS,
    STALE_DIGEST_CLAIM,
    SqlStore,
    digests,
    inbox,
)
from bot.config import Settings
from bot.domain.models import Ticket
from bot.domain.ports import Fence, RetryAt, Store, StoredPost
from tests.fakes.memory_store import ManualClock, MemoryStore

AnyStore = SqlStore | MemoryStore

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
DAY = date(2025, 3, 3)
RACERS = 8


def _post(ts: str = "1.0", **kw: Any) -> StoredPost:
    base: dict[str, Any] = {
        "channel": "C1",
        "ts": ts,
        "user": "U1",
        "text": "an idea",
        "created": T0,
    }
    base.update(kw)
    return StoredPost(**base)


def _race(n: int, fn: Callable[[int], bool]) -> list[bool]:
    """Runs fn(i) in n threads released together; returns the results."""
    barrier = threading.Barrier(n)
    results: list[bool | None] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as exc:  # surfaced below, with the thread's own traceback
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return [bool(r) for r in results]


@dataclass
class Backend:
    """The store under test, and what only its kind of backend can do behind the ports."""

    store: AnyStore
    url: str | None = None  # SQL: the database, to open more handles on it
    clock: ManualClock | None = None  # memory: the store's clock

    def handles(self, n: int) -> list[AnyStore]:
        """*n* handles on the same data: SQL opens more stores (close them); memory shares one."""
        if self.url is None:
            return [self.store] * n
        return [self.store, *(SqlStore(self.url) for _ in range(n - 1))]

    def age_digest_claims(self, age: timedelta, day: date | None = None) -> None:
        """Makes the digest claims just made (of *day*, default all) look *age* old."""
        if isinstance(self.store, SqlStore):
            stmt = update(digests).values(claimed_at=datetime.now(UTC) - age)
            if day is not None:
                stmt = stmt.where(digests.c.day == day)
            with self.store.engine.begin() as conn:
                conn.execute(stmt)
        else:
            assert self.clock is not None
            self.clock.advance(age)  # nothing else is dated in these tests


@pytest.fixture
def backend(store_backend: str) -> Iterator[Backend]:
    """A fresh store on each backend: the memory fake (on a hand-moved clock), SQLite, PG."""
    if store_backend == "memory":
        # Starts at the wall clock: several tests bracket store writes with datetime.now().
        clock = ManualClock(datetime.now(UTC))
        yield Backend(MemoryStore(clock), clock=clock)
        return
    s = SqlStore(store_backend)
    try:
        yield Backend(s, url=store_backend)
    finally:
        s.close()


@pytest.fixture
def store(backend: Backend) -> AnyStore:
    """The contract tests' store (shadows the SQL-only ``store`` of tests/conftest.py)."""
    return backend.store


@pytest.fixture
def sql_store(store_url: str) -> Iterator[SqlStore]:
    """A ``SqlStore`` on ``store_url`` (SQLite, PostgreSQL), for the SQL-only tests."""
    s = SqlStore(store_url)
    try:
        yield s
    finally:
        s.close()


# --------------------------------------------------------------------------- schema, kv


def test_schema_version_and_reopen_keeps_data(sql_store: SqlStore, store_url: str) -> None:
    assert sql_store.get_value("schema_version") == str(SCHEMA_VERSION)
    sql_store.set_value("cursor", "a")
    again = SqlStore(store_url)
    try:
        assert again.get_value("cursor") == "a"
        assert again.get_value("schema_version") == str(SCHEMA_VERSION)
    finally:
        again.close()


def test_newer_schema_is_refused(sql_store: SqlStore, store_url: str) -> None:
    sql_store.set_value("schema_version", str(SCHEMA_VERSION + 1))
    with pytest.raises(RuntimeError, match="newer"):
        SqlStore(store_url)


def test_a_database_from_before_deleted_posts_gains_the_column(store_url: str) -> None:
    from sqlalchemy import create_engine, text

    from bot.adapters.store_sql import normalise_url

    engine = create_engine(normalise_url(store_url))
    if store_url.startswith("sqlite"):
        Path(make_url(store_url).database or "").parent.mkdir(parents=True, exist_ok=True)
    with engine.begin() as conn:  # the version-1 posts table, with one post in it
        conn.execute(
            text(
                'CREATE TABLE posts (channel VARCHAR(40) NOT NULL, ts VARCHAR(40) NOT NULL, "user"'
                " VARCHAR(40) NOT NULL, text TEXT NOT NULL, created TIMESTAMP NOT NULL,"
                " thread_ts VARCHAR(40), permalink TEXT, kind VARCHAR(20), title TEXT,"
                " summary TEXT, triage_json TEXT, reply_ts VARCHAR(40), reactions INTEGER NOT NULL,"
                " replies INTEGER NOT NULL, is_private BOOLEAN NOT NULL, PRIMARY KEY (channel, ts))"
            )
        )
        conn.execute(
            text(
                "INSERT INTO posts VALUES ('C1', '1.0', 'U1', 'old idea', '2025-03-03 09:00:00',"
                " NULL, NULL, 'idea', NULL, NULL, NULL, NULL, 0, 0, false)"
            )
        )
        conn.execute(text("CREATE TABLE kv (key VARCHAR(200) PRIMARY KEY, value TEXT NOT NULL)"))
        conn.execute(text("INSERT INTO kv VALUES ('schema_version', '1')"))
    engine.dispose()
    for _ in range(2):  # opening it twice adds the column once
        s = SqlStore(store_url)
        try:
            got = s.get_post("C1", "1.0")
            assert got is not None and got.text == "old idea" and got.deleted is False
        finally:
            s.close()
    s = SqlStore(store_url)
    try:
        s.delete_post("C1", "1.0", T0)
        got = s.get_post("C1", "1.0")
        assert got is not None and got.deleted and got.text == ""
    finally:
        s.close()


def test_values_upsert(store: AnyStore) -> None:
    port: Store = store  # mypy checks SqlStore and MemoryStore against the Store Protocol here
    assert port.get_value("k") is None
    store.set_value("k", "1")
    store.set_value("k", "2")
    assert store.get_value("k") == "2"


def test_sqlite_creates_dir_and_uses_wal(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "db.sqlite3"
    s = SqlStore(f"sqlite:///{path}")
    try:
        assert path.exists()
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        s.close()


def test_sqlite_memory_is_refused() -> None:
    with pytest.raises(ValueError, match="file"):
        SqlStore("sqlite://")


def test_from_settings_puts_sqlite_under_data_dir(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, bot_data_dir=tmp_path / "state", database_url=None)  # type: ignore[call-arg]
    s = SqlStore.from_settings(settings)
    try:
        assert s.backend == "sqlite"
        assert (tmp_path / "state" / "ideabot.sqlite3").exists()
    finally:
        s.close()


# --------------------------------------------------------------------------- posts


def test_post_round_trip_returns_aware_utc(store: AnyStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    store.save_post(_post(created=datetime(2025, 3, 3, 11, 0, 0, 123456, tzinfo=plus2)))
    got = store.get_post("C1", "1.0")
    assert got is not None
    assert got.created == datetime(2025, 3, 3, 9, 0, 0, 123456, tzinfo=UTC)
    assert got.created.utcoffset() == timedelta(0)
    assert got.reactions == 0 and got.is_private is False and got.kind is None
    assert store.get_post("C1", "nope") is None


def test_naive_datetimes_are_refused(store: AnyStore) -> None:
    with pytest.raises(Exception, match="naive"):
        store.save_post(_post(created=datetime(2025, 3, 3, 9, 0)))


def test_save_post_upsert_keeps_triage_fields(store: AnyStore) -> None:
    store.save_post(
        _post(
            kind="bug",
            title="Crash",
            summary="It crashes",
            triage_json='{"kind":"bug"}',
            reply_ts="2.0",
            permalink="https://x/p",
            reactions=3,
            replies=1,
        )
    )
    store.save_post(_post(text="an idea (edited)", is_private=True))
    got = store.get_post("C1", "1.0")
    assert got is not None
    assert got.text == "an idea (edited)" and got.is_private is True
    assert (got.kind, got.title, got.summary, got.triage_json, got.reply_ts) == (
        "bug",
        "Crash",
        "It crashes",
        '{"kind":"bug"}',
        "2.0",
    )
    assert got.permalink == "https://x/p"
    assert (got.reactions, got.replies) == (3, 1)
    store.save_post(_post(kind="idea", reactions=5))
    got = store.get_post("C1", "1.0")
    assert got is not None and got.kind == "idea" and got.reactions == 5 and got.title == "Crash"


def test_update_post(store: AnyStore) -> None:
    store.save_post(_post())
    store.update_post("C1", "1.0", kind="idea", title="T", reply_ts="9.9", reactions=0, replies=4)
    got = store.get_post("C1", "1.0")
    assert got is not None
    assert (got.kind, got.title, got.reply_ts, got.reactions, got.replies) == (
        "idea",
        "T",
        "9.9",
        0,
        4,
    )
    with pytest.raises(ValueError, match="unknown"):
        store.update_post("C1", "1.0", bogus="x")


def test_posts_by_user_newest_first_counted_and_filtered(store: AnyStore) -> None:
    for n in range(5):
        store.save_post(_post(f"{n}.0", created=T0 + timedelta(hours=n), kind="idea"))
    store.save_post(_post("9.0", kind="other"))
    store.save_post(_post("8.0", user="U2", kind="idea"))
    store.save_post(_post("7.0", kind="idea", thread_ts="1.0"))  # a reply (TRIAGE_THREADS)
    store.save_post(_post("6.0", kind="idea"))
    store.delete_post("C1", "6.0", T0)
    got, total = store.posts_by_user("U1", 3, ["idea", "bug"])
    assert [p.ts for p in got] == ["4.0", "3.0", "2.0"] and total == 5
    assert store.posts_by_user("U1", 100)[1] == 6  # every kind
    assert store.posts_by_user("UNONE", 10) == ([], 0)


def test_posts_between_is_half_open_ordered_and_filtered(store: AnyStore) -> None:
    store.save_post(_post("3", created=T0 + timedelta(hours=2)))
    store.save_post(_post("1", created=T0))
    store.save_post(_post("2", channel="C2", created=T0 + timedelta(hours=1)))
    store.save_post(_post("4", created=T0 + timedelta(hours=3)))
    got = store.posts_between(T0, T0 + timedelta(hours=3))
    assert [p.ts for p in got] == ["1", "2", "3"]
    assert all(p.created.tzinfo is not None for p in got)
    assert [p.ts for p in store.posts_between(T0, T0 + timedelta(days=1), ["C2"])] == ["2"]
    assert store.posts_between(T0, T0 + timedelta(days=1), []) == []
    # bounds given in another zone mean the same instants
    tokyo = timezone(timedelta(hours=9))
    got = store.posts_between(T0.astimezone(tokyo), (T0 + timedelta(hours=1)).astimezone(tokyo))
    assert [p.ts for p in got] == ["1"]


def test_delete_post_purges_words_and_keeps_the_row(store: AnyStore) -> None:
    store.save_post(
        _post(kind="idea", title="Dark mode", summary="s", triage_json="{}", reply_ts="2.0")
    )
    store.add_engagement("C1", "1.0", "reaction", "U2", "thumbsup")
    was = store.delete_post("C1", "1.0", T0)
    assert was is not None and was.text == "an idea" and was.reply_ts == "2.0"
    got = store.get_post("C1", "1.0")
    assert got is not None and got.deleted and got.text == ""
    assert (got.kind, got.title, got.summary, got.triage_json) == (None, None, None, None)
    assert got.reply_ts == "2.0" and got.reactions == 0
    assert store.posts_between(T0, T0 + timedelta(days=1)) == []
    # neither a redelivered message nor a late triage brings the words back
    store.save_post(_post(text="an idea", kind="idea", title="Dark mode"))
    store.update_post("C1", "1.0", title="Dark mode", kind="idea")
    got = store.get_post("C1", "1.0")
    assert got is not None and got.deleted and got.text == "" and got.title is None
    assert store.add_engagement("C1", "1.0", "reaction", "U3", "tada") is None


def test_deleting_an_unknown_post_leaves_a_deleted_row(store: AnyStore) -> None:
    assert store.delete_post("C1", "7.0", T0, user="U1") is None
    store.save_post(_post("7.0", text="arrived late"))
    got = store.get_post("C1", "7.0")
    assert got is not None and got.deleted and got.text == "" and got.user == "U1"


def test_engagement_counts_each_person_once(store: AnyStore) -> None:
    assert store.add_engagement("C1", "1.0", "reaction", "U2", "thumbsup") is None  # not stored
    store.save_post(_post())
    change = store.add_engagement("C1", "1.0", "reaction", "U2", "thumbsup")
    assert change is not None and change.changed
    assert (change.before.reactions, change.after.reactions) == (0, 1)
    again = store.add_engagement("C1", "1.0", "reaction", "U2", "thumbsup")  # redelivered
    assert again is not None and not again.changed
    second = store.add_engagement("C1", "1.0", "reaction", "U2", "tada")  # same person
    assert second is not None and not second.changed and second.after.reactions == 1
    store.add_engagement("C1", "1.0", "reaction", "U3", "thumbsup")
    store.add_engagement("C1", "1.0", "reply", "U2", "5.0")
    store.add_engagement("C1", "1.0", "reply", "U2", "6.0")
    got = store.get_post("C1", "1.0")
    assert got is not None and (got.reactions, got.replies) == (2, 1)
    store.remove_engagement("C1", "1.0", "reaction", "U2", "thumbsup")  # U2 still has tada
    store.remove_engagement("C1", "1.0", "reply", "U2", "5.0")  # and another reply
    got = store.get_post("C1", "1.0")
    assert got is not None and (got.reactions, got.replies) == (2, 1)
    store.remove_engagement("C1", "1.0", "reaction", "U2", "tada")
    gone = store.remove_engagement("C1", "1.0", "reply", "U2", "6.0")
    assert (
        gone is not None
        and gone.changed
        and (gone.after.reactions, gone.after.replies)
        == (
            1,
            0,
        )
    )
    # a re-save of the post (a redelivered message) does not reset the derived counts
    store.save_post(_post())
    got = store.get_post("C1", "1.0")
    assert got is not None and got.reactions == 1


def test_concurrent_reactions_are_all_counted(backend: Backend) -> None:
    backend.store.save_post(_post())
    handles = backend.handles(2)
    try:
        _race(
            RACERS,
            lambda i: (
                handles[i % 2].add_engagement("C1", "1.0", "reaction", f"U{i}", "+1") is not None
            ),
        )
        got = backend.store.get_post("C1", "1.0")
        assert got is not None and got.reactions == RACERS
    finally:
        for h in handles[1:]:
            h.close()


# --------------------------------------------------------------------------- slack events


# --------------------------------------------------------------------------- inbox

LEASE = timedelta(seconds=30)


def _env(event_id: str = "Ev1", **data: Any) -> dict[str, Any]:
    return {
        "metadata": {"version": 1, "event_id": event_id, "trace_id": "t" + event_id},
        "data": {"type": "event_callback", "event_id": event_id, **data},
    }


def test_an_event_is_recorded_once(store: AnyStore) -> None:
    plus2 = timezone(timedelta(hours=2))
    assert store.record_event("Ev1", "triage", _env("Ev1", text="é"), T0.astimezone(plus2))
    assert store.record_event("Ev1", "triage", _env("Ev1", text="again"), T0) is False
    assert store.record_event("Ev2", "filing", _env("Ev2"), T0) is True
    got = store.get_event("Ev1")
    assert got is not None and got.state == "pending" and got.attempts == 0
    assert got.envelope == _env("Ev1", text="é") and got.trace_id == "tEv1"
    assert got.received == T0 and got.received.tzinfo is not None and got.next_at == T0
    assert got.owner is None and got.lease_until is None
    assert store.get_event("nope") is None
    assert [e.event_id for e in store.pending_events()] == ["Ev1", "Ev2"]
    assert [e.event_id for e in store.pending_events("filing")] == ["Ev2"]


def test_claims_take_due_unleased_events_of_one_pool_oldest_first(store: AnyStore) -> None:
    for i in range(3):
        store.record_event(f"Ev{i}", "triage", _env(f"Ev{i}"), T0 + timedelta(seconds=i))
    store.record_event("EvF", "filing", _env("EvF"), T0)
    # recorded and claimed in one insert, as the receiving replica does
    store.record_event("EvMine", "triage", _env("EvMine"), T0, owner="a", lease_until=T0 + LEASE)
    now = T0 + timedelta(seconds=5)
    first = store.claim_events("triage", "a", now, now + LEASE, limit=2)
    assert [e.event_id for e in first] == ["Ev0", "Ev1"]
    assert all(e.owner == "a" and e.lease_until == now + LEASE for e in first)
    assert [e.event_id for e in store.claim_events("triage", "b", now, now + LEASE)] == ["Ev2"]
    assert store.claim_events("triage", "b", now, now + LEASE) == []
    assert store.claim_events("triage", "b", now, now + LEASE, limit=0) == []
    assert [e.event_id for e in store.claim_events("filing", "b", now, now + LEASE)] == ["EvF"]
    held = store.get_event("EvMine")
    assert held is not None and held.owner == "a" and held.lease_until == T0 + LEASE


def test_an_expired_lease_is_taken_over_and_fences_the_old_owner(store: AnyStore) -> None:
    store.record_event("Ev1", "triage", _env(), T0, owner="dead", lease_until=T0 + LEASE)
    assert store.claim_events("triage", "b", T0 + LEASE - timedelta(seconds=1), T0 + LEASE) == []
    later = T0 + LEASE
    (taken,) = store.claim_events("triage", "b", later, later + LEASE)
    assert taken.event_id == "Ev1" and taken.owner == "b"
    assert store.renew_events(["Ev1"], "dead", later + 2 * LEASE) == 0
    assert store.finish_event("Ev1", "dead", later) is False
    assert store.retry_event("Ev1", "dead", later, "x") is False
    assert store.fail_event("Ev1", "dead", later, "x") is False
    assert store.release_events("dead") == 0
    assert store.finish_event("Ev1", "b", later) is True
    done = store.get_event("Ev1")
    assert done is not None and done.state == "done" and done.owner is None
    assert store.pending_events() == []
    assert store.claim_events("triage", "c", later + 10 * LEASE, later + 11 * LEASE) == []
    assert store.record_event("Ev1", "triage", _env(), later) is False  # still de-duplicated


def test_renewal_keeps_an_event_from_being_taken(store: AnyStore) -> None:
    store.record_event("Ev1", "triage", _env(), T0, owner="a", lease_until=T0 + LEASE)
    assert store.renew_events(["Ev1", "EvUnknown"], "a", T0 + 3 * LEASE) == 1
    assert store.renew_events([], "a", T0 + 3 * LEASE) == 0
    assert store.claim_events("triage", "b", T0 + 2 * LEASE, T0 + 4 * LEASE) == []
    got = store.get_event("Ev1")
    assert got is not None and got.lease_until == T0 + 3 * LEASE


def test_a_failed_attempt_is_retried_later_then_given_up(store: AnyStore) -> None:
    store.record_event("Ev1", "filing", _env(), T0, owner="a", lease_until=T0 + LEASE)
    assert store.retry_event("Ev1", "a", T0 + timedelta(seconds=10), "E" * (ERROR_MAX + 50))
    got = store.get_event("Ev1")
    assert got is not None and got.attempts == 1 and got.owner is None
    assert got.last_error is not None and len(got.last_error) == ERROR_MAX
    assert store.claim_events("filing", "b", T0 + timedelta(seconds=9), T0 + LEASE) == []
    (again,) = store.claim_events("filing", "b", T0 + timedelta(seconds=10), T0 + LEASE)
    assert again.attempts == 1
    assert store.fail_event("Ev1", "b", T0 + timedelta(seconds=11), "still broken") is True
    failed = store.get_event("Ev1")
    assert failed is not None and failed.state == "failed" and failed.attempts == 2
    assert failed.last_error == "still broken"
    assert store.pending_events() == []


def test_released_events_are_claimable_at_once(store: AnyStore) -> None:
    for i in range(3):
        store.record_event(
            f"Ev{i}", "triage", _env(f"Ev{i}"), T0, owner="a", lease_until=T0 + LEASE
        )
    assert store.release_events("a", ["Ev0"]) == 1
    assert store.release_events("a", []) == 0
    assert [e.event_id for e in store.claim_events("triage", "b", T0, T0 + LEASE)] == ["Ev0"]
    assert store.release_events("a") == 2
    assert store.release_events("a") == 0
    got = store.get_event("Ev1")
    assert got is not None and got.owner is None and got.attempts == 0
    assert len(store.claim_events("triage", "b", T0, T0 + LEASE)) == 2


def test_settled_events_are_forgotten_after_the_retention_period(backend: Backend) -> None:
    store = backend.store
    old = T0 - EVENT_KEEP - timedelta(seconds=1)
    for event_id, at in (("EvOld", old), ("EvNew", T0)):
        store.record_event(
            event_id, "triage", _env(event_id), at, owner="a", lease_until=at + LEASE
        )
        assert store.finish_event(event_id, "a", at)
    fresh = backend.handles(2)[1]  # SQL prunes on a handle's first claim, now and then after
    try:
        fresh.claim_events("triage", "a", T0, T0 + LEASE)
        assert fresh.get_event("EvOld") is None
        assert fresh.record_event("EvOld", "triage", _env("EvOld"), T0) is True
        assert fresh.record_event("EvNew", "triage", _env("EvNew"), T0) is False
    finally:
        if fresh is not store:
            fresh.close()


def test_threads_race_to_record_and_claim(backend: Backend) -> None:
    stores = backend.handles(2)
    try:
        won = _race(RACERS, lambda i: stores[i % 2].record_event("Ev1", "t", _env(), T0))
        assert won.count(True) == 1
        for i in range(20):
            stores[0].record_event(f"EvR{i:02d}", "t", _env(), T0)
        taken: list[list[str]] = [[] for _ in range(RACERS)]

        def claim(i: int) -> bool:
            got = stores[i % 2].claim_events("t", f"w{i}", T0, T0 + LEASE, limit=5)
            taken[i] = [e.event_id for e in got]
            return bool(got)

        _race(RACERS, claim)
        everything = sorted(e for t in taken for e in t)
        assert len(everything) == len(set(everything))  # never one event to two workers
        assert len(everything) + len(stores[0].pending_events("t")) >= 21
    finally:
        for extra in stores[1:]:
            if extra is not stores[0]:
                extra.close()


def test_ping_answers(store: AnyStore) -> None:
    store.ping()


def test_sql_record_gives_up_quickly_when_the_database_is_locked(
    sql_store: SqlStore, store_url: str
) -> None:
    """A database that cannot take the event within RECORD_DEADLINE raises (the endpoint then
    answers 503 and Slack retries) instead of holding the acknowledgement for 30 s."""
    import time

    from sqlalchemy.exc import OperationalError

    locker = SqlStore(store_url)
    try:
        with locker.engine.connect() as conn:
            if sql_store.backend == "sqlite":
                conn.exec_driver_sql("COMMIT")  # leave the autobegun deferred transaction
                conn.exec_driver_sql("BEGIN EXCLUSIVE")
            else:  # an uncommitted insert of the same id holds the key
                conn.execute(
                    inbox.insert().values(
                        event_id="Ev1",
                        pool="triage",
                        state="pending",
                        envelope="{}",
                        attempts=0,
                        received=T0,
                        next_at=T0,
                    )
                )
            started = time.monotonic()
            with pytest.raises(OperationalError):
                sql_store.record_event("Ev1", "triage", _env(), T0)
            took = time.monotonic() - started
            conn.rollback()
        assert took < RECORD_DEADLINE.total_seconds() + 1.5
        assert sql_store.record_event("Ev1", "triage", _env(), T0) is True
        if sql_store.backend == "sqlite":  # the store's own busy timeout is back afterwards
            with sql_store.engine.connect() as c:
                assert c.exec_driver_sql("PRAGMA busy_timeout").scalar() == SQLITE_BUSY_TIMEOUT_MS
    finally:
        locker.close()


# --------------------------------------------------------------------------- filings


def test_filing_lifecycle(store: AnyStore) -> None:
    assert store.get_filing("C1", "1.0") is None
    assert store.claim_filing("C1", "1.0", "worker-a") is True
    assert store.claim_filing("C1", "1.0", "worker-b") is False
    f = store.get_filing("C1", "1.0")
    assert f is not None and f.state == "claimed" and f.owner == "worker-a" and f.attempts == 0
    assert f.updated is not None and f.updated.tzinfo is not None
    first_updated = f.updated

    store.update_filing("C1", "1.0", state="queued", attempts=1)
    store.update_filing("C1", "1.0", state="failed", error="x" * (ERROR_MAX + 500))
    f = store.get_filing("C1", "1.0")
    assert f is not None and f.state == "failed" and f.attempts == 1
    assert f.error is not None and len(f.error) == ERROR_MAX
    assert f.updated is not None and f.updated >= first_updated

    store.update_filing("C1", "1.0", state="filed", issue_key="ID-1", issue_url="https://j/ID-1")
    f = store.get_filing("C1", "1.0")
    assert f is not None and (f.state, f.issue_key, f.issue_url) == (
        "filed",
        "ID-1",
        "https://j/ID-1",
    )

    with pytest.raises(ValueError, match="state"):
        store.update_filing("C1", "1.0", state="done")
    with pytest.raises(ValueError, match="unknown"):
        store.update_filing("C1", "1.0", bogus="x")


def test_filings_between_by_updated(store: AnyStore) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    store.claim_filing("C1", "1.0", "w")
    store.claim_filing("C1", "2.0", "w")
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert {f.ts for f in store.filings_between(before, after)} == {"1.0", "2.0"}
    assert store.filings_between(after, after + timedelta(hours=1)) == []


# --------------------------------------------------------------------------- outbox


def test_enqueue_unique_among_pending(store: AnyStore) -> None:
    first = store.enqueue("file", "C1:1.0", {"a": 1}, T0)
    assert first is not None
    assert store.enqueue("file", "C1:1.0", {"a": 2}, T0) is None
    other = store.enqueue("comment", "C1:1.0", {"a": 3}, T0)
    assert other is not None and other != first
    item = store.get_item(first)
    assert item is not None and (item.topic, item.key, item.payload) == ("file", "C1:1.0", {"a": 1})
    items = store.pending()
    assert [(i.topic, i.payload) for i in items] == [("file", {"a": 1}), ("comment", {"a": 3})]


def test_due_orders_by_next_at_and_respects_limit(store: AnyStore) -> None:
    store.enqueue("t", "late", {}, T0 + timedelta(minutes=5))
    store.enqueue("t", "early", {}, T0 - timedelta(minutes=5))
    store.enqueue("t", "mid", {}, T0)
    store.enqueue("t", "future", {}, T0 + timedelta(hours=1))
    due = store.due(T0 + timedelta(minutes=10))
    assert [i.key for i in due] == ["early", "mid", "late"]
    assert all(i.next_at.tzinfo is not None for i in due)
    assert [i.key for i in store.due(T0 + timedelta(minutes=10), limit=2)] == ["early", "mid"]
    assert [i.key for i in store.due(T0)] == ["early", "mid"]


def test_payload_json_round_trip(store: AnyStore) -> None:
    payload = {"channel": "C1", "n": 3, "nested": {"l": [1, 2.5, None, True]}, "s": "é ✓"}
    store.enqueue("t", "k", payload, T0)
    assert store.pending()[0].payload == payload


def test_lease_hides_item_until_it_expires(store: AnyStore) -> None:
    store.enqueue("t", "k", {}, T0)
    (item,) = store.due(T0)
    until = T0 + timedelta(minutes=5)
    assert store.lease(item.id, until, now=T0) is not None
    assert store.lease(item.id, until, now=T0) is None
    assert store.due(T0 + timedelta(minutes=1)) == []
    assert [i.id for i in store.pending()] == [item.id]  # leased is still pending
    # the holder died: once the lease has expired the item is due and can be leased again
    assert [i.id for i in store.due(until)] == [item.id]
    assert store.lease(item.id, until + timedelta(minutes=5), now=until) is not None


def test_lease_default_now_is_wall_clock(store: AnyStore) -> None:
    store.enqueue("t", "k", {}, T0)
    (item,) = store.due(T0)
    # a lease that ended long ago does not block; one in the future does
    assert store.lease(item.id, datetime.now(UTC) - timedelta(hours=1)) is not None
    assert store.lease(item.id, datetime.now(UTC) + timedelta(hours=1)) is not None
    assert store.lease(item.id, datetime.now(UTC) + timedelta(hours=2)) is None


def test_retry_later_counts_and_reschedules(store: AnyStore) -> None:
    store.enqueue("t", "k", {"x": 1}, T0)
    (item,) = store.due(T0)
    assert store.lease(item.id, T0 + timedelta(hours=1), now=T0)
    store.retry_later(item.id, T0 + timedelta(minutes=2), "boom " * 1000)
    assert store.due(T0 + timedelta(minutes=1)) == []
    (again,) = store.due(T0 + timedelta(minutes=2))  # lease cleared, due at the new time
    assert again.attempts == 1
    assert again.next_at == T0 + timedelta(minutes=2)
    assert again.last_error is not None and len(again.last_error) == ERROR_MAX
    assert again.payload == {"x": 1}
    store.retry_later(item.id, T0 + timedelta(minutes=4), "again")
    (third,) = store.pending()
    assert third.attempts == 2 and third.last_error == "again"


def test_finish_then_same_key_can_be_enqueued_again(store: AnyStore) -> None:
    store.enqueue("t", "k", {"n": 1}, T0)
    (item,) = store.due(T0)
    store.finish(item.id)
    assert store.pending() == []
    assert store.due(T0 + timedelta(days=1)) == []
    assert store.lease(item.id, T0 + timedelta(hours=1), now=T0) is None
    store.retry_later(item.id, T0, "late failure")  # no effect on a finished item
    assert store.pending() == []
    done = store.get_item(item.id)
    assert done is not None and (done.attempts, done.last_error) == (0, None)
    assert store.enqueue("t", "k", {"n": 2}, T0) is not None
    (new,) = store.pending()
    assert new.id != item.id and new.payload == {"n": 2} and new.attempts == 0
    assert store.enqueue("t", "k", {"n": 3}, T0) is None


def test_finished_items_stay_readable_and_payloads_are_copies(store: AnyStore) -> None:
    payload: dict[str, Any] = {"l": [1]}
    item_id = store.enqueue("t", "k", payload, T0)
    assert item_id is not None
    payload["l"].append(2)  # the caller's dict is not the stored one
    store.finish(item_id)
    item = store.get_item(item_id)
    assert item is not None and item.payload == {"l": [1]}
    assert store.get_item(item_id + 1000) is None


def test_writes_to_unknown_rows_change_nothing(store: AnyStore) -> None:
    store.update_post("C1", "nope", kind="idea")
    store.update_filing("C1", "nope", state="filed")
    store.retry_later(12345, T0, "x")
    store.finish(12345)
    store.release_digest("d", "C1", DAY)
    assert store.get_post("C1", "nope") is None and store.get_filing("C1", "nope") is None
    assert store.pending() == [] and store.get_item(12345) is None
    assert store.lease(12345, T0, now=T0) is None


def test_naive_datetimes_are_refused_everywhere(store: AnyStore) -> None:
    naive = datetime(2025, 3, 3, 9, 0)
    calls: list[Callable[[], object]] = [
        lambda: store.enqueue("t", "k", {}, naive),
        lambda: store.due(naive),
        lambda: store.posts_between(naive, naive),
        lambda: store.filings_between(naive, naive),
    ]
    for call in calls:
        with pytest.raises(Exception, match="naive"):
            call()
    assert store.pending() == []


# --------------------------------------------------------------------------- fenced leases


def _leased(store: AnyStore, key: str = "C1:1.0") -> tuple[int, int]:
    item_id = store.enqueue("t", key, {}, T0)
    assert item_id is not None
    token = store.lease(item_id, T0 + timedelta(minutes=1), now=T0)
    assert token is not None
    return item_id, token


def test_each_lease_gets_a_greater_token(store: AnyStore) -> None:
    item_id, first = _leased(store)
    later = T0 + timedelta(minutes=2)  # the first lease has run out
    second = store.lease(item_id, later + timedelta(minutes=1), now=later)
    assert second is not None and second > first
    item = store.get_item(item_id)
    assert item is not None and item.created is not None and item.created.tzinfo is not None


def test_completions_with_a_lost_lease_change_nothing(store: AnyStore) -> None:
    item_id, old = _leased(store)
    later = T0 + timedelta(minutes=2)
    new = store.lease(item_id, later + timedelta(minutes=1), now=later)
    assert new is not None
    assert store.retry_later(item_id, T0, "late", token=old) is False
    assert store.finish(item_id, token=old) is False
    (item,) = store.pending()
    assert (item.attempts, item.last_error) == (0, None)
    assert store.retry_later(item_id, later, "503", token=new) is True
    again = store.lease(item_id, later + timedelta(minutes=1), now=later)
    assert again is not None
    assert store.finish(item_id, token=new) is False  # a retry's lease is not the same lease
    assert store.finish(item_id, token=again) is True
    assert store.finish(item_id, token=again) is False  # done already
    assert store.pending() == []


def test_a_renewed_lease_holds_the_item_until_the_new_end(store: AnyStore) -> None:
    item_id, token = _leased(store)  # until T0 + 1 min
    later = T0 + timedelta(minutes=5)
    assert store.renew_lease(item_id, token, later) is True
    # past the first end, the heartbeat's end keeps the item from being due or leased
    mid = T0 + timedelta(minutes=3)
    assert store.due(mid) == []
    assert store.lease(item_id, mid + timedelta(minutes=1), now=mid) is None
    # the holder stopped renewing (it died): the item is taken over at the renewed end, and
    # the old holder's renewal fails from then on
    new = store.lease(item_id, later + timedelta(minutes=1), now=later)
    assert new is not None and new > token
    assert store.renew_lease(item_id, token, later + timedelta(minutes=10)) is False
    assert store.lease(item_id, later + timedelta(minutes=2), now=later) is None
    assert store.renew_lease(item_id, new, later + timedelta(minutes=2)) is True
    assert store.finish(item_id, token=new) is True
    assert store.renew_lease(item_id, new, later + timedelta(minutes=3)) is False  # done
    assert store.renew_lease(12345, 1, later) is False


def test_a_lapsed_lease_nobody_took_can_still_be_renewed(store: AnyStore) -> None:
    # A heartbeat that came late (a stalled process) but before any takeover: the token is
    # still the latest, so nobody else started; the renewed end holds off the next taker.
    item_id, token = _leased(store)  # until T0 + 1 min
    late = T0 + timedelta(minutes=2)
    assert [i.id for i in store.due(late)] == [item_id]
    assert store.renew_lease(item_id, token, late + timedelta(minutes=1)) is True
    assert store.lease(item_id, late + timedelta(minutes=1), now=late) is None
    assert store.finish(item_id, token=token) is True


def test_fenced_filing_updates_go_with_the_item_or_not_at_all(store: AnyStore) -> None:
    store.claim_filing("C1", "1.0", "w")
    item_id, token = _leased(store)
    fence = Fence(item_id, token)
    assert store.update_filing_fenced(fence, "C1", "1.0", attempts=1) is True
    at = T0 + timedelta(minutes=3)
    step = RetryAt(at, "HTTP 503")
    assert store.update_filing_fenced(fence, "C1", "1.0", item=step, state="queued", error="503")
    (item,) = store.pending()
    assert (item.attempts, item.next_at, item.last_error) == (1, at, "HTTP 503")
    f = store.get_filing("C1", "1.0")
    assert f is not None and (f.state, f.error, f.attempts) == ("queued", "503", 1)
    # worker A's lease is taken over by B: A's outcome is refused, filing and item untouched
    token_b = store.lease(item_id, at + timedelta(minutes=1), now=at)
    assert token_b is not None
    assert not store.update_filing_fenced(fence, "C1", "1.0", item="finish", state="filed")
    assert not store.update_filing_fenced(fence, "C1", "1.0", attempts=9)
    f = store.get_filing("C1", "1.0")
    assert f is not None and (f.state, f.attempts) == ("queued", 1)
    assert [i.id for i in store.pending()] == [item_id]
    fence_b = Fence(item_id, token_b)
    assert store.update_filing_fenced(
        fence_b, "C1", "1.0", item="finish", state="filed", issue_key="P-1", error=None
    )
    f = store.get_filing("C1", "1.0")
    assert f is not None and (f.state, f.issue_key, f.error) == ("filed", "P-1", None)
    assert store.pending() == []
    assert not store.update_filing_fenced(fence_b, "C1", "1.0", state="queued")  # done: no more
    with pytest.raises(ValueError, match="state"):
        store.update_filing_fenced(fence_b, "C1", "1.0", state="done")


def test_a_fenced_finish_and_a_takeover_race_with_one_winner(backend: Backend) -> None:
    stores = backend.handles(2)
    try:
        later = T0 + timedelta(minutes=2)  # the old leases have run out by then
        for round_ in range(4):
            ts = f"{round_}.0"
            stores[0].claim_filing("C1", ts, "w")
            item_id, old = _leased(stores[0], f"C1:{ts}")

            def go(i: int, item_id: int = item_id, old: int = old, ts: str = ts) -> bool:
                s = stores[i % 2]
                if i % 2:
                    return s.lease(item_id, later + timedelta(minutes=1), now=later) is not None
                fence = Fence(item_id, old)
                return s.update_filing_fenced(fence, "C1", ts, item="finish", state="filed")

            won = _race(2, go)
            assert won.count(True) == 1, won
            f = stores[1].get_filing("C1", ts)
            assert f is not None and (f.state == "filed") == won[0]
    finally:
        for extra in stores[1:]:
            extra.close()


def test_marker_secret_is_made_once_for_every_handle(backend: Backend) -> None:
    stores = backend.handles(2)
    try:
        seen: list[str] = []
        lock = threading.Lock()

        def read(i: int) -> bool:
            value = stores[i % 2].marker_secret()
            with lock:
                seen.append(value)
            return True

        _race(RACERS, read)
        assert len(set(seen)) == 1 and len(seen[0]) >= 32
        assert stores[0].marker_secret() == seen[0]
    finally:
        for extra in stores[1:]:
            extra.close()


def test_a_version_1_database_is_upgraded_in_place(sql_store: SqlStore, store_url: str) -> None:
    sql_store.claim_filing("C1", "1.0", "w")
    item_id = sql_store.enqueue("t", "k", {"a": 1}, T0)
    sql_store.claim_digest("meetings", "C1", DAY)
    with sql_store.engine.begin() as conn:  # what a bot of schema version 1 left behind
        conn.execute(text("ALTER TABLE outbox DROP COLUMN lease_token"))
        conn.execute(text("ALTER TABLE digests DROP COLUMN claim_token"))
        conn.execute(text("UPDATE kv SET value = '1' WHERE key = 'schema_version'"))
    sql_store.close()
    again = SqlStore(store_url)
    try:
        assert again.get_value("schema_version") == str(SCHEMA_VERSION)
        assert item_id is not None and again.lease(item_id, T0 + timedelta(minutes=1), now=T0) == 1
        assert again.claim_digest("meetings", "C1", DAY) is False
        f = again.get_filing("C1", "1.0")
        assert f is not None and f.state == "claimed"
    finally:
        again.close()


def test_memory_finished_items_are_dropped_after_the_retention_period() -> None:
    clock = ManualClock(T0)
    store = MemoryStore(clock)
    old, new = store.enqueue("t", "old", {}, T0), store.enqueue("t", "new", {}, T0)
    assert old is not None and new is not None
    store.finish(old)
    clock.advance(DONE_OUTBOX_KEEP + timedelta(seconds=1))
    store.finish(new)
    assert store.get_item(old) is None and store.get_item(new) is not None


# --------------------------------------------------------------------------- digests


def test_digest_claim_post_force_release(store: AnyStore) -> None:
    assert store.get_digest("meetings", "C9", DAY) is None
    assert store.claim_digest("meetings", "C9", DAY) is True
    assert store.claim_digest("meetings", "C9", DAY) is False
    assert store.claim_digest("meetings", "C9", DAY, force=True) is False  # fresh claim: not stolen
    assert store.claim_digest("meetings", "C9", DAY + timedelta(days=1)) is True
    assert store.claim_digest("takeaways", "C9", DAY) is True
    rec = store.get_digest("meetings", "C9", DAY)
    assert rec is not None and rec.state == "claimed" and rec.message_ts is None
    assert rec.day == DAY and rec.extra == {}

    store.mark_digest_posted("meetings", "C9", DAY, "123.456", extra={"meetings": 3})
    rec = store.get_digest("meetings", "C9", DAY)
    assert rec is not None and (rec.state, rec.message_ts, rec.extra) == (
        "posted",
        "123.456",
        {"meetings": 3},
    )
    assert store.claim_digest("meetings", "C9", DAY) is False
    store.release_digest("meetings", "C9", DAY)  # posted: release must not undo it
    assert store.claim_digest("meetings", "C9", DAY) is False

    assert store.claim_digest("meetings", "C9", DAY, force=True) is True
    rec = store.get_digest("meetings", "C9", DAY)
    assert rec is not None and rec.state == "claimed" and rec.message_ts is None
    assert store.claim_digest("meetings", "C9", DAY, force=True) is False

    store.release_digest("meetings", "C9", DAY)
    assert store.get_digest("meetings", "C9", DAY) is None
    assert store.claim_digest("meetings", "C9", DAY) is True


def test_force_takes_over_an_abandoned_claim(backend: Backend) -> None:
    store = backend.store
    assert store.claim_digest("meetings", "C9", DAY) is True
    backend.age_digest_claims(STALE_DIGEST_CLAIM + timedelta(minutes=1))
    assert store.claim_digest("meetings", "C9", DAY) is False
    assert store.claim_digest("meetings", "C9", DAY, force=True) is True


def test_stale_after_takes_over_only_an_old_unposted_claim(backend: Backend) -> None:
    store = backend.store
    five = timedelta(minutes=5)
    assert store.claim_digest("meetings", "C9", DAY, stale_after=five) is True  # no row: insert
    assert store.claim_digest("meetings", "C9", DAY, stale_after=five) is False  # fresh claim
    backend.age_digest_claims(timedelta(minutes=6))
    assert store.claim_digest("meetings", "C9", DAY) is False  # plain claims never take over
    assert store.claim_digest("meetings", "C9", DAY, stale_after=five) is True
    # The takeover refreshed the claim: a second taker loses.
    assert store.claim_digest("meetings", "C9", DAY, stale_after=five) is False
    rec = store.get_digest("meetings", "C9", DAY)
    assert rec is not None and rec.state == "claimed" and rec.message_ts is None

    store.mark_digest_posted("meetings", "C9", DAY, "9.9")
    backend.age_digest_claims(timedelta(hours=1))
    assert store.claim_digest("meetings", "C9", DAY, stale_after=five) is False  # posted: never
    rec = store.get_digest("meetings", "C9", DAY)
    assert rec is not None and rec.state == "posted" and rec.message_ts == "9.9"


def test_racing_takeovers_of_a_stale_claim_have_one_winner(backend: Backend) -> None:
    stores = backend.handles(2)
    try:
        for round_ in range(3):
            day = DAY + timedelta(days=round_)
            assert stores[0].claim_digest("d", "C1", day) is True
            backend.age_digest_claims(timedelta(minutes=10), day)

            def take(i: int, day: date = day) -> bool:
                return stores[i % 2].claim_digest("d", "C1", day, stale_after=timedelta(minutes=5))

            assert _race(RACERS, take).count(True) == 1
    finally:
        for extra in stores[1:]:
            extra.close()


def test_digest_claim_tokens_fence_the_claimant(backend: Backend) -> None:
    store = backend.store
    five = timedelta(minutes=5)
    assert store.claim_digest("meetings", "C9", DAY, token="run-a") is True
    assert store.renew_digest_claim("meetings", "C9", DAY, "run-a")
    assert not store.renew_digest_claim("meetings", "C9", DAY, "run-b")
    backend.age_digest_claims(timedelta(minutes=6))
    assert store.claim_digest("meetings", "C9", DAY, stale_after=five, token="run-b") is True
    # run A took too long: the claim is B's now, so A may neither record nor release it
    assert not store.renew_digest_claim("meetings", "C9", DAY, "run-a")
    assert store.mark_digest_posted("meetings", "C9", DAY, "1.1", token="run-a") is False
    store.release_digest("meetings", "C9", DAY, token="run-a")
    rec = store.get_digest("meetings", "C9", DAY)
    assert rec is not None and rec.state == "claimed" and rec.message_ts is None
    assert store.mark_digest_posted("meetings", "C9", DAY, "2.2", token="run-b") is True
    assert not store.renew_digest_claim("meetings", "C9", DAY, "run-b")  # posted: nothing held
    assert store.mark_digest_posted("meetings", "C9", DAY, "3.3", token="run-b") is False
    rec = store.get_digest("meetings", "C9", DAY)
    assert rec is not None and (rec.state, rec.message_ts) == ("posted", "2.2")
    # force takes over a posted digest under a new token
    assert store.claim_digest("meetings", "C9", DAY, force=True, token="run-c") is True
    assert store.renew_digest_claim("meetings", "C9", DAY, "run-c")
    store.release_digest("meetings", "C9", DAY, token="run-c")
    assert store.get_digest("meetings", "C9", DAY) is None
    assert store.mark_digest_posted("meetings", "C9", DAY, "4.4", token="run-c") is False
    assert store.get_digest("meetings", "C9", DAY) is None  # a fenced mark never inserts


def test_renewing_a_digest_claim_keeps_it_from_going_stale(backend: Backend) -> None:
    store = backend.store
    five = timedelta(minutes=5)
    assert store.claim_digest("takeaways", "C9", DAY, token="run-a") is True
    backend.age_digest_claims(timedelta(minutes=6))
    assert store.renew_digest_claim("takeaways", "C9", DAY, "run-a")
    assert store.claim_digest("takeaways", "C9", DAY, stale_after=five, token="run-b") is False
    assert store.mark_digest_posted("takeaways", "C9", DAY, "1.1", token="run-a") is True


def test_mark_posted_without_claim_records_it(store: AnyStore) -> None:
    store.mark_digest_posted("takeaways", "C9", DAY, "1.1")
    rec = store.get_digest("takeaways", "C9", DAY)
    assert rec is not None and rec.state == "posted" and rec.message_ts == "1.1"
    assert store.claim_digest("takeaways", "C9", DAY) is False


# --------------------------------------------------------------------------- concurrency


def test_threads_race_for_claims(store: AnyStore) -> None:
    assert _race(RACERS, lambda i: store.claim_filing("C1", "1.0", f"w{i}")).count(True) == 1
    assert _race(RACERS, lambda i: store.claim_digest("d", "C1", DAY)).count(True) == 1
    assert _race(RACERS, lambda i: store.record_event("Ev1", "t", {}, T0)).count(True) == 1
    assert (
        _race(RACERS, lambda i: store.enqueue("t", "k", {"i": i}, T0) is not None).count(True) == 1
    )
    (item,) = store.pending()
    until = T0 + timedelta(minutes=5)
    assert _race(RACERS, lambda i: store.lease(item.id, until, now=T0)).count(True) == 1
    store.mark_digest_posted("d", "C1", DAY, "1.0")
    assert _race(RACERS, lambda i: store.claim_digest("d", "C1", DAY, force=True)).count(True) == 1


def test_two_instances_on_one_database_race(sql_store: SqlStore, store_url: str) -> None:
    other = SqlStore(store_url)
    try:
        stores = [sql_store, other]
        for round_ in range(5):

            def filing(i: int, ts: str = f"{round_}.0") -> bool:
                return stores[i % 2].claim_filing("C1", ts, f"w{i}")

            def digest(i: int, day: date = DAY + timedelta(days=round_)) -> bool:
                return stores[i % 2].claim_digest("d", "C1", day)

            assert _race(RACERS, filing).count(True) == 1
            assert _race(RACERS, digest).count(True) == 1
        sql_store.enqueue("t", "k", {}, T0)
        (item,) = other.due(T0)
        until = T0 + timedelta(minutes=1)
        won = _race(RACERS, lambda i: stores[i % 2].lease(item.id, until, now=T0))
        assert won.count(True) == 1
        rec = other.get_filing("C1", "4.0")
        assert rec is not None and rec.state == "claimed"
    finally:
        other.close()


def _record_as_slack_delivers(s: SqlStore) -> bool:
    """record_event, delivered again after a failure as Slack does after a 503: a racer can find
    the file locked for longer than the record's deadline while the others start up."""
    from sqlalchemy.exc import OperationalError

    for _ in range(10):
        try:
            return s.record_event("Ev1", "triage", {}, T0)
        except OperationalError:
            continue
    return s.record_event("Ev1", "triage", {}, T0)


def _process_racer(url: str, barrier: Any, out: Any, who: int) -> None:
    barrier.wait()
    try:
        s = SqlStore(url)
        try:
            won = (
                s.claim_digest("meetings", "C1", DAY),
                s.claim_filing("C1", "1.0", f"p{who}"),
                _record_as_slack_delivers(s),
            )
        finally:
            s.close()
    except Exception as exc:  # reported to the parent, which would otherwise wait for a result
        out.put((who, repr(exc)))
        return
    out.put((who, *won))


def test_processes_race_on_a_fresh_database(store_url: str) -> None:
    """Real bot processes starting together on an empty database: schema creation and claims."""
    ctx = mp.get_context("spawn")
    n = 3
    barrier = ctx.Barrier(n)
    out = ctx.Queue()
    procs = [
        ctx.Process(target=_process_racer, args=(store_url, barrier, out, i)) for i in range(n)
    ]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in range(n)]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert all(len(r) == 4 for r in results), results
    assert sorted(r[0] for r in results) == list(range(n))
    for column in (1, 2, 3):
        assert [r[column] for r in results].count(True) == 1
    store = SqlStore(store_url)
    try:
        rec = store.get_digest("meetings", "C1", DAY)
        assert rec is not None and rec.state == "claimed"
        assert store.get_value("schema_version") == str(SCHEMA_VERSION)
    finally:
        store.close()


def test_pg_returns_utc_whatever_the_session_zone(pg_url: str) -> None:
    url = make_url(pg_url)
    options = url.query["options"]
    assert isinstance(options, str)
    tokyo_url = url.update_query_dict({"options": options + " -ctimezone=Asia/Tokyo"})
    s = SqlStore(tokyo_url.render_as_string(hide_password=False))
    try:
        with s.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW timezone").scalar() == "Asia/Tokyo"
        s.save_post(_post(created=T0))
        got = s.get_post("C1", "1.0")
        assert got is not None and got.created == T0 and got.created.tzinfo is UTC
        assert [p.ts for p in s.posts_between(T0, T0 + timedelta(seconds=1))] == ["1.0"]
    finally:
        s.close()


# --------------------------------------------------------------------------- ticket catalogue


def _ticket(key: str, title: str = "a title", **kw: Any) -> Ticket:
    return Ticket(key=key, title=title, **kw)


def test_catalogue_round_trip_numbers_writes_and_skips_unchanged(store: AnyStore) -> None:
    full = _ticket(
        "APP-1",
        "Login crashes",
        description="on Safari",
        type="Bug",
        status="Open",
        url="https://jira.example/browse/APP-1",
        updated=datetime(2025, 3, 3, 9, 0, 0, 123000, tzinfo=timezone(timedelta(hours=-5))),
        labels=("safari", "login"),
        components=("Web",),
    )
    assert store.catalogue_head("APP") == 0
    assert store.put_tickets("APP", [full, _ticket("APP-2")]) == 2
    rows = store.tickets_since("APP", 0)
    assert [r.key for r in rows] == ["APP-1", "APP-2"]
    assert rows[0].seq < rows[1].seq == store.catalogue_head("APP")
    assert rows[0].ticket == full and rows[0].content_hash == full.content_hash()
    assert rows[0].ticket is not None and rows[0].ticket.labels == ("safari", "login")
    assert rows[0].ticket.updated is not None and rows[0].ticket.updated.tzinfo is UTC
    assert rows[0].vectors is None
    head = store.catalogue_head("APP")
    # Writing what is stored again is free: no new number, nothing for readers to re-read.
    assert store.put_tickets("APP", [full, _ticket("APP-2")]) == 0
    assert store.catalogue_head("APP") == head
    # A later duplicate in one call wins; a metadata-only change is a write.
    done = full.model_copy(update={"status": "Done"})
    assert store.put_tickets("APP", [full.model_copy(update={"status": "X"}), done]) == 1
    (changed,) = store.tickets_since("APP", head)
    assert changed.ticket == done and changed.seq > head
    assert store.get_tickets("APP", ["APP-1", "NOPE-1"])["APP-1"].ticket == done
    assert store.count_tickets("APP") == 2
    assert store.tickets_since("APP", 0, limit=1)[0].key == "APP-2"  # in number order


def test_catalogue_deletes_leave_tombstones_readers_can_follow(store: AnyStore) -> None:
    store.put_tickets("APP", [_ticket("APP-1"), _ticket("APP-2")])
    head = store.catalogue_head("APP")
    assert store.delete_tickets("APP", ["APP-1", "APP-1", "NOPE-1"]) == 1
    assert store.delete_tickets("APP", ["APP-1"]) == 0  # already a tombstone
    (tomb,) = store.tickets_since("APP", head, model="m")
    assert (tomb.key, tomb.deleted, tomb.vectors) == ("APP-1", True, None)
    assert tomb.seq == store.catalogue_head("APP") > head
    assert store.get_tickets("APP", ["APP-1"]) == {}
    assert store.count_tickets("APP") == 1
    assert store.put_tickets("APP", [_ticket("APP-1", "back again")]) == 1
    assert store.get_tickets("APP", ["APP-1"])["APP-1"].ticket == _ticket("APP-1", "back again")
    assert store.count_tickets("APP") == 2


def test_catalogue_projects_are_separate_and_numbers_shared(store: AnyStore) -> None:
    store.put_tickets("APP", [_ticket("APP-1")])
    store.put_tickets("WEB", [_ticket("APP-1", "same key, other project")])
    assert store.catalogue_head("WEB") > store.catalogue_head("APP") > 0
    assert [r.ticket.title for r in store.tickets_since("WEB", 0) if r.ticket] == [
        "same key, other project"
    ]
    assert store.count_tickets("APP") == store.count_tickets("WEB") == 1
    assert store.delete_tickets("WEB", ["APP-1"]) == 1 and store.count_tickets("APP") == 1


def test_catalogue_embeddings_per_hash_and_model(store: AnyStore) -> None:
    t = _ticket("APP-1", "Export CSV", description="reports")
    store.put_embeddings("m1", {t.content_hash(): b"\x01" * 16, "other": b"\x02"})
    store.put_embeddings("m1", {t.content_hash(): b"\xff" * 16})  # the first one is kept
    store.put_embeddings("m2", {t.content_hash(): b"\x03" * 16})
    assert store.get_embeddings("m1", [t.content_hash(), "missing"]) == {
        t.content_hash(): b"\x01" * 16
    }
    store.put_tickets("APP", [t])
    (row,) = store.tickets_since("APP", 0, model="m2")
    assert row.vectors == b"\x03" * 16
    assert store.tickets_since("APP", 0, model="m3")[0].vectors is None
    assert store.tickets_since("APP", 0)[0].vectors is None


def test_catalogue_refuses_naive_updated(store: AnyStore) -> None:
    with pytest.raises(Exception, match="naive"):
        store.put_tickets("APP", [_ticket("APP-1", updated=datetime(2025, 1, 1, 9, 0))])
    assert store.catalogue_head("APP") == 0


def test_catalogue_readers_following_concurrent_writers_miss_nothing(backend: Backend) -> None:
    """Numbers become visible in commit order: a reader that moves its cursor to the highest
    number it saw never skips a write that commits later with a lower number."""
    writers = backend.handles(4)
    reader = writers[0]
    done = threading.Event()
    seen: dict[str, int] = {}
    errors: list[BaseException] = []

    def follow() -> None:
        cursor = 0
        try:
            while True:
                finished = done.is_set()
                rows = reader.tickets_since("APP", cursor, limit=50)
                for row in rows:
                    assert row.seq > cursor
                    cursor = row.seq
                    seen[row.key] = row.seq
                if finished and len(rows) < 50:
                    return
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    follower = threading.Thread(target=follow)
    follower.start()
    try:
        _race(4, lambda i: all(writers[i].put_tickets("APP", [_ticket(f"W{i}-{j}")]) == 1
                               for j in range(25)))  # fmt: skip
    finally:
        done.set()
        follower.join()
        for extra in writers[1:]:
            if extra is not reader:
                extra.close()
    assert errors == []
    assert len(seen) == 100
    numbers = [r.seq for r in reader.tickets_since("APP", 0, limit=1000)]
    assert len(set(numbers)) == 100 and numbers == sorted(numbers)


def test_a_database_from_before_the_catalogue_gets_its_tables(
    sql_store: SqlStore, store_url: str
) -> None:
    from bot.adapters.sql_catalogue import catalogue_embeddings, catalogue_seq, catalogue_tickets

    sql_store.set_value("cursor", "kept")
    with sql_store.engine.begin() as conn:
        for table in (catalogue_tickets, catalogue_embeddings, catalogue_seq):
            table.drop(conn)
    upgraded = SqlStore(store_url)
    try:
        assert upgraded.get_value("cursor") == "kept"
        assert upgraded.get_value("schema_version") == str(SCHEMA_VERSION)
        assert upgraded.put_tickets("APP", [_ticket("APP-1")]) == 1
        assert upgraded.catalogue_head("APP") == 1
    finally:
        upgraded.close()


def test_one_group_of_deliveries_is_written_in_one_statement(backend: Backend) -> None:
    # What concurrent acknowledgements share (bot.adapters.group_commit): a redelivery and the
    # same id twice in one group are each "not new", and the first copy is the one kept.
    store = backend.store
    if not isinstance(store, SqlStore):
        pytest.skip("the memory fake has no group writes")
    assert store.record_event("Old", "triage", _env("Old"), T0)

    def row(event_id: str, text: str) -> dict[str, Any]:
        return {
            "event_id": event_id,
            "pool": "triage",
            "state": "pending",
            "envelope": json.dumps(_env(event_id, text=text)),
            "attempts": 0,
            "received": T0,
            "next_at": T0,
            "owner": None,
            "lease_until": None,
        }

    got = store._record_group(
        [row("A", "first"), row("Old", "x"), row("A", "second"), row("B", "")]
    )
    assert got == [True, False, False, True]
    a = store.get_event("A")
    assert a is not None and a.envelope == _env("A", text="first")
    assert {e.event_id for e in store.pending_events("triage")} == {"Old", "A", "B"}
