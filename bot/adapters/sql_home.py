"""The ``PostsByAuthor`` port on SQL: one person's posts, for the App Home."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, or_, select

from bot.adapters.sql_base import SqlBase
from bot.adapters.sql_schema import posts
from bot.domain.ports import StoredPost


class SqlHome(SqlBase):
    """The ``PostsByAuthor`` port."""

    def posts_by_user(
        self, user: str, limit: int, kinds: Sequence[str] | None = None
    ) -> tuple[list[StoredPost], int]:
        """*user*'s top-level posts of *kinds*, newest first (at most *limit*), and their count."""
        where = [
            posts.c.user == user,
            posts.c.deleted.is_(False),
            # A top-level post, or a reply also sent to the channel (stored with its thread).
            or_(posts.c.thread_ts.is_(None), posts.c.thread_ts == posts.c.ts),
        ]
        if kinds is not None:
            where.append(posts.c.kind.in_(list(kinds)))
        with self._read() as conn:
            total = conn.execute(select(func.count()).select_from(posts).where(*where)).scalar()
            rows = conn.execute(
                select(posts)
                .where(*where)
                .order_by(posts.c.created.desc(), posts.c.ts.desc())
                .limit(max(0, limit))
            ).all()
        return [StoredPost(**r._asdict()) for r in rows], int(total or 0)
