"""The ``Posts`` and ``Engagement`` ports on SQL: the Slack messages the bot saw, and who reacted
and replied to them. (Which events were handled is the inbox's, ``sql_inbox``.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import case, delete, func, select, update
from sqlalchemy.engine import Connection

from bot.adapters.sql_base import SqlBase
from bot.adapters.sql_schema import post_people, posts
from bot.domain.ports import EngagementChange, EngagementKind, StoredPost

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
            "votes": post.votes,
            "is_private": post.is_private,
        }

        values["deleted"] = post.deleted

        def merge(ex: Any) -> dict[str, Any]:
            out: dict[str, Any] = {
                "user": ex.user,
                # A deleted post stays deleted and wordless (a late redelivery must not restore it).
                "text": case((posts.c.deleted, ""), else_=ex.text),
                "created": ex.created,
                "is_private": ex.is_private,
                "deleted": posts.c.deleted | ex.deleted,
            }
            for name in _POST_KEEP_IF_NONE:
                kept = func.coalesce(getattr(ex, name), posts.c[name])
                out[name] = case((posts.c.deleted, posts.c[name]), else_=kept)
            for name in ("reactions", "replies", "votes"):
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
        """Sets the given columns (kind, title, summary, triage_json, reply_ts, reactions, ...).

        A deleted post is left as it is: a triage that finishes after the deletion must not
        write the words back.
        """
        bad = set(fields) - _POST_FIELDS
        if bad:
            raise ValueError(f"unknown post fields: {sorted(bad)}")
        if not fields:
            return
        with self._write() as conn:
            conn.execute(
                update(posts)
                .where(posts.c.channel == channel, posts.c.ts == ts, posts.c.deleted.is_(False))
                .values(**fields)
            )

    def posts_between(
        self, start: datetime, end: datetime, channels: Iterable[str] | None = None
    ) -> list[StoredPost]:
        """Posts with start <= created < end, oldest first, optionally only in *channels*;
        deleted posts are left out."""
        stmt = select(posts).where(
            posts.c.created >= start, posts.c.created < end, posts.c.deleted.is_(False)
        )
        if channels is not None:
            stmt = stmt.where(posts.c.channel.in_(list(channels)))
        with self._read() as conn:
            rows = conn.execute(stmt.order_by(posts.c.created, posts.c.ts)).all()
        return [StoredPost(**r._asdict()) for r in rows]

    def delete_post(
        self, channel: str, ts: str, created: datetime, user: str = ""
    ) -> StoredPost | None:
        """Marks the post deleted, purging text, triage and engagement; returns it as it was.

        A post never stored gets a deleted row (*created*, *user*), so a message event that
        arrives after its deletion (a retry) is not triaged.
        """
        where = (posts.c.channel == channel, posts.c.ts == ts)
        with self._write() as conn:
            row = conn.execute(select(posts).where(*where).with_for_update()).first()
            if row is None:
                conn.execute(
                    self._insert_ignore(
                        posts,
                        {
                            "channel": channel,
                            "ts": ts,
                            "user": user,
                            "text": "",
                            "created": created,
                            "deleted": True,
                        },
                    )
                )
                return None
            conn.execute(
                update(posts)
                .where(*where)
                .values(
                    text="",
                    kind=None,
                    title=None,
                    summary=None,
                    triage_json=None,
                    reactions=0,
                    replies=0,
                    votes=0,
                    deleted=True,
                )
            )
            conn.execute(
                delete(post_people).where(post_people.c.channel == channel, post_people.c.ts == ts)
            )
        return StoredPost(**row._asdict())

    # ------------------------------------------------------------------ engagement

    def add_engagement(
        self,
        channel: str,
        ts: str,
        kind: EngagementKind,
        user: str,
        detail: str,
        vote: bool = False,
    ) -> EngagementChange | None:
        """Records one reaction or reply by *user* (a vote when *vote*); the post's counts are
        derived again."""
        return self._engage(channel, ts, kind, user, detail, add=True, vote=vote)

    def remove_engagement(
        self, channel: str, ts: str, kind: EngagementKind, user: str, detail: str
    ) -> EngagementChange | None:
        """Forgets one reaction or reply by *user*; the post's counts are derived again."""
        return self._engage(channel, ts, kind, user, detail, add=False)

    def _engage(
        self,
        channel: str,
        ts: str,
        kind: EngagementKind,
        user: str,
        detail: str,
        *,
        add: bool,
        vote: bool = False,
    ) -> EngagementChange | None:
        key = {"channel": channel, "ts": ts, "kind": kind, "user": user, "detail": detail}
        with self._write() as conn:
            # The post's row lock (PostgreSQL; SQLite's write transactions are serial anyway)
            # orders concurrent changes, so each count below sees every earlier change.
            row = conn.execute(
                select(posts).where(posts.c.channel == channel, posts.c.ts == ts).with_for_update()
            ).first()
            if row is None or row.deleted:
                return None
            before = StoredPost(**row._asdict())
            if add:
                # A record made before votes existed (vote false) becomes one when told again.
                conn.execute(
                    self._upsert(
                        post_people,
                        {**key, "vote": vote},
                        list(key),
                        lambda ex: {"vote": post_people.c.vote | ex.vote},
                    )
                )
            else:
                conn.execute(
                    delete(post_people).where(*(post_people.c[k] == v for k, v in key.items()))
                )
            reactions, replies, votes = _people_counts(conn, channel, ts)
            conn.execute(
                update(posts)
                .where(posts.c.channel == channel, posts.c.ts == ts)
                .values(reactions=reactions, replies=replies, votes=votes)
            )
        return EngagementChange(
            before=before,
            after=dataclasses.replace(before, reactions=reactions, replies=replies, votes=votes),
        )


def _people_counts(conn: Connection, channel: str, ts: str) -> tuple[int, int, int]:
    """(people who reacted, people who replied, people who voted) on one post: each person
    once."""
    where = (post_people.c.channel == channel, post_people.c.ts == ts)
    rows = conn.execute(
        select(post_people.c.kind, func.count(func.distinct(post_people.c.user)))
        .where(*where)
        .group_by(post_people.c.kind)
    ).all()
    counts = {k: int(n) for k, n in rows}
    votes = conn.execute(
        select(func.count(func.distinct(post_people.c.user))).where(
            *where, post_people.c.vote.is_(True)
        )
    ).scalar()
    return counts.get("reaction", 0), counts.get("reply", 0), int(votes or 0)
