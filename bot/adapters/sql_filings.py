"""The ``Filings`` and ``Outbox`` ports on SQL: exactly-once filing records and durable work."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.adapters.sql_base import SqlBase, clip_error, utc_now
from bot.adapters.sql_schema import filings, outbox
from bot.domain.ports import Filing, OutboxItem

DONE_OUTBOX_KEEP = timedelta(days=7)
_FILING_FIELDS = frozenset({"state", "owner", "issue_key", "issue_url", "error", "attempts"})
FILING_STATES = frozenset({"claimed", "queued", "filed", "failed", "commented"})


class SqlFilings(SqlBase):
    """The ``Filings`` port: the claim is a unique insert on (channel, ts)."""

    def claim_filing(self, channel: str, ts: str, owner: str) -> bool:
        """Creates the filing record in state "claimed"; False if the message is already claimed."""
        now = utc_now()
        try:
            with self._write() as conn:
                conn.execute(
                    insert(filings).values(
                        channel=channel,
                        ts=ts,
                        state="claimed",
                        owner=owner,
                        attempts=0,
                        created=now,
                        updated=now,
                    )
                )
        except IntegrityError:
            return False
        return True

    def get_filing(self, channel: str, ts: str) -> Filing | None:
        """The filing record for one message, or None."""
        with self._read() as conn:
            row = conn.execute(
                select(filings).where(filings.c.channel == channel, filings.c.ts == ts)
            ).first()
        return None if row is None else _filing(row._asdict())

    def update_filing(self, channel: str, ts: str, **fields: Any) -> None:
        """Sets the given columns (state, issue_key, issue_url, error, attempts, owner); bumps
        ``updated``."""
        bad = set(fields) - _FILING_FIELDS
        if bad:
            raise ValueError(f"unknown filing fields: {sorted(bad)}")
        if "state" in fields and fields["state"] not in FILING_STATES:
            raise ValueError(f"unknown filing state {fields['state']!r}")
        if "error" in fields:
            fields["error"] = clip_error(fields["error"])
        with self._write() as conn:
            conn.execute(
                update(filings)
                .where(filings.c.channel == channel, filings.c.ts == ts)
                .values(**fields, updated=utc_now())
            )

    def filings_between(self, start: datetime, end: datetime) -> list[Filing]:
        """Filings last updated in [start, end), oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                select(filings)
                .where(filings.c.updated >= start, filings.c.updated < end)
                .order_by(filings.c.updated)
            ).all()
        return [_filing(r._asdict()) for r in rows]


class SqlOutbox(SqlBase):
    """The ``Outbox`` port: a partial unique index keeps (topic, key) unique among pending items."""

    def enqueue(self, topic: str, key: str, payload: dict[str, Any], at: datetime) -> int | None:
        """Adds an item due at *at* and returns its id; None if (topic, key) is already pending."""
        body = json.dumps(payload, separators=(",", ":"))
        try:
            with self._write() as conn:
                res = conn.execute(
                    insert(outbox).values(
                        topic=topic,
                        key=key,
                        payload=body,
                        attempts=0,
                        next_at=at,
                        created=utc_now(),
                    )
                )
        except IntegrityError:
            return None
        pk = res.inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def get_item(self, item_id: int) -> OutboxItem | None:
        """One outbox item by id (finished ones too, while they are kept)."""
        with self._read() as conn:
            row = conn.execute(select(outbox).where(outbox.c.id == item_id)).first()
        return _item(row._asdict()) if row is not None else None

    def due(self, now: datetime, limit: int = 10) -> list[OutboxItem]:
        """Pending, unleased (or lease expired) items with next_at <= now, earliest first."""
        stmt = (
            select(outbox)
            .where(
                outbox.c.done_at.is_(None),
                outbox.c.next_at <= now,
                or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= now),
            )
            .order_by(outbox.c.next_at, outbox.c.id)
            .limit(limit)
        )
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [_item(r._asdict()) for r in rows]

    def lease(self, item_id: int, until: datetime, *, now: datetime | None = None) -> bool:
        """Takes a pending item until *until*; False if another worker holds an unexpired lease.

        One conditional UPDATE, so of two concurrent callers exactly one sees a changed row.
        """
        now = now or utc_now()
        with self._write() as conn:
            res = conn.execute(
                update(outbox)
                .where(
                    outbox.c.id == item_id,
                    outbox.c.done_at.is_(None),
                    or_(outbox.c.lease_until.is_(None), outbox.c.lease_until <= now),
                )
                .values(lease_until=until)
            )
        return res.rowcount == 1

    def finish(self, item_id: int) -> None:
        """Marks the item done (kept a few days for inspection); its key may be enqueued again."""
        now = utc_now()
        with self._write() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id, outbox.c.done_at.is_(None))
                .values(done_at=now, lease_until=None)
            )
        if self._bump("_finish_calls"):
            with self._write() as conn:
                conn.execute(delete(outbox).where(outbox.c.done_at < now - DONE_OUTBOX_KEEP))

    def retry_later(self, item_id: int, at: datetime, error: str) -> None:
        """Counts a failed attempt, records the error and makes the item due again at *at*."""
        with self._write() as conn:
            conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id, outbox.c.done_at.is_(None))
                .values(
                    attempts=outbox.c.attempts + 1,
                    next_at=at,
                    lease_until=None,
                    last_error=clip_error(error),
                )
            )

    def pending(self) -> list[OutboxItem]:
        """Every item not finished yet, earliest due first."""
        with self._read() as conn:
            rows = conn.execute(
                select(outbox)
                .where(outbox.c.done_at.is_(None))
                .order_by(outbox.c.next_at, outbox.c.id)
            ).all()
        return [_item(r._asdict()) for r in rows]


def _filing(row: dict[str, Any]) -> Filing:
    row.pop("created", None)
    return Filing(**row)


def _item(row: dict[str, Any]) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        topic=row["topic"],
        key=row["key"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        next_at=row["next_at"],
        last_error=row["last_error"],
    )
