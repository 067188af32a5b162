"""The ticket catalogue (the ``TicketStore`` port) on SQL: tickets, tombstones and embeddings.

Three tables, created with the others (``sql_schema.metadata``):

- ``catalogue_tickets``: one row per (project, key), the ticket's fields, its content hash, a
  ``deleted`` flag (a tombstone) and ``seq``, the number of its last write;
- ``catalogue_embeddings``: the vectors of one text (content hash) for one embedding model, so a
  text is embedded once whatever the number of replicas or re-syncs;
- ``catalogue_seq``: one row holding the last number handed out.

Why a counter row and not an identity column: a writer takes the row's lock (``FOR UPDATE`` on
PostgreSQL; SQLite writers are serialised by ``BEGIN IMMEDIATE`` anyway) before it numbers its
rows and keeps it until it commits, so numbers become visible in commit order. With a sequence,
a transaction holding number 7 could commit after a reader had already seen 8 and moved its
cursor past 7 for good.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    delete,
    func,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Connection

from bot.adapters.sql_base import SqlBase
from bot.adapters.sql_schema import UTCDateTime, kv, metadata
from bot.domain.models import Ticket
from bot.domain.ports import CatalogueRow

CHUNK = 500  # keys per IN (...) list: well under SQLite's and PostgreSQL's parameter limits

catalogue_tickets = Table(
    "catalogue_tickets",
    metadata,
    Column("project", String(100), primary_key=True),
    Column("key", String(100), primary_key=True),
    Column("seq", BigInteger, nullable=False),
    Column("content_hash", String(64), nullable=False),
    Column("deleted", Boolean, nullable=False, default=False),
    Column("title", Text, nullable=False),
    Column("description", Text, nullable=False),
    Column("type", Text),
    Column("status", Text),
    Column("url", Text),
    Column("labels", Text, nullable=False, default="[]"),
    Column("components", Text, nullable=False, default="[]"),
    Column("updated", UTCDateTime),
    # The ticket's Jira project (JIRA_PROJECTS): one catalogue holds every mapped project.
    Column("jira_project", String(100)),
)
# "What changed in this project since N" and "the project's last number" are index range scans.
Index("ix_catalogue_tickets_seq", catalogue_tickets.c.project, catalogue_tickets.c.seq)

catalogue_embeddings = Table(
    "catalogue_embeddings",
    metadata,
    Column("model", String(200), primary_key=True),
    Column("content_hash", String(64), primary_key=True),
    Column("vectors", LargeBinary, nullable=False),
)

catalogue_seq = Table(
    "catalogue_seq",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
)

_TICKET_COLUMNS = (
    catalogue_tickets.c.key,
    catalogue_tickets.c.seq,
    catalogue_tickets.c.content_hash,
    catalogue_tickets.c.deleted,
    catalogue_tickets.c.title,
    catalogue_tickets.c.description,
    catalogue_tickets.c.type,
    catalogue_tickets.c.status,
    catalogue_tickets.c.url,
    catalogue_tickets.c.labels,
    catalogue_tickets.c.components,
    catalogue_tickets.c.updated,
    catalogue_tickets.c.jira_project,
)


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), CHUNK):
        yield list(items[start : start + CHUNK])


def _ticket(row: Any) -> Ticket | None:
    if row.deleted:
        return None
    return Ticket(
        key=row.key,
        title=row.title,
        description=row.description,
        type=row.type,
        status=row.status,
        url=row.url,
        updated=row.updated,
        labels=tuple(json.loads(row.labels)),
        components=tuple(json.loads(row.components)),
        project=row.jira_project,
    )


def _catalogue_row(row: Any, vectors: bytes | None = None) -> CatalogueRow:
    return CatalogueRow(
        seq=int(row.seq),
        key=row.key,
        content_hash=row.content_hash,
        ticket=_ticket(row),
        vectors=None if vectors is None else bytes(vectors),
    )


def _values(project: str, ticket: Ticket, seq: int) -> dict[str, Any]:
    return {
        "project": project,
        "key": ticket.key,
        "seq": seq,
        "content_hash": ticket.content_hash(),
        "deleted": False,
        "title": ticket.title,
        "description": ticket.description,
        "type": ticket.type,
        "status": ticket.status,
        "url": ticket.url,
        "labels": json.dumps(list(ticket.labels)),
        "components": json.dumps(list(ticket.components)),
        "updated": ticket.updated,
        "jira_project": ticket.project,
    }


class SqlCatalogue(SqlBase):
    """``TicketStore`` on the store's engine (a part of ``SqlStore``)."""

    def _take_numbers(self, conn: Connection) -> int:
        """Locks the counter for this transaction and returns the last number handed out."""
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            conn.execute(pg_insert(catalogue_seq).values(id=1, seq=0).on_conflict_do_nothing())
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            conn.execute(sqlite_insert(catalogue_seq).values(id=1, seq=0).on_conflict_do_nothing())
        last = conn.execute(
            select(catalogue_seq.c.seq).where(catalogue_seq.c.id == 1).with_for_update()
        ).scalar_one()
        return int(last)

    def _stored(self, conn: Connection, project: str, keys: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        t = catalogue_tickets.c
        for chunk in _chunks(keys):
            rows = conn.execute(
                select(*_TICKET_COLUMNS).where(t.project == project, t.key.in_(chunk))
            )
            out.update((r.key, r) for r in rows)
        return out

    def _rewrite(
        self, conn: Connection, project: str, last: int, rows: list[dict[str, Any]]
    ) -> None:
        """Replaces the rows of their keys, numbering them after *last*; moves the counter."""
        t = catalogue_tickets.c
        for chunk in _chunks([r["key"] for r in rows]):
            conn.execute(delete(catalogue_tickets).where(t.project == project, t.key.in_(chunk)))
        conn.execute(insert(catalogue_tickets), rows)
        conn.execute(
            update(catalogue_seq).where(catalogue_seq.c.id == 1).values(seq=last + len(rows))
        )

    def put_tickets(self, project: str, tickets: Sequence[Ticket]) -> int:
        """Adds or replaces tickets by key (the last of a repeated key wins); returns how many
        were written. A ticket equal to the stored one is skipped and takes no number."""
        latest = {t.key: t for t in tickets}
        if not latest:
            return 0
        with self._write() as conn:
            last = self._take_numbers(conn)
            stored = self._stored(conn, project, list(latest))
            changed = [t for t in latest.values() if _ticket_of(stored.get(t.key)) != t]
            if not changed:
                return 0
            rows = [_values(project, t, last + 1 + i) for i, t in enumerate(changed)]
            self._rewrite(conn, project, last, rows)
        return len(changed)

    def delete_tickets(self, project: str, keys: Sequence[str]) -> int:
        """Turns the live tickets of *keys* into tombstones (numbered like writes)."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return 0
        with self._write() as conn:
            last = self._take_numbers(conn)
            stored = self._stored(conn, project, wanted)
            live = [stored[k] for k in wanted if k in stored and not stored[k].deleted]
            if not live:
                return 0
            rows = [
                {
                    "project": project,
                    "key": r.key,
                    "seq": last + 1 + i,
                    "content_hash": r.content_hash,
                    "deleted": True,
                    "title": "",
                    "description": "",
                    "type": None,
                    "status": None,
                    "url": None,
                    "labels": "[]",
                    "components": "[]",
                    "updated": None,
                    "jira_project": None,
                }
                for i, r in enumerate(live)
            ]
            self._rewrite(conn, project, last, rows)
        return len(live)

    def tickets_since(
        self, project: str, seq: int, *, model: str | None = None, limit: int = 1000
    ) -> list[CatalogueRow]:
        """Rows written after *seq* in sequence order (tombstones too), with *model*'s vectors."""
        t, e = catalogue_tickets.c, catalogue_embeddings.c
        where = and_(t.project == project, t.seq > seq)
        with self._read() as conn:
            if model is None:
                rows = conn.execute(
                    select(*_TICKET_COLUMNS).where(where).order_by(t.seq).limit(limit)
                ).all()
                return [_catalogue_row(r) for r in rows]
            joined = catalogue_tickets.outerjoin(
                catalogue_embeddings, and_(e.content_hash == t.content_hash, e.model == model)
            )
            rows = conn.execute(
                select(*_TICKET_COLUMNS, e.vectors)
                .select_from(joined)
                .where(where)
                .order_by(t.seq)
                .limit(limit)
            ).all()
        return [_catalogue_row(r, None if r.deleted else r.vectors) for r in rows]

    def get_tickets(self, project: str, keys: Sequence[str]) -> dict[str, CatalogueRow]:
        """The live rows of *keys*, without vectors."""
        with self._read() as conn:
            stored = self._stored(conn, project, list(dict.fromkeys(keys)))
        return {k: _catalogue_row(r) for k, r in stored.items() if not r.deleted}

    def catalogue_head(self, project: str) -> int:
        """The number of *project*'s last write, 0 when none."""
        t = catalogue_tickets.c
        with self._read() as conn:
            head = conn.execute(select(func.max(t.seq)).where(t.project == project)).scalar()
        return int(head or 0)

    def count_tickets(self, project: str) -> int:
        """How many live tickets *project* has."""
        t = catalogue_tickets.c
        with self._read() as conn:
            n = conn.execute(
                select(func.count()).where(t.project == project, t.deleted.is_(False))
            ).scalar()
        return int(n or 0)

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> None:
        """Stores vectors by content hash; a hash already stored for *model* is kept."""
        if not vectors:
            return
        with self._write() as conn:
            self._insert_embeddings(conn, model, vectors)

    def _insert_embeddings(
        self, conn: Connection, model: str, vectors: Mapping[str, bytes]
    ) -> None:
        rows = [{"model": model, "content_hash": h, "vectors": v} for h, v in vectors.items()]
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            stmt: Any = pg_insert(catalogue_embeddings).on_conflict_do_nothing()
        else:
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            stmt = sqlite_insert(catalogue_embeddings).on_conflict_do_nothing()
        conn.execute(stmt, rows)

    def get_embeddings(self, model: str, hashes: Sequence[str]) -> dict[str, bytes]:
        """The stored vectors of *model* for those of *hashes* that have them."""
        e = catalogue_embeddings.c
        out: dict[str, bytes] = {}
        with self._read() as conn:
            for chunk in _chunks(list(dict.fromkeys(hashes))):
                rows = conn.execute(
                    select(e.content_hash, e.vectors).where(
                        e.model == model, e.content_hash.in_(chunk)
                    )
                )
                out.update((r.content_hash, bytes(r.vectors)) for r in rows)
        return out

    def embedding_models(self, project: str) -> dict[str, int]:
        """Model -> how many of *project*'s live tickets have its vectors."""
        t, e = catalogue_tickets.c, catalogue_embeddings.c
        with self._read() as conn:
            rows = conn.execute(
                select(e.model, func.count())
                .select_from(
                    catalogue_tickets.join(catalogue_embeddings, e.content_hash == t.content_hash)
                )
                .where(t.project == project, t.deleted.is_(False))
                .group_by(e.model)
            ).all()
        return {str(model): int(n) for model, n in rows}

    # The re-embedding lease lives in ``kv`` (one row per project and model, its value
    # {"token", "until"}): a rare, single-row claim needs no table of its own.

    def _reembed_lease(self, conn: Connection, key: str) -> dict[str, Any]:
        """The lease's row, locked for this transaction (created unleased when missing)."""
        conn.execute(self._insert_ignore(kv, {"key": key, "value": '{"token": 0, "until": null}'}))
        value = conn.execute(select(kv.c.value).where(kv.c.key == key).with_for_update()).scalar()
        return dict(json.loads(str(value)))

    def lease_reembed(self, project: str, model: str, now: datetime, until: datetime) -> int | None:
        """Takes the re-embedding lease unless an unexpired one holds it (see ``TicketStore``)."""
        key = reembed_lease_key(project, model)
        with self._write() as conn:
            lease = self._reembed_lease(conn, key)
            held = lease["until"] is not None and datetime.fromisoformat(lease["until"]) > now
            if held:
                return None
            token = int(lease["token"]) + 1
            value = json.dumps({"token": token, "until": until.isoformat()})
            conn.execute(update(kv).where(kv.c.key == key).values(value=value))
        return token

    def put_reembedded(
        self, project: str, model: str, token: int, vectors: Mapping[str, bytes], until: datetime
    ) -> bool:
        """Fenced ``put_embeddings`` that also renews the lease (see ``TicketStore``)."""
        key = reembed_lease_key(project, model)
        with self._write() as conn:
            if int(self._reembed_lease(conn, key)["token"]) != token:
                return False  # taken over: the new holder writes these
            value = json.dumps({"token": token, "until": until.isoformat()})
            conn.execute(update(kv).where(kv.c.key == key).values(value=value))
            if vectors:
                self._insert_embeddings(conn, model, vectors)
        return True


def reembed_lease_key(project: str, model: str) -> str:
    """The ``kv`` key of the re-embedding lease of (*project*, *model*): hashed, as a model id
    may be as long as the key column."""
    digest = hashlib.sha256(f"{project}\0{model}".encode()).hexdigest()
    return f"reembed-lease:{digest}"


def _ticket_of(row: Any | None) -> Ticket | None:
    return None if row is None else _ticket(row)
