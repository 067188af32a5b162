"""The durable state store (the ``Store`` port) on SQLAlchemy 2: SQLite by default, PostgreSQL too.

Every exactly-once decision is an INSERT on a unique key (filings, digests, Slack event ids,
pending outbox items): the database, not the process, decides who does the work, so several
threads and several bot processes can race safely.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so
that a transaction that reads before it writes waits for the lock instead of failing with
``SQLITE_BUSY``. PostgreSQL is reached through psycopg 3 (``postgresql+psycopg://``).

Datetimes are stored as UTC and always returned timezone-aware (UTC) on both backends; naive
datetimes are refused, because guessing their zone is how digests end up a day off.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Dialect,
    Engine,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    case,
    create_engine,
    delete,
    event,
    func,
    insert,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.types import TypeDecorator

from bot.domain.ports import DigestRecord, Filing, OutboxItem, StoredPost

if TYPE_CHECKING:
    from bot.config import Settings

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1
ERROR_MAX = 2000
EVENT_KEEP = timedelta(days=3)
DONE_OUTBOX_KEEP = timedelta(days=7)
# A digest claim older than this that never posted is treated as abandoned by a crashed run,
# so `--force` may take it over.
STALE_DIGEST_CLAIM = timedelta(minutes=15)
SQLITE_BUSY_TIMEOUT_MS = 30_000
_PRUNE_EVERY = 200
_PG_DDL_LOCK = 0x1DEAB07  # pg_advisory_xact_lock key: serialises create_all across processes


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite keeps naive UTC text (its fixed-width format sorts correctly); PostgreSQL keeps
    ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


metadata = MetaData()

kv = Table(
    "kv",
    metadata,
    Column("key", String(200), primary_key=True),
    Column("value", Text, nullable=False),
)

posts = Table(
    "posts",
    metadata,
    Column("channel", String(40), primary_key=True),
    Column("ts", String(40), primary_key=True),
    Column("user", String(40), nullable=False),
    Column("text", Text, nullable=False),
    Column("created", UTCDateTime, nullable=False, index=True),
    Column("thread_ts", String(40)),
    Column("permalink", Text),
    Column("kind", String(20)),
    Column("title", Text),
    Column("summary", Text),
    Column("triage_json", Text),
    Column("reply_ts", String(40)),
    Column("reactions", Integer, nullable=False, default=0),
    Column("replies", Integer, nullable=False, default=0),
    Column("is_private", Boolean, nullable=False, default=False),
)

slack_events = Table(
    "slack_events",
    metadata,
    Column("event_id", String(100), primary_key=True),
    Column("seen", UTCDateTime, nullable=False, index=True),
)

filings = Table(
    "filings",
    metadata,
    Column("channel", String(40), primary_key=True),
    Column("ts", String(40), primary_key=True),
    Column("state", String(20), nullable=False),
    Column("owner", String(100), nullable=False),
    Column("issue_key", String(40)),
    Column("issue_url", Text),
    Column("error", Text),
    Column("attempts", Integer, nullable=False, default=0),
    Column("created", UTCDateTime, nullable=False),
    Column("updated", UTCDateTime, nullable=False, index=True),
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("topic", String(100), nullable=False),
    Column("key", String(200), nullable=False),
    Column("payload", Text, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_at", UTCDateTime, nullable=False),
    Column("lease_until", UTCDateTime),
    Column("last_error", Text),
    Column("created", UTCDateTime, nullable=False),
    Column("done_at", UTCDateTime),
)
# Unique among *pending* items only, so a finished key can be enqueued again.
Index(
    "ux_outbox_pending",
    outbox.c.topic,
    outbox.c.key,
    unique=True,
    sqlite_where=outbox.c.done_at.is_(None),
    postgresql_where=outbox.c.done_at.is_(None),
)
Index("ix_outbox_due", outbox.c.done_at, outbox.c.next_at)

digests = Table(
    "digests",
    metadata,
    Column("digest", String(60), primary_key=True),
    Column("channel", String(40), primary_key=True),
    Column("day", Date, primary_key=True),
    Column("state", String(20), nullable=False),
    Column("message_ts", String(40)),
    Column("extra", Text, nullable=False, default="{}"),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("posted_at", UTCDateTime),
)

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
_FILING_FIELDS = frozenset({"state", "owner", "issue_key", "issue_url", "error", "attempts"})
FILING_STATES = frozenset({"claimed", "queued", "filed", "failed", "commented"})


def _now() -> datetime:
    return datetime.now(UTC)


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:ERROR_MAX]


class SqlStore:
    """The ``Store`` port on SQLAlchemy (SQLite file or PostgreSQL). Thread-safe."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        """Connects to *url* and creates missing tables.

        ``sqlite:///path/to/file`` (parent directory is created) or
        ``postgresql+psycopg://user@host/db``.
        """
        url = normalise_url(url)
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        if self.backend == "sqlite":
            self.engine = self._sqlite_engine(url, parsed.database, echo)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, echo=echo)
        # Same pool and events, plus an option the SQLite begin hook turns into BEGIN IMMEDIATE.
        self._writer = self.engine.execution_options(ideabot_write=True)
        self._counter_lock = threading.Lock()
        self._event_calls = 0
        self._finish_calls = 0
        self._create_schema()
        logger.info("store ready (%s)", self.backend)

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlStore:
        """Builds the store from ``DATABASE_URL``, else a SQLite file under ``BOT_DATA_DIR``."""
        if not settings.database_url:
            settings.bot_data_dir.mkdir(parents=True, exist_ok=True)
        return cls(settings.sqlalchemy_url)

    def close(self) -> None:
        """Closes pooled connections."""
        self.engine.dispose()

    # ------------------------------------------------------------------ plumbing

    @staticmethod
    def _sqlite_engine(url: str, database: str | None, echo: bool) -> Engine:
        if not database or database == ":memory:" or database.startswith("file:"):
            raise ValueError("SqlStore needs a SQLite file path (several connections share it)")
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_conn: Any, _record: Any) -> None:
            # Let SQLAlchemy emit BEGIN itself (the sqlite3 module's implicit BEGIN is deferred and
            # skipped for SELECT, which breaks read-then-write transactions under concurrency).
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
            cur.execute("PRAGMA journal_mode = WAL")
            cur.execute("PRAGMA synchronous = NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            if conn.get_execution_options().get("ideabot_write"):
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            else:
                conn.exec_driver_sql("BEGIN")

        return engine

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def _create_schema(self) -> None:
        with self._write() as conn:
            if self.backend == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_DDL_LOCK})
            metadata.create_all(conn)
            found = conn.execute(select(kv.c.value).where(kv.c.key == "schema_version")).scalar()
            if found is None:
                conn.execute(insert(kv).values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(found) > SCHEMA_VERSION:
                raise RuntimeError(
                    f"database schema version {found} is newer than this bot ({SCHEMA_VERSION})"
                )

    def _upsert(self, table: Table, values: dict[str, Any], keys: list[str], set_: Any) -> Any:
        """INSERT ... ON CONFLICT (keys) DO UPDATE; *set_* maps the excluded row to new values."""
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg_stmt = pg_insert(table).values(**values)
            return pg_stmt.on_conflict_do_update(index_elements=keys, set_=set_(pg_stmt.excluded))
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).values(**values)
        return stmt.on_conflict_do_update(index_elements=keys, set_=set_(stmt.excluded))

    def _bump(self, name: str) -> bool:
        """True on the first call and every _PRUNE_EVERY-th one after (opportunistic pruning)."""
        with self._counter_lock:
            n = getattr(self, name)
            setattr(self, name, n + 1)
        return n % _PRUNE_EVERY == 0

    # ------------------------------------------------------------------ posts

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

    # ------------------------------------------------------------------ slack events

    def first_delivery(self, event_id: str) -> bool:
        """True the first time *event_id* is seen, False on every redelivery."""
        now = _now()
        if self._bump("_event_calls"):
            with self._write() as conn:
                conn.execute(delete(slack_events).where(slack_events.c.seen < now - EVENT_KEEP))
        try:
            with self._write() as conn:
                conn.execute(insert(slack_events).values(event_id=event_id, seen=now))
        except IntegrityError:
            return False
        return True

    # ------------------------------------------------------------------ filings

    def claim_filing(self, channel: str, ts: str, owner: str) -> bool:
        """Creates the filing record in state "claimed"; False if the message is already claimed."""
        now = _now()
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
            fields["error"] = _clip(fields["error"])
        with self._write() as conn:
            conn.execute(
                update(filings)
                .where(filings.c.channel == channel, filings.c.ts == ts)
                .values(**fields, updated=_now())
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

    # ------------------------------------------------------------------ outbox

    def enqueue(self, topic: str, key: str, payload: dict[str, Any], at: datetime) -> int | None:
        """Adds an item due at *at* and returns its id; None if (topic, key) is already pending."""
        body = json.dumps(payload, separators=(",", ":"))
        try:
            with self._write() as conn:
                res = conn.execute(
                    insert(outbox).values(
                        topic=topic, key=key, payload=body, attempts=0, next_at=at, created=_now()
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
        now = now or _now()
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
        now = _now()
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
                    last_error=_clip(error),
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

    # ------------------------------------------------------------------ digests

    def claim_digest(
        self,
        digest: str,
        channel: str,
        day: date,
        force: bool = False,
        *,
        stale_after: timedelta | None = None,
    ) -> bool:
        """Claims one digest for one channel and day; False if it is claimed or posted already.

        With *force*, a posted digest (or a claim abandoned for STALE_DIGEST_CLAIM) is taken over;
        a fresh claim by a running worker is never stolen. With *stale_after*, an unposted claim
        older than that is taken over (and nothing else): the caller must first have made sure
        the abandoned run did not post. One conditional UPDATE, so only one taker wins.
        """
        now = _now()
        key = _digest_key(digest, channel, day)
        try:
            with self._write() as conn:
                conn.execute(
                    insert(digests).values(
                        digest=digest,
                        channel=channel,
                        day=day,
                        state="claimed",
                        extra="{}",
                        claimed_at=now,
                    )
                )
            return True
        except IntegrityError:
            if stale_after is not None and not force:
                return self._take_over_digest(key, now, stale_after)
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
                .values(state="claimed", claimed_at=now, message_ts=None, posted_at=None)
            )
        return res.rowcount == 1

    def _take_over_digest(self, key: Any, now: datetime, stale_after: timedelta) -> bool:
        with self._write() as conn:
            res = conn.execute(
                update(digests)
                .where(
                    key,
                    digests.c.state == "claimed",
                    digests.c.message_ts.is_(None),
                    digests.c.claimed_at < now - stale_after,
                )
                .values(claimed_at=now)
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
    ) -> None:
        """Records that the digest was posted as *message_ts* (with optional *extra* details)."""
        now = _now()
        values: dict[str, Any] = {"state": "posted", "message_ts": message_ts, "posted_at": now}
        if extra is not None:
            values["extra"] = json.dumps(extra, separators=(",", ":"))
        with self._write() as conn:
            res = conn.execute(
                update(digests).where(_digest_key(digest, channel, day)).values(**values)
            )
            if res.rowcount == 0:
                # Posted without a claim (manual run): record it so a later claim sees it.
                values.setdefault("extra", "{}")
                conn.execute(
                    insert(digests).values(
                        digest=digest, channel=channel, day=day, claimed_at=now, **values
                    )
                )

    def release_digest(self, digest: str, channel: str, day: date) -> None:
        """Drops a claim that never posted, so the digest can be tried again."""
        with self._write() as conn:
            conn.execute(
                delete(digests).where(
                    _digest_key(digest, channel, day), digests.c.state == "claimed"
                )
            )

    # ------------------------------------------------------------------ key/value

    def get_value(self, key: str) -> str | None:
        """The stored value, or None."""
        with self._read() as conn:
            value: str | None = conn.execute(select(kv.c.value).where(kv.c.key == key)).scalar()
        return value

    def set_value(self, key: str, value: str) -> None:
        """Stores *value* under *key*, replacing any previous value."""
        with self._write() as conn:
            conn.execute(
                self._upsert(
                    kv, {"key": key, "value": value}, ["key"], lambda ex: {"value": ex.value}
                )
            )


def normalise_url(url: str) -> str:
    """Heroku-style ``postgres://`` and bare ``postgresql://`` URLs get the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _digest_key(digest: str, channel: str, day: date) -> Any:
    return and_(digests.c.digest == digest, digests.c.channel == channel, digests.c.day == day)


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
