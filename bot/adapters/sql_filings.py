"""The ``Filings`` and ``Outbox`` ports on SQL: exactly-once filing records and durable work."""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, insert, or_, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from bot.adapters.sql_base import SqlBase, clip_error, utc_now
from bot.adapters.sql_schema import filings, kv, outbox
from bot.domain.ports import Fence, Filing, ItemStep, OutboxItem, RetryAt

DONE_OUTBOX_KEEP = timedelta(days=7)
MARKER_SECRET_KEY = "filing_marker_secret"
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
        ``updated``. Unconditional: for a filing no outbox item is working on."""
        fields = _filing_fields(fields)
        with self._write() as conn:
            _set_filing(conn, channel, ts, fields)

    def update_filing_fenced(
        self, fence: Fence, channel: str, ts: str, *, item: ItemStep = "keep", **fields: Any
    ) -> bool:
        """Sets the filing's *fields* and keeps, finishes or reschedules the fence's outbox item,
        in one transaction, only while the fence's token is the item's latest lease.

        The outbox row is updated first, with the token in its WHERE clause: that write locks
        the row, so a concurrent ``lease`` either went before (and the token no longer matches:
        nothing is written) or waits until this transaction is over.
        """
        fields = _filing_fields(fields)
        now = utc_now()
        values: dict[str, Any]
        if item == "keep":
            values = {"lease_token": outbox.c.lease_token}  # a no-op write, for the row lock
        elif item == "finish":
            values = {"done_at": now, "lease_until": None}
        elif isinstance(item, RetryAt):
            values = _retry_values(item.at, item.error)
        else:
            raise ValueError(f"unknown outbox step {item!r}")
        with self._write() as conn:
            res = conn.execute(
                update(outbox)
                .where(
                    outbox.c.id == fence.item_id,
                    outbox.c.lease_token == fence.token,
                    outbox.c.done_at.is_(None),
                )
                .values(**values)
            )
            if res.rowcount != 1:
                return False
            if fields:
                _set_filing(conn, channel, ts, fields)
        if item == "finish":
            _prune_outbox(self, now)
        return True

    def marker_secret(self) -> str:
        """The install's marker secret: inserted if absent (one insert wins), then read."""
        with self._read() as conn:
            found: str | None = conn.execute(
                select(kv.c.value).where(kv.c.key == MARKER_SECRET_KEY)
            ).scalar()
        if found:
            return found
        try:
            with self._write() as conn:
                conn.execute(insert(kv).values(key=MARKER_SECRET_KEY, value=secrets.token_hex(32)))
        except IntegrityError:
            pass  # another replica created it first: theirs is the one
        with self._read() as conn:
            value: str = conn.execute(
                select(kv.c.value).where(kv.c.key == MARKER_SECRET_KEY)
            ).scalar_one()
        return value

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

    def lease(self, item_id: int, until: datetime, *, now: datetime | None = None) -> int | None:
        """Takes a pending item until *until* unless a lease unexpired at *now* (the caller's
        clock; the wall clock when omitted) holds it. Returns the new fencing token, or None.

        One conditional UPDATE that also bumps the token, so of two concurrent callers exactly
        one sees a changed row, and every lease's token is greater than the ones before it. The
        token is read back in the same transaction, which still holds the row.
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
                .values(lease_until=until, lease_token=outbox.c.lease_token + 1)
            )
            if res.rowcount != 1:
                return None
            token: int = conn.execute(
                select(outbox.c.lease_token).where(outbox.c.id == item_id)
            ).scalar_one()
        return token

    def renew_lease(self, item_id: int, token: int, until: datetime) -> bool:
        """Extends the lease made with *token* to *until*; False when a later lease exists or
        the item is done. A lease that ran out but was not taken over is still the holder's:
        nobody else started (that would have bumped the token), and once this write commits a
        concurrent ``lease`` sees the new *until*."""
        with self._write() as conn:
            res = conn.execute(
                update(outbox)
                .where(
                    outbox.c.id == item_id,
                    outbox.c.done_at.is_(None),
                    outbox.c.lease_token == token,
                )
                .values(lease_until=until)
            )
        return res.rowcount == 1

    def finish(self, item_id: int, token: int | None = None) -> bool:
        """Marks the item done (kept a few days for inspection); its key may be enqueued again.

        With *token*, only while that lease is the item's latest. False when nothing changed.
        """
        now = utc_now()
        with self._write() as conn:
            res = conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id, outbox.c.done_at.is_(None), *_fenced(token))
                .values(done_at=now, lease_until=None)
            )
        _prune_outbox(self, now)
        return res.rowcount == 1

    def retry_later(self, item_id: int, at: datetime, error: str, token: int | None = None) -> bool:
        """Counts a failed attempt, records the error and makes the item due again at *at*.

        With *token*, only while that lease is the item's latest. False when nothing changed.
        """
        with self._write() as conn:
            res = conn.execute(
                update(outbox)
                .where(outbox.c.id == item_id, outbox.c.done_at.is_(None), *_fenced(token))
                .values(**_retry_values(at, error))
            )
        return res.rowcount == 1

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


def _filing_fields(fields: dict[str, Any]) -> dict[str, Any]:
    bad = set(fields) - _FILING_FIELDS
    if bad:
        raise ValueError(f"unknown filing fields: {sorted(bad)}")
    if "state" in fields and fields["state"] not in FILING_STATES:
        raise ValueError(f"unknown filing state {fields['state']!r}")
    if "error" in fields:
        fields = {**fields, "error": clip_error(fields["error"])}
    return fields


def _set_filing(conn: Connection, channel: str, ts: str, fields: dict[str, Any]) -> None:
    conn.execute(
        update(filings)
        .where(filings.c.channel == channel, filings.c.ts == ts)
        .values(**fields, updated=utc_now())
    )


def _prune_outbox(store: SqlBase, now: datetime) -> None:
    """Drops items finished DONE_OUTBOX_KEEP ago, now and then (see ``SqlBase._bump``)."""
    if store._bump("_finish_calls"):
        with store._write() as conn:
            conn.execute(delete(outbox).where(outbox.c.done_at < now - DONE_OUTBOX_KEEP))


def _fenced(token: int | None) -> list[Any]:
    return [] if token is None else [outbox.c.lease_token == token]


def _retry_values(at: datetime, error: str) -> dict[str, Any]:
    return {
        "attempts": outbox.c.attempts + 1,
        "next_at": at,
        "lease_until": None,
        "last_error": clip_error(error),
    }


def _item(row: dict[str, Any]) -> OutboxItem:
    return OutboxItem(
        id=row["id"],
        topic=row["topic"],
        key=row["key"],
        payload=json.loads(row["payload"]),
        attempts=row["attempts"],
        next_at=row["next_at"],
        last_error=row["last_error"],
        created=row["created"],
    )
