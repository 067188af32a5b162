"""The ticket index on Pinecone (a serverless vector index of dimension = embedder.dim, cosine).

Records (one namespace per Jira project):

* ``KEY``   the body vector (title + description) with the display metadata: ``key``, ``title``,
  ``desc`` (cut so the record's metadata stays under Pinecone's 40 KB), ``type``, ``status``,
  ``url``, ``h`` (content hash) and ``part="body"``;
* ``KEY#t`` the title vector, metadata ``key`` and ``part="title"`` only.

Two records rather than one per ticket because Pinecone ranks by a single vector per record and
the title deserves its own signal; the ``part`` filter lets each be queried on its own.

A search asks Pinecone for the top-N bodies and the top-N titles (values included), fetches the
missing partner of each candidate, and then computes every signal exactly on those candidates:
the four cosines (query and its headline against body and title) and BM25 over the candidates'
stored text. Lexical matches outside the dense top-N are therefore not found: the price of not
keeping the corpus locally.

No local file: Pinecone keeps the vectors, the database (the ``TicketStore`` catalogue) keeps
every ticket, the vectors of each text per model (so a re-sync or another replica embeds
nothing twice) and, under ``pinecone:<namespace>:model``, the model the namespace was filled
with. A write goes to Pinecone, then to the catalogue (a failure in between is repaired by the
next write of the ticket, which still differs from the catalogue). BM25's document frequencies
are counted in memory from the catalogue and caught up by sequence number like the local index;
before any sync reached the catalogue they are counted over the candidates themselves, so a
replica always searches Pinecone.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any, Literal, Protocol, TypeVar

import numpy as np
import numpy.typing as npt

from bot.adapters.fusion import DEFAULT_FUSION, Fusion
from bot.adapters.index_local import (
    PAGE,
    CatalogueFollower,
    FusedSearch,
    IndexModelMismatch,
    decode_vectors,
    encode_vectors,
    rank_candidates,
)
from bot.adapters.lexical import DEFAULT_WEIGHTS, CorpusStats, FusionWeights, relative
from bot.domain.models import Match, Ticket
from bot.domain.ports import CatalogueRow, Embedder, KeyValue, TicketStore

logger = logging.getLogger(__name__)

MAX_BATCH_VECTORS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
REQUEST_BUDGET = MAX_REQUEST_BYTES - 64 * 1024  # headroom for the envelope and encoder differences
METADATA_BUDGET = MAX_METADATA_BYTES - 512
FETCH_CHUNK = 100  # ids per GET /vectors/fetch: keeps the URL short
DELETE_CHUNK = 1000
TITLE_SUFFIX = "#t"
RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})

Array = npt.NDArray[np.float32]
T = TypeVar("T")


def _json_size(obj: Any) -> int:
    return len(json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


def body_metadata(ticket: Ticket, text_hash: str, limit: int = METADATA_BUDGET) -> dict[str, Any]:
    """The body record's metadata, its description cut (in UTF-8 bytes) to fit *limit*."""
    meta: dict[str, Any] = {
        "key": ticket.key,
        "part": "body",
        "title": ticket.title,
        "h": text_hash,
        "project": ticket.project_key,
    }
    for name in ("type", "status", "url"):
        value = getattr(ticket, name)
        if value is not None:
            meta[name] = value
    meta["desc"] = ""
    room = limit - _json_size(meta)
    desc = ticket.description
    if _json_size(desc) - 2 > room:
        # JSON escaping can make bytes grow (quotes, control characters): shrink until it fits.
        raw = desc.encode("utf-8")[: max(0, room)]
        desc = raw.decode("utf-8", errors="ignore")
        while desc and _json_size(desc) - 2 > room:
            desc = desc[: int(len(desc) * 0.9)]
    meta["desc"] = desc
    return meta


def stored_text(meta: dict[str, Any]) -> str:
    """The text BM25 sees for a body record: what Pinecone stores (description maybe cut)."""
    return f"{meta.get('title', '')}\n{meta.get('desc', '')}".strip()


def ticket_from_metadata(meta: dict[str, Any]) -> Ticket:
    """A Ticket rebuilt from a body record's metadata."""
    return Ticket(
        key=str(meta["key"]),
        title=str(meta.get("title", "")),
        description=str(meta.get("desc", "")),
        type=meta.get("type"),
        status=meta.get("status"),
        url=meta.get("url"),
        project=meta.get("project"),
    )


def _record_fields(ticket: Ticket) -> tuple[str | None, ...]:
    """What the Pinecone records show of a ticket: a change elsewhere (labels) is not sent."""
    return (
        ticket.title,
        ticket.description,
        ticket.type,
        ticket.status,
        ticket.url,
        ticket.project_key,
    )


def _vector_count(stats: Any, namespace: str) -> int:
    """How many records Pinecone's statistics say *namespace* holds (0 when not listed)."""
    spaces = getattr(stats, "namespaces", None) or {}
    summary = spaces.get(namespace) if hasattr(spaces, "get") else None
    return int(getattr(summary, "vector_count", 0) or 0) if summary is not None else 0


class IndexDimensionMismatch(ValueError):
    """The Pinecone index was created for vectors of another dimension than the embedder's."""


class PineconeState(TicketStore, KeyValue, Protocol):
    """The part of the store the Pinecone index keeps its state in (the SQL store is one)."""


def _values(vec: Array) -> list[float]:
    # Six decimals keep cosines exact to ~1e-6 and roughly halve the JSON of each vector.
    return [float(x) for x in np.round(vec.astype(np.float64), 6)]


def plan_batches(
    records: Sequence[dict[str, Any]],
    max_vectors: int = MAX_BATCH_VECTORS,
    max_bytes: int = REQUEST_BUDGET,
) -> list[list[dict[str, Any]]]:
    """Splits records into upsert requests of at most *max_vectors* and *max_bytes* of JSON."""
    batches: list[list[dict[str, Any]]] = []
    cur: list[dict[str, Any]] = []
    size = 0
    for rec in records:
        s = _json_size(rec) + 1
        if cur and (len(cur) >= max_vectors or size + s > max_bytes):
            batches.append(cur)
            cur, size = [], 0
        cur.append(rec)
        size += s
    if cur:
        batches.append(cur)
    return batches


class PineconeIndex(CatalogueFollower, FusedSearch):
    _log_name = "pinecone"

    """``TicketIndex`` on a Pinecone vector index, one namespace per Jira project.

    *catalogue* is the store (tickets, vectors, the namespace's model). *index* is a ready
    ``pinecone.Index`` (tests and callers that built their own); otherwise one is opened from
    *api_key* and *host* (preferred: no control-plane call) or *index_name*. When the namespace
    was filled with another embedding model, *on_mismatch* ``"raise"`` refuses to start and
    ``"reset"`` empties the namespace and fills it again from the catalogue.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        catalogue: PineconeState,
        namespace: str,
        api_key: str | None = None,
        host: str | None = None,
        index_name: str | None = None,
        index: Any = None,
        weights: FusionWeights = DEFAULT_WEIGHTS,
        fusion: Fusion | None = DEFAULT_FUSION,
        candidates: int = 50,
        retries: int = 3,
        backoff: float = 1.0,
        threads: int = 4,
        on_mismatch: Literal["raise", "reset"] = "raise",
        refresh_every: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        check_dimension: bool = True,
    ) -> None:
        if index is None:
            from pinecone import Pinecone

            if not api_key or not (host or index_name):
                raise ValueError("PineconeIndex needs api_key and host or index_name")
            pc = Pinecone(api_key=api_key)
            index = pc.index(host=host) if host else pc.index(name=index_name or "")
        self._index = index
        self.embedder = embedder
        self.catalogue = catalogue
        self.namespace = namespace
        self.weights = weights
        self.fusion = fusion
        self.candidates = candidates
        self.retries = retries
        self.backoff = backoff
        self.threads = threads
        self.refresh_every = refresh_every
        self._clock = clock
        self._dim = int(embedder.dim)
        self._lock = threading.RLock()
        self._labelled: tuple[str, list[tuple[Ticket, Array]]] | None = None
        # BM25 statistics over the catalogue's tickets, as their body records store the text.
        self._stats = CorpusStats()
        self._texts: dict[str, str] = {}
        # ... and over their titles alone: the title-field BM25 that rank fusion reads.
        self._title_stats = CorpusStats()
        self._titles: dict[str, str] = {}
        self._seq = 0
        self._caught_up = False
        self._checked_at = float("-inf")
        self._warming: threading.Thread | None = None
        self._warm_lock = threading.Lock()
        self._name = index_name or host or "the Pinecone index"
        stats = self.check_dimension() if check_dimension else None
        model_key = f"pinecone:{namespace or 'default'}:model"
        model = catalogue.get_value(model_key)
        if model is None:
            catalogue.set_value(model_key, embedder.model_id)
        elif model != embedder.model_id:
            # A new, empty index for the new model (its dimension differs, as a rule): fill it.
            empty = stats is not None and not _vector_count(stats, namespace)
            if on_mismatch == "raise" and not empty:
                raise IndexModelMismatch(
                    f"Pinecone namespace {namespace!r} holds vectors of {model!r}, but the "
                    f"embedding model is {embedder.model_id!r}: point the bot at a new, empty "
                    f"index of dimension {self._dim} (it is filled from the database at "
                    "start-up), or go back to the old model"
                )
            logger.warning("namespace %s: model changed, filling it from the catalogue", namespace)
            if not empty:
                self._call(lambda: self._index.delete(delete_all=True, namespace=namespace))
            catalogue.set_value(model_key, embedder.model_id)
            self.refill()

    def check_dimension(self) -> Any:
        """Pinecone's statistics of the index; raises ``IndexDimensionMismatch`` when its
        dimension is not the embedder's (every upsert and query would be refused)."""
        stats = self._call(lambda: self._index.describe_index_stats())
        dim = int(getattr(stats, "dimension", None) or 0)
        if dim and dim != self._dim:
            raise IndexDimensionMismatch(
                f"{self._name} has dimension {dim}, but the embedding model "
                f"{self.embedder.model_id!r} makes vectors of dimension {self._dim}: create a "
                f"Pinecone index of dimension {self._dim} (metric cosine) for it, or use a model "
                f"of dimension {dim}"
            )
        return stats

    # ------------------------------------------------------------------ calls

    def _call(self, fn: Callable[[], T]) -> T:
        """Runs one SDK call, retrying throttling and server errors with exponential back-off.

        The SDK retries too (3 times, honouring Retry-After); this outer loop covers what still
        fails, e.g. once the SDK's per-host retry budget is spent.
        """
        from pinecone.errors import ApiError, PineconeConnectionError, PineconeTimeoutError

        for attempt in range(self.retries + 1):
            try:
                return fn()
            except ApiError as exc:
                if exc.status_code not in RETRYABLE or attempt >= self.retries:
                    raise
                delay = self.backoff * (2**attempt) * random.uniform(0.5, 1.0)
                logger.warning("Pinecone answered %s; retrying in %.1f s", exc.status_code, delay)
            except (PineconeConnectionError, PineconeTimeoutError) as exc:
                if attempt >= self.retries:
                    raise
                delay = self.backoff * (2**attempt) * random.uniform(0.5, 1.0)
                logger.warning("Pinecone unreachable (%s); retrying in %.1f s", exc, delay)
            time.sleep(delay)
        raise AssertionError("unreachable")

    def _fetch(self, ids: Sequence[str]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for start in range(0, len(ids), FETCH_CHUNK):
            chunk = list(ids[start : start + FETCH_CHUNK])
            resp = self._call(partial(self._index.fetch, ids=chunk, namespace=self.namespace))
            out.update(resp.vectors)
        return out

    # ------------------------------------------------------------------ writes

    def _vectors(self, tickets: Sequence[Ticket], reuse_pinecone: bool) -> tuple[Array, Array]:
        """Body and title vectors of *tickets*: stored ones, else (when *reuse_pinecone*) the
        records Pinecone holds for the same text, else embedded now. New ones are stored."""
        model = self.embedder.model_id
        hashes = [t.content_hash() for t in tickets]
        have = self.catalogue.get_embeddings(model, hashes)
        todo = {h: t for h, t in zip(hashes, tickets, strict=True) if h not in have}
        new: dict[str, bytes] = {}
        if todo and reuse_pinecone:
            # Tickets the catalogue has never seen may be in Pinecone already (written before
            # the catalogue existed): their vectors are reused when the text is the same.
            found = self._fetch([i for t in todo.values() for i in (t.key, t.key + TITLE_SUFFIX)])
            for h, t in list(todo.items()):
                b, ti = found.get(t.key), found.get(t.key + TITLE_SUFFIX)
                if b is not None and ti is not None and (b.metadata or {}).get("h") == h:
                    new[h] = encode_vectors(
                        np.asarray(b.values, np.float32), np.asarray(ti.values, np.float32)
                    )
                    del todo[h]
        if todo:
            order = list(todo)
            n = len(order)
            vecs = np.asarray(
                self.embedder.embed(
                    [todo[h].text() for h in order] + [todo[h].title for h in order]
                ),
                dtype=np.float32,
            )
            if vecs.shape != (2 * n, self._dim):
                raise ValueError(
                    f"embedder returned shape {vecs.shape}, expected {(2 * n, self._dim)}"
                )
            new.update((h, encode_vectors(vecs[j], vecs[n + j])) for j, h in enumerate(order))
        self.catalogue.put_embeddings(model, new)
        have.update(new)
        return decode_vectors([have[h] for h in hashes], self._dim)

    def _push(self, tickets: Sequence[Ticket], body: Array, title: Array) -> int:
        """Upserts both records of each ticket; returns the number of requests."""
        recs: list[dict[str, Any]] = []
        for j, t in enumerate(tickets):
            h = t.content_hash()
            recs.append({"id": t.key, "values": _values(body[j]), "metadata": body_metadata(t, h)})
            recs.append(
                {
                    "id": t.key + TITLE_SUFFIX,
                    "values": _values(title[j]),
                    "metadata": {"key": t.key, "part": "title", "project": t.project_key},
                }
            )
        batches = plan_batches(recs)
        for batch in batches:
            self._call(partial(self._index.upsert, vectors=batch, namespace=self.namespace))
        return len(batches)

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        """Adds or replaces tickets by key; returns how many were written.

        Unchanged tickets cost nothing (the catalogue says so). Only tickets whose records
        change (text, type, status, url) are sent to Pinecone, with vectors embedded once per
        text and model, whichever replica or sync needed them first.
        """
        latest: dict[str, Ticket] = {}
        for t in tickets:
            latest[t.key] = t
        stored = self.catalogue.get_tickets(self.namespace, list(latest))
        changed = [
            t for t in latest.values() if (row := stored.get(t.key)) is None or row.ticket != t
        ]
        if not changed:
            return 0
        send = [
            t
            for t in changed
            if (row := stored.get(t.key)) is None
            or row.ticket is None
            or _record_fields(row.ticket) != _record_fields(t)
        ]
        requests = 0
        if send:
            fresh = [t for t in send if t.key not in stored]
            reused = [t for t in send if t.key in stored]
            for group, reuse in ((fresh, True), (reused, False)):
                if group:
                    body, title = self._vectors(group, reuse_pinecone=reuse)
                    requests += self._push(group, body, title)
        written = self.catalogue.put_tickets(self.namespace, changed)
        with self._lock:
            self._catch_up()
        logger.info(
            "pinecone %s: %d written, %d sent in %d requests",
            self.namespace,
            written,
            len(send),
            requests,
        )
        return written

    def delete(self, keys: Sequence[str]) -> None:
        """Removes tickets (both records) by key; keys the catalogue does not know are ignored."""
        known = list(self.catalogue.get_tickets(self.namespace, list(dict.fromkeys(keys))))
        if not known:
            return
        ids = [i for k in known for i in (k, k + TITLE_SUFFIX)]
        for start in range(0, len(ids), DELETE_CHUNK):
            chunk = ids[start : start + DELETE_CHUNK]
            self._call(partial(self._index.delete, ids=chunk, namespace=self.namespace))
        self.catalogue.delete_tickets(self.namespace, known)
        with self._lock:
            self._catch_up()

    def refill(self) -> int:
        """Writes every ticket of the catalogue to Pinecone again (after emptying a namespace).

        Vectors come from the catalogue; texts without vectors of this model are embedded once.
        """
        total = 0
        seq = 0
        while True:
            rows = self.catalogue.tickets_since(self.namespace, seq, limit=PAGE)
            live = [r.ticket for r in rows if r.ticket is not None]
            if live:
                body, title = self._vectors(live, reuse_pinecone=False)
                self._push(live, body, title)
                total += len(live)
            if len(rows) < PAGE:
                return total
            seq = rows[-1].seq

    # ------------------------------------------------------------------ BM25 statistics

    def _catch_up(self, force: bool = True) -> None:
        """Counts what the catalogue holds beyond the last number counted (lock held)."""
        now = self._clock()
        if not force and self._caught_up and now - self._checked_at < self.refresh_every:
            return
        while True:
            rows = self.catalogue.tickets_since(self.namespace, self._seq, limit=PAGE)
            for row in rows:
                self._count(row)
            if rows:
                self._seq = rows[-1].seq
            if len(rows) < PAGE:
                break
        self._caught_up = True
        self._checked_at = now

    def _count(self, row: CatalogueRow) -> None:
        old = self._texts.pop(row.key, None)
        if old is not None:
            self._stats.remove(old)
        old_title = self._titles.pop(row.key, None)
        if old_title is not None:
            self._title_stats.remove(old_title)
        if row.ticket is not None:
            text = stored_text(body_metadata(row.ticket, row.content_hash))
            self._stats.add(text)
            self._texts[row.key] = text
            self._title_stats.add(row.ticket.title)
            self._titles[row.key] = row.ticket.title

    # ------------------------------------------------------------------ reads

    def _query(self, vec: Array, part: str, projects: Sequence[str] | None = None) -> Any:
        where: dict[str, Any] = {"part": {"$eq": part}}
        if projects is not None:
            # Records carry their ticket's project (metadata "project"): Pinecone filters them.
            where["project"] = {"$in": [p.upper() for p in projects]}
        return self._call(
            lambda: self._index.query(
                vector=_values(vec),
                top_k=self.candidates,
                namespace=self.namespace,
                filter=where,
                include_values=True,
                include_metadata=part == "body",
            )
        )

    def _search_one(
        self, text: str, q: Array, h: Array, k: int, projects: Sequence[str] | None = None
    ) -> list[Match]:
        bodies = {m.id: m for m in self._query(q, "body", projects).matches}
        titles = {
            str(m.id).removesuffix(TITLE_SUFFIX): m
            for m in self._query(q, "title", projects).matches
        }
        keys = list(dict.fromkeys([*bodies, *titles]))
        missing = [key for key in keys if key not in bodies]
        missing += [key + TITLE_SUFFIX for key in keys if key not in titles]
        fetched = self._fetch(missing) if missing else {}
        rows: list[tuple[Ticket, list[float], list[float]]] = []
        for key in keys:
            b = bodies.get(key) or fetched.get(key)
            t = titles.get(key) or fetched.get(key + TITLE_SUFFIX)
            if b is None or t is None or not b.metadata:
                continue  # half-written ticket (a concurrent upsert or delete): skip it
            rows.append((ticket_from_metadata(dict(b.metadata)), list(b.values), list(t.values)))
        if not rows:
            return []
        texts = [f"{r[0].title}\n{r[0].description}" for r in rows]
        title_texts = [r[0].title for r in rows]
        with self._lock:
            stats, title_stats = self._stats, self._title_stats
            if stats.n_docs == 0:
                # Nothing in the catalogue yet (Pinecone filled before it existed, or by a
                # deployment on another database): count the candidates themselves.
                stats, title_stats = CorpusStats(), CorpusStats()
                for t, title in zip(texts, title_texts, strict=True):
                    stats.add(t)
                    title_stats.add(title)
            lex_abs = stats.score(text, texts)
            lex_title = title_stats.score(text, title_texts)
        return rank_candidates(
            [r[0] for r in rows],
            np.asarray([r[1] for r in rows], dtype=np.float32),
            np.asarray([r[2] for r in rows], dtype=np.float32),
            q,
            h,
            relative(lex_abs),
            lex_abs,
            self.weights,
            k,
            lex_title,
            # The same rank fusion as the local index, over Pinecone's candidates (its dense
            # leaders; BM25's own leaders elsewhere in the corpus are out of its reach).
            self.fusion,
        )

    def _is_empty(self) -> bool:
        # Pinecone decides what there is to find; the catalogue only feeds BM25's statistics.
        with self._lock:
            try:
                self._catch_up(force=False)
            except Exception:  # the database being down must not stop searching Pinecone
                logger.warning("pinecone %s: catalogue unavailable", self.namespace, exc_info=True)
        return False

    def search_vectors(
        self,
        texts: Sequence[str],
        queries: Array,
        heads: Array,
        top_k: int = 10,
        projects: Sequence[str] | None = None,
    ) -> list[list[Match]]:
        """Ranks with precomputed vectors of the texts and headlines, queries on a few threads;
        with *projects*, a metadata filter keeps other projects' records out."""
        if len(texts) == 1 or self.threads <= 1:
            return [
                self._search_one(t, queries[i], heads[i], top_k, projects)
                for i, t in enumerate(texts)
            ]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            return list(
                pool.map(
                    lambda i: self._search_one(texts[i], queries[i], heads[i], top_k, projects),
                    range(len(texts)),
                )
            )

    def count(self) -> int:
        """Number of tickets in the catalogue's namespace (Pinecone's own count is eventual)."""
        return self.catalogue.count_tickets(self.namespace)

    def version(self) -> str:
        """Changes whenever the contents change: the catalogue's last number for the namespace."""
        with self._lock:
            self._catch_up(force=False)
            return f"{self.namespace}@{self._seq}"

    def labelled(self) -> list[tuple[Ticket, Array]]:
        """Tickets with an issue type and their [body | title] vectors, from the catalogue
        (cached per version): no Pinecone request."""
        ver = self.version()
        with self._lock:
            if self._labelled is not None and self._labelled[0] == ver:
                return self._labelled[1]
            out: list[tuple[Ticket, Array]] = []
            size = 8 * self._dim
            seq = 0
            while True:
                rows = self.catalogue.tickets_since(
                    self.namespace, seq, model=self.embedder.model_id, limit=PAGE
                )
                typed = [
                    r
                    for r in rows
                    if r.ticket is not None
                    and r.ticket.type
                    and r.vectors is not None
                    and len(r.vectors) == size
                ]
                if typed:
                    body, title = decode_vectors([r.vectors or b"" for r in typed], self._dim)
                    both = np.concatenate([body, title], axis=1)
                    out += [(r.ticket, both[j]) for j, r in enumerate(typed) if r.ticket]
                if len(rows) < PAGE:
                    break
                seq = rows[-1].seq
            self._labelled = (ver, out)
            return out
