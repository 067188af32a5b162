"""The ``Posts`` port on SQL: the Slack messages the bot saw."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update

from bot.adapters.sql_base import SqlBase
from bot.adapters.sql_schema import posts
from bot.domain.ports import StoredPost

_POST_FIELDS = frozenset(c.name for c in posts.c) - {"channel", "ts"}
# Enrichment added after the message was first seen: a re-save without it must not erase it.
_POST_KEEP_IF_NONE = (
    "thread_ts",
    "permalink",
    "kind",
    "title",
    "summary",
    "triage_json",
    "reply_ts",
)


class SqlPosts(SqlBase):
    """The ``Posts`` port."""

    def save_post(self, post: StoredPost) -> None:
        """Inserts or replaces the post; enrichment already stored survives a re-save with None.

        Reaction/reply counts are only overwritten by a non-zero value (0 is the default of a
        freshly built post, not a measurement); use ``update_post`` to set them exactly.
        """
        values = {
            "channel": post.channel,
            "ts": post.ts,
            "user": post.user,
            "text": post.text,
            "created": post.created,
            "thread_ts": post.thread_ts,
            "permalink": post.permalink,
            "kind": post.kind,
            "title": post.title,
            "summary": post.summary,
            "triage_json": post.triage_json,
            "reply_ts": post.reply_ts,
            "reactions": post.reactions,
            "replies": post.replies,
            "is_private": post.is_private,
        }

        def merge(ex: Any) -> dict[str, Any]:
            out: dict[str, Any] = {
                "user": ex.user,
                "text": ex.text,
                "created": ex.created,
                "is_private": ex.is_private,
            }
            for name in _POST_KEEP_IF_NONE:
                out[name] = func.coalesce(getattr(ex, name), posts.c[name])
            for name in ("reactions", "replies"):
                out[name] = case((getattr(ex, name) == 0, posts.c[name]), else_=getattr(ex, name))
            return out

        with self._write() as conn:
            conn.execute(self._upsert(posts, values, ["channel", "ts"], merge))

    def get_post(self, channel: str, ts: str) -> StoredPost | None:
        """The stored post, or None."""
        with self._read() as conn:
            row = conn.execute(
                select(posts).where(posts.c.channel == channel, posts.c.ts == ts)
            ).first()
        return None if row is None else StoredPost(**row._asdict())

    def update_post(self, channel: str, ts: str, **fields: Any) -> None:
        """Sets the given columns (kind, title, summary, triage_json, reply_ts, reactions, ...)."""
        bad = set(fields) - _POST_FIELDS
        if bad:
            raise ValueError(f"unknown post fields: {sorted(bad)}")
        if not fields:
            return
        with self._write() as conn:
            conn.execute(
                update(posts).where(posts.c.channel == channel, posts.c.ts == ts).values(**fields)
            )

    def posts_between(
        self, start: datetime, end: datetime, channels: Iterable[str] | None = None
    ) -> list[StoredPost]:
        """Posts with start <= created < end, oldest first, optionally only in *channels*."""
        stmt = select(posts).where(posts.c.created >= start, posts.c.created < end)
        if channels is not None:
            stmt = stmt.where(posts.c.channel.in_(list(channels)))
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(posts.c.created, posts.c.ts)).all()
        return [StoredPost(**r._asdict()) for r in rows]
