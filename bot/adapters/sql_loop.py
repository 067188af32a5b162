"""The ``Votes`` and ``IssueWatch`` ports on SQL: the most voted open posts, and the state of each
filed issue last announced in Slack, under a fenced claim."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, update

from bot.adapters.sql_base import SqlBase
from bot.adapters.sql_schema import filings, issue_states, posts
from bot.domain.issue_changes import FiledPost, FinishOutcome, IssueClaim, IssueState
from bot.domain.ports import StoredPost


class SqlVotes(SqlBase):
    """The ``Votes`` port."""

    def top_voted(
        self,
        since: datetime,
        limit: int = 10,
        *,
        until: datetime | None = None,
        channels: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
    ) -> list[StoredPost]:
        """Open posts created since *since* with votes, most first (see ``Votes.top_voted``)."""
        filed = filings.alias("f")
        state = issue_states.alias("s")
        stmt = (
            select(posts)
            .select_from(
                posts.outerjoin(
                    filed,
                    and_(
                        filed.c.channel == posts.c.channel,
                        filed.c.ts == posts.c.ts,
                        filed.c.state == "filed",
                    ),
                ).outerjoin(state, state.c.key == filed.c.issue_key)
            )
            .where(
                posts.c.created >= since,
                posts.c.deleted.is_(False),
                posts.c.votes > 0,
                or_(state.c.resolution.is_(None), state.c.resolution == ""),
            )
        )
        if until is not None:
            stmt = stmt.where(posts.c.created < until)
        if channels is not None:
            stmt = stmt.where(posts.c.channel.in_(list(channels)))
        if kinds is not None:
            stmt = stmt.where(posts.c.kind.in_(list(kinds)))
        stmt = stmt.order_by(posts.c.votes.desc(), posts.c.created, posts.c.ts).limit(limit)
        with self._read() as conn:
            rows = conn.execute(stmt).all()
        return [StoredPost(**r._asdict()) for r in rows]


class SqlIssueWatch(SqlBase):
    """The ``IssueWatch`` port."""

    def filed_posts(self, keys: Sequence[str]) -> dict[str, FiledPost]:
        """Of *keys*, the issues filed from a post, by key."""
        wanted = sorted({k for k in keys if k})
        out: dict[str, FiledPost] = {}
        with self._read() as conn:
            for i in range(0, len(wanted), 500):  # bounded IN lists
                rows = conn.execute(
                    select(filings.c.issue_key, filings.c.channel, filings.c.ts, filings.c.updated)
                    .where(filings.c.issue_key.in_(wanted[i : i + 500]), filings.c.state == "filed")
                    .order_by(filings.c.updated)
                ).all()
                for key, channel, ts, updated in rows:
                    out.setdefault(key, FiledPost(key, channel, ts, updated))
        return out

    def claim_issue(self, key: str, until: datetime, now: datetime) -> IssueClaim | None:
        """Takes the fenced claim on *key*, or marks it changed for the holder (None)."""
        with self._write() as conn:
            conn.execute(self._insert_ignore(issue_states, {"key": key, "claim_token": 0}))
            free = or_(issue_states.c.claim_until.is_(None), issue_states.c.claim_until <= now)
            took = conn.execute(
                update(issue_states)
                .where(issue_states.c.key == key, free)
                .values(
                    claim_until=until,
                    claim_token=issue_states.c.claim_token + 1,
                    dirty=False,
                )
            ).rowcount
            if not took:
                conn.execute(
                    update(issue_states).where(issue_states.c.key == key).values(dirty=True)
                )
                return None
            row = conn.execute(select(issue_states).where(issue_states.c.key == key)).one()
        return IssueClaim(key, int(row.claim_token), _state(row))

    def finish_issue(
        self, key: str, token: int, announced: IssueState | None, now: datetime
    ) -> FinishOutcome:
        """Records *announced* and releases the claim while *token* is the latest."""
        values: dict[str, Any] = {"claim_until": None, "dirty": False}
        if announced is not None:
            values.update(
                seen=True,
                status=announced.status,
                status_category=announced.status_category,
                assignee=announced.assignee,
                resolution=announced.resolution,
                announced_at=now,
            )
        where = (issue_states.c.key == key, issue_states.c.claim_token == token)
        with self._write() as conn:
            row = conn.execute(select(issue_states.c.dirty).where(*where).with_for_update()).first()
            if row is None:
                return "lost"
            conn.execute(update(issue_states).where(*where).values(**values))
        return "again" if row.dirty else "done"

    def announced_state(self, key: str) -> IssueState | None:
        """The state last announced for *key*, or None."""
        with self._read() as conn:
            row = conn.execute(select(issue_states).where(issue_states.c.key == key)).first()
        return None if row is None else _state(row)


def _state(row: Any) -> IssueState | None:
    if not row.seen:
        return None
    return IssueState(
        key=row.key,
        status=row.status,
        status_category=row.status_category,
        assignee=row.assignee,
        resolution=row.resolution,
    )
