"""The ``Inbox`` port on SQL: Slack events recorded before they are acknowledged.

Recording is one INSERT on the event id (the primary key), so a redelivery is recorded once and
the insert is the whole cost of an acknowledgement. Deliveries that arrive together are written
together (``bot.adapters.group_commit``: one transaction, one multi-row INSERT ... ON CONFLICT DO
NOTHING RETURNING), so twenty concurrent acknowledgements do not queue for twenty commits. It runs
under a short deadline (``RECORD_DEADLINE``): a database that cannot take the row in time makes
the endpoint answer 503 and Slack retry, instead of the request hanging past Slack's 3 seconds.

Workers claim pending events with a lease (a conditional UPDATE: of racing workers exactly one
changes the row), renew it while they work, and finish with an UPDATE fenced on the owner, so a
worker whose lease was taken over cannot mark someone else's work done.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    Column,
    Engine,
    Index,
    Integer,
    String,
    Table,
    Text,
    delete,
    event,
    or_,
    select,
)
from sqlalchemy import update as sql_update
from sqlalchemy.engine import Connection

from bot.adapters.group_commit import GroupCommit
from bot.adapters.sql_base import SqlBase, clip_error
from bot.adapters.sql_schema import WRITE_OPTION, UTCDateTime, metadata, sqlite_engine
from bot.domain.ports import InboxEvent

# Done and failed events are kept this long: a redelivery within it is still recognised (Slack
# retries for minutes; three days also leaves time to look at what failed).
EVENT_KEEP = timedelta(days=3)
# The longest an acknowledgement waits for the database to take the event.
RECORD_DEADLINE = timedelta(seconds=1)
INBOX_STATES = frozenset({"pending", "done", "failed"})
_PRUNE_EVERY = 200

inbox = Table(
    "inbox",
    metadata,
    Column("event_id", String(120), primary_key=True),
    Column("pool", String(20), nullable=False),
    Column("state", String(10), nullable=False),
    Column("envelope", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("received", UTCDateTime, nullable=False),
    Column("next_at", UTCDateTime, nullable=False),
    Column("owner", String(100)),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
    Column("done_at", UTCDateTime),
)
Index("ix_inbox_due", inbox.c.state, inbox.c.pool, inbox.c.next_at)
Index("ix_inbox_done", inbox.c.done_at)


class SqlInbox(SqlBase):
    """The ``Inbox`` port."""

    def record_event(
        self,
        event_id: str,
        pool: str,
        envelope: dict[str, Any],
        now: datetime,
        *,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> bool:
        """Records a new pending event (claimed by *owner* until *lease_until* when given);
        False when *event_id* was recorded before. Raises when the database cannot take it
        within RECORD_DEADLINE."""
        row = {
            "event_id": event_id,
            "pool": pool,
            "state": "pending",
            "envelope": json.dumps(envelope, separators=(",", ":")),
            "attempts": 0,
            "received": now,
            "next_at": now,
            "owner": owner if lease_until is not None else None,
            "lease_until": lease_until if owner is not None else None,
        }
        return self._recorder().submit(row, RECORD_DEADLINE.total_seconds())

    def _recorder(self) -> GroupCommit[dict[str, Any], bool]:
        with self._counter_lock:
            recorder: GroupCommit[dict[str, Any], bool] | None = getattr(self, "_group", None)
            if recorder is None:
                self._record_insert = self._record_stmt()
                recorder = self._group = GroupCommit(self._record_group)
            return recorder

    def _record_stmt(self) -> Any:
        # INSERT ... ON CONFLICT DO NOTHING RETURNING event_id: one statement for the group
        # (SQLAlchemy sends it as one multi-row INSERT), the new rows' ids back.
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(inbox).on_conflict_do_nothing().returning(inbox.c.event_id)
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(inbox).on_conflict_do_nothing().returning(inbox.c.event_id)

    def _record_group(self, rows: Sequence[dict[str, Any]]) -> list[bool]:
        """Inserts the rows of concurrent deliveries in one transaction; for each, whether it
        was new (a redelivery, or the same id twice in the group, is not)."""
        with self._write_within(RECORD_DEADLINE) as conn:
            inserted = {r[0] for r in conn.execute(self._record_insert, list(rows))}
        results = []
        for row in rows:
            results.append(row["event_id"] in inserted)
            inserted.discard(row["event_id"])  # a second copy in the same group is not new
        return results

    def claim_events(
        self, pool: str, owner: str, now: datetime, until: datetime, limit: int = 10
    ) -> list[InboxEvent]:
        """Takes up to *limit* due, unleased (or lease expired) pending events of *pool*, oldest
        first, for *owner* until *until*."""
        if limit <= 0:
            return []
        if self._bump("_inbox_calls"):
            with self._write() as conn:
                conn.execute(delete(inbox).where(inbox.c.done_at < now - EVENT_KEEP))
        free = or_(inbox.c.lease_until.is_(None), inbox.c.lease_until <= now)
        with self._read() as conn:
            rows = conn.execute(
                select(inbox)
                .where(
                    inbox.c.state == "pending",
                    inbox.c.pool == pool,
                    inbox.c.next_at <= now,
                    free,
                )
                .order_by(inbox.c.next_at, inbox.c.received, inbox.c.event_id)
                .limit(limit)
            ).all()
        taken: list[InboxEvent] = []
        for row in rows:
            # One conditional UPDATE per row: a racing worker changes it first or not at all.
            with self._write() as conn:
                res = conn.execute(
                    sql_update(inbox)
                    .where(inbox.c.event_id == row.event_id, inbox.c.state == "pending", free)
                    .values(owner=owner, lease_until=until)
                )
            if res.rowcount == 1:
                taken.append(_event({**row._asdict(), "owner": owner, "lease_until": until}))
        return taken

    def renew_events(self, event_ids: Sequence[str], owner: str, until: datetime) -> int:
        """Extends *owner*'s leases on *event_ids* to *until*; returns how many it still held."""
        if not event_ids:
            return 0
        with self._write() as conn:
            res = conn.execute(
                sql_update(inbox)
                .where(
                    inbox.c.event_id.in_(list(event_ids)),
                    inbox.c.owner == owner,
                    inbox.c.state == "pending",
                )
                .values(lease_until=until)
            )
        return int(res.rowcount)

    def finish_event(self, event_id: str, owner: str, now: datetime) -> bool:
        """Marks the event done; False unless *owner* holds it."""
        return self._settle(event_id, owner, state="done", done_at=now, last_error=None)

    def retry_event(self, event_id: str, owner: str, at: datetime, error: str) -> bool:
        """Counts a failed attempt; the event is due again at *at*, unleased."""
        with self._write() as conn:
            res = conn.execute(
                sql_update(inbox)
                .where(*_held(event_id, owner))
                .values(
                    attempts=inbox.c.attempts + 1,
                    next_at=at,
                    owner=None,
                    lease_until=None,
                    last_error=clip_error(error),
                )
            )
        return res.rowcount == 1

    def fail_event(self, event_id: str, owner: str, now: datetime, error: str) -> bool:
        """Gives up on the event; it is kept (state "failed") with its error."""
        return self._settle(
            event_id,
            owner,
            state="failed",
            done_at=now,
            last_error=clip_error(error),
            attempts=inbox.c.attempts + 1,
        )

    def release_events(self, owner: str, event_ids: Sequence[str] | None = None) -> int:
        """Drops *owner*'s leases (on *event_ids*, default all) without counting an attempt."""
        stmt = sql_update(inbox).where(inbox.c.owner == owner, inbox.c.state == "pending")
        if event_ids is not None:
            if not event_ids:
                return 0
            stmt = stmt.where(inbox.c.event_id.in_(list(event_ids)))
        with self._write() as conn:
            res = conn.execute(stmt.values(owner=None, lease_until=None))
        return int(res.rowcount)

    def get_event(self, event_id: str) -> InboxEvent | None:
        """One event by id (done and failed ones too, while they are kept)."""
        with self._read() as conn:
            row = conn.execute(select(inbox).where(inbox.c.event_id == event_id)).first()
        return None if row is None else _event(row._asdict())

    def pending_events(self, pool: str | None = None) -> list[InboxEvent]:
        """Every pending event (of *pool*), oldest first."""
        stmt = select(inbox).where(inbox.c.state == "pending")
        if pool is not None:
            stmt = stmt.where(inbox.c.pool == pool)
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(inbox.c.received, inbox.c.event_id)).all()
        return [_event(r._asdict()) for r in rows]

    def ping(self) -> None:
        """Returns when the database answers ``SELECT 1``; raises otherwise."""
        with self._read() as conn:
            conn.exec_driver_sql("SELECT 1").scalar()

    # ------------------------------------------------------------------ plumbing

    def _settle(self, event_id: str, owner: str, **values: Any) -> bool:
        with self._write() as conn:
            res = conn.execute(
                sql_update(inbox)
                .where(*_held(event_id, owner))
                .values(owner=None, lease_until=None, **values)
            )
        return res.rowcount == 1

    @contextmanager
    def _write_within(self, deadline: timedelta) -> Iterator[Connection]:
        """A write transaction that gives up after *deadline* waiting for locks or the server."""
        ms = max(1, int(deadline.total_seconds() * 1000))
        with self._one_writer(deadline.total_seconds(), urgent=True):
            if self.backend == "sqlite":
                # SQLite's busy timeout is per connection: these writes use connections of their
                # own whose timeout is the deadline (no per-write PRAGMA on the ack's path).
                with self._deadline_engine(ms).begin() as conn:
                    yield conn
            else:
                with self._writer.begin() as conn:
                    conn.exec_driver_sql(f"SET LOCAL statement_timeout = {ms}")
                    yield conn

    def _deadline_engine(self, ms: int) -> Engine:
        with self._counter_lock:
            engine: Engine | None = getattr(self, "_sqlite_deadline_engine", None)
            if engine is None:
                url = self.engine.url
                engine = sqlite_engine(
                    url.render_as_string(hide_password=False), url.database, False
                )

                @event.listens_for(engine, "connect")
                def _short_busy_timeout(dbapi_conn: Any, _record: Any) -> None:
                    # After sqlite_engine's own hook, which set the store's long timeout.
                    dbapi_conn.execute(f"PRAGMA busy_timeout = {ms}")

                engine = engine.execution_options(**{WRITE_OPTION: True})
                self._sqlite_deadline_engine = engine
            return engine

    def close(self) -> None:
        """Closes pooled connections (the deadline-bound ones too)."""
        engine: Engine | None = getattr(self, "_sqlite_deadline_engine", None)
        if engine is not None:
            engine.dispose()
        super().close()


def _held(event_id: str, owner: str) -> tuple[Any, ...]:
    return (inbox.c.event_id == event_id, inbox.c.owner == owner, inbox.c.state == "pending")


def _event(row: dict[str, Any]) -> InboxEvent:
    row.pop("done_at", None)
    row["envelope"] = json.loads(row["envelope"])
    return InboxEvent(**row)
