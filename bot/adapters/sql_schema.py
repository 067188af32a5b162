"""The store's tables, its UTC datetime type, and engines for SQLite and PostgreSQL.

SQLite runs in WAL mode with a busy timeout; write transactions start with ``BEGIN IMMEDIATE`` so
that a transaction that reads before it writes waits for the lock instead of failing with
``SQLITE_BUSY``. PostgreSQL is reached through psycopg 3 (``postgresql+psycopg://``).

Datetimes are stored as UTC and always returned timezone-aware (UTC) on both backends; naive
datetimes are refused, because guessing their zone is how digests end up a day off.
"""

from __future__ import annotations

import logging
import sqlite3
import time as _time
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
    false,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.schema import CreateColumn
from sqlalchemy.types import TypeDecorator

from bot.adapters.files import private_dir, private_file, tighten_all

logger = logging.getLogger(__name__)

# 2: outbox.lease_token (fenced leases), digests.claim_token (fenced digest claims).
# 3: posts.deleted (deleted posts keep their row, purged of text).
# 4: posts.votes, post_people.vote (votes), issue_states (Jira changes announced in Slack).
SCHEMA_VERSION = 4
SQLITE_BUSY_TIMEOUT_MS = 30_000
_PG_DDL_LOCK = 0x1DEAB07  # pg_advisory_xact_lock key: serialises create_all across processes
# Execution option the SQLite begin hook turns into BEGIN IMMEDIATE (see ``sqlite_engine``).
WRITE_OPTION = "ideabot_write"
# The files SQLite keeps next to a database; it creates them with the database file's mode.
SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


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
    # Added after version 1: existing databases get it from ``_add_missing_columns``; the server
    # default lets a bot that does not know the column keep inserting.
    Column("deleted", Boolean, nullable=False, default=False, server_default=false()),
    # People who voted (see bot.domain.votes), derived from post_people like the counts above.
    Column("votes", Integer, nullable=False, default=0, server_default=text("0")),
)

# Who reacted to or replied to a stored post: one row per (person, emoji) or (person, reply), so
# redelivered events change nothing and each person counts once in the post's derived counts.
post_people = Table(
    "post_people",
    metadata,
    Column("channel", String(40), primary_key=True),
    Column("ts", String(40), primary_key=True),
    Column("kind", String(20), primary_key=True),  # "reaction" | "reply"
    Column("user", String(40), primary_key=True),
    Column("detail", String(200), primary_key=True),  # the emoji, or the reply's ts
    # The record is a vote (a vote emoji, or a reply): decided by the use case when recording.
    Column("vote", Boolean, nullable=False, default=False, server_default=false()),
)

# One row per Jira issue filed from Slack whose changes are announced: the state last announced
# in the post's thread (None columns with ``seen`` false: never looked at) and a fenced claim, so
# of the sync and the webhook on any replica one announces a change, once.
issue_states = Table(
    "issue_states",
    metadata,
    Column("key", String(40), primary_key=True),
    Column("seen", Boolean, nullable=False, default=False),
    Column("status", Text),
    Column("status_category", String(40)),
    Column("assignee", Text),
    Column("resolution", Text),
    Column("announced_at", UTCDateTime),
    Column("claim_until", UTCDateTime),
    Column("claim_token", Integer, nullable=False, default=0),
    # A change was reported while the claim was held: the holder looks again before letting go.
    Column("dirty", Boolean, nullable=False, default=False),
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
    # Bumped by every lease; a completion names the token it leased with (see SqlOutbox.lease).
    Column("lease_token", Integer, nullable=False, default=0, server_default=text("0")),
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
# Jira changes are looked up by issue key (which post was it filed from?).
ix_filings_issue_key = Index("ix_filings_issue_key", filings.c.issue_key)

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
    # The claimant's own token: a run that lost its claim to a takeover can tell (fencing).
    Column("claim_token", String(64)),
)


def normalise_url(url: str) -> str:
    """Heroku-style ``postgres://`` and bare ``postgresql://`` URLs get the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def sqlite_files(database: str | Path) -> list[Path]:
    """The SQLite database file and the companions SQLite may keep next to it."""
    db = Path(database).expanduser()
    return [db, *(db.with_name(db.name + suffix) for suffix in SQLITE_COMPANIONS)]


def make_sqlite_private(database: str | Path) -> None:
    """Creates the database file ``0600`` before SQLite opens it (missing parents ``0700``).

    The file holds post text from private channels. SQLite creates its ``-wal``/``-shm``/
    ``-journal`` files with the database file's mode, so they follow. An existing database and
    companions are tightened (logged once); an existing parent directory is left as it is.
    """
    db = Path(database).expanduser()
    private_dir(db.parent, tighten=False)
    changed, failed = tighten_all(sqlite_files(db))
    if not db.exists():
        private_file(db)
    if changed:
        logger.warning("%s was readable by other users: made it private (0600)", db.name)
    if failed:
        logger.warning("could not make private: %s", "; ".join(failed))


def _use_wal(cur: Any) -> None:
    """Switches the database to WAL (a persistent property of the file), once.

    The switch needs an exclusive lock, and SQLite does not run the busy handler for it: a
    process that opens a fresh database while another is creating the schema gets "database is
    locked" at once instead of waiting. So the switch is retried here, within the busy timeout,
    and skipped when another process already made the file WAL.
    """
    deadline = _time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        try:
            if str(cur.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                cur.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or _time.monotonic() + delay > deadline:
                raise
            _time.sleep(delay)
            delay = min(delay * 2, 0.2)


def sqlite_engine(url: str, database: str | None, echo: bool) -> Engine:
    """An engine on a SQLite *file* in WAL mode whose write transactions BEGIN IMMEDIATE."""
    if not database or database == ":memory:" or database.startswith("file:"):
        raise ValueError("SqlStore needs a SQLite file path (several connections share it)")
    make_sqlite_private(database)
    engine = create_engine(
        url,
        echo=echo,
        # Statement parameters (post text, names) stay out of exception messages and logs.
        hide_parameters=True,
        connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself (the sqlite3 module's implicit BEGIN is deferred and
        # skipped for SELECT, which breaks read-then-write transactions under concurrency).
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        _use_wal(cur)
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(WRITE_OPTION):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


# Columns added to existing tables since version 1, created where missing (idempotent, and
# serialised across processes like create_all). Each must be nullable or have a server default.
_ADDED_COLUMNS = (
    (outbox, "lease_token"),
    (digests, "claim_token"),
    (posts, "deleted"),
    (posts, "votes"),
    (post_people, "vote"),
)


def create_schema(conn: Connection, backend: str) -> None:
    """Creates missing tables and records the schema version, inside the caller's transaction.

    Refuses a database written by a newer bot.
    """
    if backend == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_DDL_LOCK})
    metadata.create_all(conn)
    _add_missing_columns(conn)
    # create_all makes indexes only with the tables it creates: an older filings table needs it.
    ix_filings_issue_key.create(conn, checkfirst=True)
    found = conn.execute(select(kv.c.value).where(kv.c.key == "schema_version")).scalar()
    if found is None:
        conn.execute(insert(kv).values(key="schema_version", value=str(SCHEMA_VERSION)))
    elif int(found) > SCHEMA_VERSION:
        raise RuntimeError(
            f"database schema version {found} is newer than this bot ({SCHEMA_VERSION})"
        )
    elif int(found) < SCHEMA_VERSION:
        conn.execute(
            update(kv).where(kv.c.key == "schema_version").values(value=str(SCHEMA_VERSION))
        )


def _add_missing_columns(conn: Connection) -> None:
    """ALTER TABLE ... ADD COLUMN for each of ``_ADDED_COLUMNS`` a database made earlier lacks."""
    inspector = inspect(conn)
    for table, name in _ADDED_COLUMNS:
        have = {c["name"] for c in inspector.get_columns(table.name)}
        if name not in have:
            ddl = CreateColumn(table.c[name]).compile(dialect=conn.dialect)
            conn.execute(text(f"ALTER TABLE {table.name} ADD COLUMN {ddl}"))
