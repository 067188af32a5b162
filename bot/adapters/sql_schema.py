"""The store's tables, its UTC datetime type, and engines for SQLite and PostgreSQL.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so
that a transaction that reads before it writes waits for the lock instead of failing with
``SQLITE_BUSY``. PostgreSQL is reached through psycopg 3 (``postgresql+psycopg://``).

Datetimes are stored as UTC and always returned timezone-aware (UTC) on both backends; naive
datetimes are refused, because guessing their zone is how digests end up a day off.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

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
    create_engine,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = 1
SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_DDL_LOCK = 0x1DEAB07  # pg_advisory_xact_lock key: serialises create_all across processes
# Execution option the SQLite begin hook turns into BEGIN IMMEDIATE (see ``sqlite_engine``).
WRITE_OPTION = "ideabot_write"


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, on every backend.

    SQLite keeps naive UTC text (its fixed-width format sorts correctly); PostgreSQL keeps
    ``timestamptz``.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Refuses naive datetimes; converts to UTC (naive UTC for SQLite)."""
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Returns an aware UTC datetime whatever the backend or session time zone gave."""
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

# The ``inbox`` table is defined with its port, in ``sql_inbox`` (it replaced ``slack_events``,
# which older databases still hold, unused).

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


def normalise_url(url: str) -> str:
    """Heroku-style ``postgres://`` and bare ``postgresql://`` URLs get the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_engine(url: str, database: str | None, echo: bool) -> Engine:
    """An engine on a SQLite *file* in WAL mode whose write transactions BEGIN IMMEDIATE."""
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
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def create_schema(conn: Connection, backend: str) -> None:
    """Creates missing tables and records the schema version, inside the caller's transaction.

    Refuses a database written by a newer bot.
    """
    if backend == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_DDL_LOCK})
    metadata.create_all(conn)
    found = conn.execute(select(kv.c.value).where(kv.c.key == "schema_version")).scalar()
    if found is None:
        conn.execute(insert(kv).values(key="schema_version", value=str(SCHEMA_VERSION)))
    elif int(found) > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {found} is newer than this bot ({SCHEMA_VERSION})"
        )
