"""Connection plumbing shared by the SQL store's parts: engine, transactions, upsert, pruning.

Every exactly-once decision is an INSERT on a unique key (filings, digests, inbox event ids,
pending outbox items): the database, not the process, decides who does the work, so several
threads and several bot processes can race safely.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Table, create_engine
from sqlalchemy.engine import Connection, make_url

from bot.adapters.sql_schema import WRITE_OPTION, create_schema, normalise_url, sqlite_engine

logger = logging.getLogger(__name__)

ERROR_MAX = 2000
_PRUNE_EVERY = 200


def utc_now() -> datetime:
    """The wall clock, aware UTC: what every stored "now" is."""
    return datetime.now(UTC)


def clip_error(error: str | None) -> str | None:
    """*error* cut to ERROR_MAX characters (a stack trace must not bloat a row)."""
    return None if error is None else error[:ERROR_MAX]


class WriteGate:
    """One writer at a time; waiting *urgent* writers go before the others."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._busy = False
        self._urgent = 0

    def acquire(self, urgent: bool = False, timeout: float | None = None) -> bool:
        """Takes the gate; False if it was not free within *timeout* seconds."""
        with self._cond:
            if urgent:
                self._urgent += 1
            try:
                free = self._cond.wait_for(
                    lambda: not self._busy and (urgent or self._urgent == 0), timeout
                )
                if free:
                    self._busy = True
                return free
            finally:
                if urgent:
                    self._urgent -= 1

    def release(self) -> None:
        """Frees the gate for the next writer."""
        with self._cond:
            self._busy = False
            self._cond.notify_all()


class SqlBase:
    """Engine and transactions; the port mixins (``SqlPosts``, ``SqlFilings``, ...) build on it."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        """Connects to *url* and creates missing tables.

        ``sqlite:///path/to/file`` (parent directory is created) or
        ``postgresql+psycopg://user@host/db``.
        """
        url = normalise_url(url)
        parsed = make_url(url)
        self.backend = parsed.get_backend_name()
        if self.backend == "sqlite":
            self.engine = sqlite_engine(url, parsed.database, echo)
        else:
            # A total deadline on reaching the server: an unreachable host must fail a request
            # (readiness says so, Slack is answered 503 and retries), not hang it for minutes.
            # Statement parameters (post text, names) stay out of exception messages and logs.
            connect_args = {} if "connect_timeout" in parsed.query else {"connect_timeout": 5}
            self.engine = create_engine(
                url, pool_pre_ping=True, echo=echo, connect_args=connect_args, hide_parameters=True
            )
        # Same pool and events, plus an option the SQLite begin hook turns into BEGIN IMMEDIATE.
        self._writer = self.engine.execution_options(**{WRITE_OPTION: True})
        self._counter_lock = threading.Lock()
        # SQLite takes one writer at a time, and its busy handler waits by sleeping with back-off
        # (up to 100 ms a try), which made a short write behind another one take 250 ms. This
        # process's writers queue on a gate instead (woken the moment it is free, urgent writers
        # first); the busy timeout is left to arbitrate between processes.
        self._write_gate = WriteGate() if self.backend == "sqlite" else None
        self._inbox_calls = 0
        self._finish_calls = 0
        with self._write() as conn:
            create_schema(conn, self.backend)
        logger.info("store ready (%s)", self.backend)

    def close(self) -> None:
        """Closes pooled connections."""
        self.engine.dispose()

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        with self._one_writer(), self._writer.begin() as conn:
            yield conn

    @contextmanager
    def _one_writer(self, timeout: float | None = None, *, urgent: bool = False) -> Iterator[None]:
        """Holds this process's SQLite write gate (no-op on PostgreSQL); *urgent* writers (an
        acknowledgement waiting on it) go before the others. Raises TimeoutError if the gate is
        not free within *timeout* seconds (None: wait)."""
        if self._write_gate is None:
            yield
            return
        if not self._write_gate.acquire(urgent, timeout):
            raise TimeoutError(f"the database was busy for {timeout:g}s")
        try:
            yield
        finally:
            self._write_gate.release()

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def _upsert(
        self, table: Table, values: dict[str, Any], keys: list[str], set_: Callable[[Any], Any]
    ) -> Any:
        """INSERT ... ON CONFLICT (keys) DO UPDATE; *set_* maps the excluded row to new values."""
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            pg_stmt = pg_insert(table).values(**values)
            return pg_stmt.on_conflict_do_update(index_elements=keys, set_=set_(pg_stmt.excluded))
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).values(**values)
        return stmt.on_conflict_do_update(index_elements=keys, set_=set_(stmt.excluded))

    def _insert_ignore(self, table: Any, values: dict[str, Any]) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING on either backend."""
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).values(**values).on_conflict_do_nothing()
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(table).values(**values).on_conflict_do_nothing()

    def _bump(self, name: str) -> bool:
        """True on the first call and every _PRUNE_EVERY-th one after (opportunistic pruning)."""
        with self._counter_lock:
            n: int = getattr(self, name)
            setattr(self, name, n + 1)
        return n % _PRUNE_EVERY == 0
