"""The durable state store (the ``Store`` port) on SQLAlchemy 2: SQLite by default, PostgreSQL too.

``SqlStore`` is composed of one part per port group, each in its own module:

- ``sql_schema``: tables, the UTC datetime type, SQLite/PostgreSQL engines, schema creation
- ``sql_base``: connection plumbing (transactions, upsert, opportunistic pruning)
- ``sql_posts``: ``Posts`` and ``Engagement``
- ``sql_inbox``: ``Inbox`` (Slack events recorded before they are acknowledged)
- ``sql_filings``: ``Filings`` and ``Outbox``
- ``sql_digests``: ``DigestLedger``
- ``sql_catalogue``: ``TicketStore`` (the ticket catalogue the indexes are caches of)
- ``sql_loop``: ``Votes`` (most voted open posts) and ``IssueWatch`` (Jira changes announced)
- here: ``KeyValue`` and the composition

Every exactly-once decision is an INSERT on a unique key (filings, digests, inbox event ids,
pending outbox items): the database, not the process, decides who does the work, so several
threads and several bot processes can race safely. The names below are re-exported so that
``bot.adapters.store_sql`` stays the one import path for the store and its tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from bot.adapters.files import private_dir
from bot.adapters.sql_base import ERROR_MAX, SqlBase
from bot.adapters.sql_catalogue import SqlCatalogue
from bot.adapters.sql_digests import STALE_DIGEST_CLAIM, SqlDigests
from bot.adapters.sql_filings import DONE_OUTBOX_KEEP, FILING_STATES, SqlFilings, SqlOutbox
from bot.adapters.sql_home import SqlHome
from bot.adapters.sql_inbox import EVENT_KEEP, RECORD_DEADLINE, SqlInbox, inbox
from bot.adapters.sql_loop import SqlIssueWatch, SqlVotes
from bot.adapters.sql_posts import SqlPosts
from bot.adapters.sql_schema import (
    SCHEMA_VERSION,
    SQLITE_BUSY_TIMEOUT_MS,
    UTCDateTime,
    digests,
    filings,
    issue_states,
    kv,
    metadata,
    normalise_url,
    outbox,
    post_people,
    posts,
)

if TYPE_CHECKING:
    from bot.config import Settings

__all__ = [
    "DONE_OUTBOX_KEEP",
    "ERROR_MAX",
    "EVENT_KEEP",
    "FILING_STATES",
    "RECORD_DEADLINE",
    "SCHEMA_VERSION",
    "SQLITE_BUSY_TIMEOUT_MS",
    "STALE_DIGEST_CLAIM",
    "SqlStore",
    "UTCDateTime",
    "digests",
    "filings",
    "inbox",
    "issue_states",
    "kv",
    "metadata",
    "normalise_url",
    "outbox",
    "post_people",
    "posts",
]


class SqlStore(
    SqlPosts,
    SqlInbox,
    SqlFilings,
    SqlOutbox,
    SqlDigests,
    SqlCatalogue,
    SqlVotes,
    SqlIssueWatch,
    SqlHome,
    SqlBase,
):
    """The ``Store`` port on SQLAlchemy (SQLite file or PostgreSQL). Thread-safe.

    ``SqlStore(url)``: ``sqlite:///path/to/file`` (parent directory is created) or
    ``postgresql+psycopg://user@host/db``; missing tables are created.
    """

    @classmethod
    def from_settings(cls, settings: Settings) -> SqlStore:
        """Builds the store from ``DATABASE_URL``, else a SQLite file under ``BOT_DATA_DIR``."""
        if not settings.database_url:
            private_dir(settings.bot_data_dir)
        return cls(settings.sqlalchemy_url)

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
