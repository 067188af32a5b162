"""The ``DigestLedger`` port on SQL: one row per (digest, channel, day), claimed by insert."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from bot.adapters.sql_base import SqlBase, utc_now
from bot.adapters.sql_schema import digests
from bot.domain.ports import DigestRecord

# A digest claim older than this that never posted is treated as abandoned by a crashed run,
# so `--force` may take it over.
STALE_DIGEST_CLAIM = timedelta(minutes=15)


class SqlDigests(SqlBase):
    """The ``DigestLedger`` port."""

    def claim_digest(
        self,
        digest: str,
        channel: str,
        day: date,
        force: bool = False,
        *,
        stale_after: timedelta | None = None,
        token: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Claims one digest for one channel and day; False if it is claimed or posted already.

        With *force*, a posted digest (or a claim abandoned for STALE_DIGEST_CLAIM) is taken over;
        a fresh claim by a running worker is never stolen. With *stale_after*, an unposted claim
        older than that is taken over (and nothing else): the caller must first have made sure
        the abandoned run did not post. One conditional UPDATE, so only one taker wins. *token*
        is recorded as the claim's own (a takeover replaces it): see ``renew_digest_claim``;
        so is *extra* (the claim's event envelope) when given.
        """
        now = utc_now()
        key = _digest_key(digest, channel, day)
        body = None if extra is None else json.dumps(extra, separators=(",", ":"))
        anew: dict[str, Any] = {} if body is None else {"extra": body}
        try:
            with self._write() as conn:
                conn.execute(
                    insert(digests).values(
                        digest=digest,
                        channel=channel,
                        day=day,
                        state="claimed",
                        extra=body or "{}",
                        claimed_at=now,
                        claim_token=token,
                    )
                )
            return True
        except IntegrityError:
            if stale_after is not None and not force:
                return self._take_over_digest(key, now, stale_after, token, anew)
            if not force:
                return False
        with self._write() as conn:
            res = conn.execute(
                update(digests)
                .where(
                    key,
                    or_(
                        digests.c.state == "posted",
                        and_(
                            digests.c.state == "claimed",
                            digests.c.claimed_at < now - STALE_DIGEST_CLAIM,
                        ),
                    ),
                )
                .values(
                    state="claimed",
                    claimed_at=now,
                    message_ts=None,
                    posted_at=None,
                    claim_token=token,
                    **anew,
                )
            )
        return res.rowcount == 1

    def _take_over_digest(
        self,
        key: Any,
        now: datetime,
        stale_after: timedelta,
        token: str | None,
        anew: dict[str, Any],
    ) -> bool:
        with self._write() as conn:
            res = conn.execute(
                update(digests)
                .where(
                    key,
                    digests.c.state == "claimed",
                    digests.c.message_ts.is_(None),
                    digests.c.claimed_at < now - stale_after,
                )
                .values(claimed_at=now, claim_token=token, **anew)
            )
        return res.rowcount == 1

    def renew_digest_claim(self, digest: str, channel: str, day: date, token: str) -> bool:
        """True while the unposted claim is still the one made with *token*, which then counts
        as made now (one conditional UPDATE: a racing takeover either wins or waits)."""
        with self._write() as conn:
            res = conn.execute(
                update(digests)
                .where(_digest_key(digest, channel, day), *_held(token))
                .values(claimed_at=utc_now())
            )
        return res.rowcount == 1

    def get_digest(self, digest: str, channel: str, day: date) -> DigestRecord | None:
        """The digest record, or None."""
        with self._read() as conn:
            row = conn.execute(select(digests).where(_digest_key(digest, channel, day))).first()
        if row is None:
            return None
        return DigestRecord(
            digest=row.digest,
            channel=row.channel,
            day=row.day,
            state=row.state,
            message_ts=row.message_ts,
            extra=json.loads(row.extra or "{}"),
        )

    def mark_digest_posted(
        self,
        digest: str,
        channel: str,
        day: date,
        message_ts: str,
        *,
        extra: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> bool:
        """Records that the digest was posted as *message_ts* (with optional *extra* details).

        With *token*, only while the unposted claim made with it holds (False otherwise); without,
        a post made with no claim at all (a manual run) is recorded too.
        """
        now = utc_now()
        values: dict[str, Any] = {"state": "posted", "message_ts": message_ts, "posted_at": now}
        if extra is not None:
            values["extra"] = json.dumps(extra, separators=(",", ":"))
        key = _digest_key(digest, channel, day)
        with self._write() as conn:
            if token is not None:
                res = conn.execute(update(digests).where(key, *_held(token)).values(**values))
                return res.rowcount == 1
            res = conn.execute(update(digests).where(key).values(**values))
            if res.rowcount == 0:
                # Posted without a claim (manual run): record it so a later claim sees it.
                values.setdefault("extra", "{}")
                conn.execute(
                    insert(digests).values(
                        digest=digest, channel=channel, day=day, claimed_at=now, **values
                    )
                )
        return True

    def release_digest(
        self, digest: str, channel: str, day: date, *, token: str | None = None
    ) -> None:
        """Drops a claim that never posted (with *token*: only the claim made with it), so the
        digest can be tried again."""
        fenced = [] if token is None else [digests.c.claim_token == token]
        with self._write() as conn:
            conn.execute(
                delete(digests).where(
                    _digest_key(digest, channel, day), digests.c.state == "claimed", *fenced
                )
            )


def _digest_key(digest: str, channel: str, day: date) -> Any:
    return and_(digests.c.digest == digest, digests.c.channel == channel, digests.c.day == day)


def _held(token: str) -> list[Any]:
    return [
        digests.c.state == "claimed",
        digests.c.message_ts.is_(None),
        digests.c.claim_token == token,
    ]
