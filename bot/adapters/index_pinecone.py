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
stored text, with document frequencies from a local sidecar (``CorpusStats``, counted from the
same stored text). Lexical matches outside the dense top-N are therefore not found: the price of
not keeping the corpus locally. The sidecar (``<state_dir>/<namespace>.json``, e.g.
``BOT_DATA_DIR/pinecone/APP.json``) also holds the content hashes (so a re-sync skips unchanged
tickets) and a change counter (``version()``); ``rebuild_sidecar()`` recounts it from Pinecone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import numpy.typing as npt

from bot.adapters.index_local import (
    FusedSearch,
    IndexModelMismatch,
    content_hash,
    rank_candidates,
)
from bot.adapters.lexical import DEFAULT_WEIGHTS, CorpusStats, FusionWeights, relative
from bot.domain.models import Match, Ticket
from bot.domain.ports import Embedder

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
    )


def _record_hash(ticket: Ticket) -> str:
    fields = [ticket.title, ticket.description, ticket.type, ticket.status, ticket.url]
    return hashlib.sha256(json.dumps(fields).encode()).hexdigest()[:32]


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


class PineconeIndex(FusedSearch):
    """``TicketIndex`` on a Pinecone vector index, one namespace per Jira project.

    *index* is a ready ``pinecone.Index`` (tests and callers that built their own); otherwise
    one is opened from *api_key* and *host* (preferred: no control-plane call) or *index_name*.
    """

    def __init__(
        self,
        embedder: Embedder,
        *,
        state_dir: Path,
        namespace: str,
        api_key: str | None = None,
        host: str | None = None,
        index_name: str | None = None,
        index: Any = None,
        weights: FusionWeights = DEFAULT_WEIGHTS,
        candidates: int = 50,
        retries: int = 3,
        backoff: float = 1.0,
        threads: int = 4,
        on_mismatch: Literal["raise", "reset"] = "raise",
    ) -> None:
        if index is None:
            from pinecone import Pinecone

            if not api_key or not (host or index_name):
                raise ValueError("PineconeIndex needs api_key and host or index_name")
            pc = Pinecone(api_key=api_key)
            index = pc.index(host=host) if host else pc.index(name=index_name or "")
        self._index = index
        self.embedder = embedder
        self.namespace = namespace
        self.weights = weights
        self.candidates = candidates
        self.retries = retries
        self.backoff = backoff
        self.threads = threads
        self._lock = threading.RLock()
        self._path = Path(state_dir) / f"{namespace or 'default'}.json"
        self._mtime: int | None = None
        self._labelled: tuple[str, list[tuple[Ticket, Array]]] | None = None
        self._state: dict[str, Any] = {}
        self._stats = CorpusStats()
        with self._lock:
            self._load()
            model = self._state.get("model_id")
            if model is not None and model != embedder.model_id:
                if on_mismatch == "raise":
                    raise IndexModelMismatch(
                        f"Pinecone namespace {namespace!r} holds vectors of {model!r}, the "
                        f"embedder is {embedder.model_id!r}; delete the namespace and re-sync"
                    )
                logger.warning("namespace %s: model changed, deleting its vectors", namespace)
                self._call(lambda: self._index.delete(delete_all=True, namespace=namespace))
                self._state = self._fresh_state()
                self._save()

    # ------------------------------------------------------------------ sidecar

    def _fresh_state(self) -> dict[str, Any]:
        return {
            "model_id": self.embedder.model_id,
            "uid": uuid.uuid4().hex[:12],
            "counter": 0,
            "hashes": {},
            "records": {},
            "stats": CorpusStats().to_json(),
        }

    def _load(self) -> None:
        try:
            st = self._path.stat()
        except FileNotFoundError:
            if not self._state:
                self._state = self._fresh_state()
                self._stats = CorpusStats()
            return
        if st.st_mtime_ns == self._mtime:
            return
        self._state = json.loads(self._path.read_text(encoding="utf-8"))
        self._stats = CorpusStats.from_json(self._state.get("stats", {}))
        self._mtime = st.st_mtime_ns

    def _save(self) -> None:
        self._state["stats"] = self._stats.to_json()
        self._path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._path.with_name(f".{self._path.name}.{uuid.uuid4().hex[:6]}.tmp")
        tmp.write_text(json.dumps(self._state), encoding="utf-8")
        os.replace(tmp, self._path)
        self._mtime = self._path.stat().st_mtime_ns

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

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        """Adds or replaces tickets by key; returns how many were new or changed.

        Unchanged tickets cost nothing; tickets whose only change is status, type or url are
        re-written with their stored vectors (fetched, not re-embedded).
        """
        latest: dict[str, Ticket] = {}
        for t in tickets:
            latest[t.key] = t
        with self._lock:
            self._load()
            hashes: dict[str, str] = self._state["hashes"]
            records: dict[str, str] = self._state["records"]
            embed: list[Ticket] = []
            meta_only: list[Ticket] = []
            for t in latest.values():
                if records.get(t.key) == _record_hash(t):
                    continue
                (meta_only if hashes.get(t.key) == content_hash(t) else embed).append(t)
            if not (embed or meta_only):
                return 0
            old = self._fetch([t.key for t in [*embed, *meta_only] if t.key in hashes])
            # A record that vanished on the server has no vector to reuse: embed it again.
            embed += [t for t in meta_only if t.key not in old]
            meta_only = [t for t in meta_only if t.key in old]
            recs: list[dict[str, Any]] = []
            if embed:
                vecs = np.asarray(
                    self.embedder.embed([t.text() for t in embed] + [t.title for t in embed]),
                    dtype=np.float32,
                )
                n = len(embed)
                for j, t in enumerate(embed):
                    h = content_hash(t)
                    recs.append(
                        {"id": t.key, "values": _values(vecs[j]), "metadata": body_metadata(t, h)}
                    )
                    recs.append(
                        {
                            "id": t.key + TITLE_SUFFIX,
                            "values": _values(vecs[n + j]),
                            "metadata": {"key": t.key, "part": "title"},
                        }
                    )
            for t in meta_only:
                meta = body_metadata(t, content_hash(t))
                recs.append({"id": t.key, "values": list(old[t.key].values), "metadata": meta})
            batches = plan_batches(recs)
            for batch in batches:
                self._call(partial(self._index.upsert, vectors=batch, namespace=self.namespace))
            for t in [*embed, *meta_only]:
                prev = old.get(t.key)
                if prev is not None and prev.metadata:
                    self._stats.remove(stored_text(dict(prev.metadata)))
                self._stats.add(stored_text(body_metadata(t, content_hash(t))))
                hashes[t.key] = content_hash(t)
                records[t.key] = _record_hash(t)
            self._state["counter"] += 1
            self._save()
            logger.info(
                "pinecone %s: %d embedded, %d metadata-only, %d requests",
                self.namespace,
                len(embed),
                len(meta_only),
                len(batches),
            )
            return len(embed) + len(meta_only)

    def delete(self, keys: Sequence[str]) -> None:
        """Removes tickets (both records) by key; unknown keys are ignored."""
        with self._lock:
            self._load()
            known = [k for k in dict.fromkeys(keys) if k in self._state["hashes"]]
            if not known:
                return
            old = self._fetch(known)
            ids = [i for k in known for i in (k, k + TITLE_SUFFIX)]
            for start in range(0, len(ids), DELETE_CHUNK):
                chunk = ids[start : start + DELETE_CHUNK]
                self._call(partial(self._index.delete, ids=chunk, namespace=self.namespace))
            for k in known:
                prev = old.get(k)
                if prev is not None and prev.metadata:
                    self._stats.remove(stored_text(dict(prev.metadata)))
                self._state["hashes"].pop(k, None)
                self._state["records"].pop(k, None)
            self._state["counter"] += 1
            self._save()

    # ------------------------------------------------------------------ reads

    def _query(self, vec: Array, part: str) -> Any:
        return self._call(
            lambda: self._index.query(
                vector=_values(vec),
                top_k=self.candidates,
                namespace=self.namespace,
                filter={"part": {"$eq": part}},
                include_values=True,
                include_metadata=part == "body",
            )
        )

    def _search_one(self, text: str, q: Array, h: Array, k: int) -> list[Match]:
        bodies = {m.id: m for m in self._query(q, "body").matches}
        titles = {str(m.id).removesuffix(TITLE_SUFFIX): m for m in self._query(q, "title").matches}
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
        lex_abs = self._stats.score(text, [f"{r[0].title}\n{r[0].description}" for r in rows])
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
        )

    def _is_empty(self) -> bool:
        with self._lock:
            self._load()
            return not self._state["hashes"]

    def search_vectors(
        self, texts: Sequence[str], queries: Array, heads: Array, top_k: int = 10
    ) -> list[list[Match]]:
        """Ranks with precomputed vectors of the texts and headlines, queries on a few threads."""
        if len(texts) == 1 or self.threads <= 1:
            return [self._search_one(t, queries[i], heads[i], top_k) for i, t in enumerate(texts)]
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            return list(
                pool.map(
                    lambda i: self._search_one(texts[i], queries[i], heads[i], top_k),
                    range(len(texts)),
                )
            )

    def count(self) -> int:
        """Number of tickets indexed (from the sidecar; Pinecone's own count is eventual)."""
        with self._lock:
            self._load()
            return len(self._state["hashes"])

    def version(self) -> str:
        """Changes whenever the contents change (a counter in the sidecar)."""
        with self._lock:
            self._load()
            return f"{self._state['uid']}-{self._state['counter']}"

    def _list_ids(self) -> Iterator[str]:
        token: str | None = None
        while True:
            page = self._call(
                partial(
                    self._index.list_paginated,
                    namespace=self.namespace,
                    limit=100,
                    pagination_token=token,
                )
            )
            for item in page.vectors:
                if item.id is not None:
                    yield item.id
            token = page.pagination.next if page.pagination is not None else None
            if not token:
                return

    def labelled(self) -> list[tuple[Ticket, Array]]:
        """Tickets with an issue type and their body vectors (list + fetch, cached per version)."""
        ver = self.version()
        with self._lock:
            if self._labelled is not None and self._labelled[0] == ver:
                return self._labelled[1]
            ids = [i for i in self._list_ids() if not i.endswith(TITLE_SUFFIX)]
            out: list[tuple[Ticket, Array]] = []
            for _vid, vec in sorted(self._fetch(ids).items()):
                meta = dict(vec.metadata or {})
                if meta.get("type"):
                    out.append((ticket_from_metadata(meta), np.asarray(vec.values, np.float32)))
            self._labelled = (ver, out)
            return out

    def rebuild_sidecar(self) -> int:
        """Recounts hashes and BM25 statistics from what Pinecone holds (after losing the file)."""
        with self._lock:
            ids = [i for i in self._list_ids() if not i.endswith(TITLE_SUFFIX)]
            state = self._fresh_state()
            stats = CorpusStats()
            for vid, vec in self._fetch(ids).items():
                meta = dict(vec.metadata or {})
                stats.add(stored_text(meta))
                state["hashes"][vid] = meta.get("h", "")
                state["records"][vid] = ""
            self._state = state
            self._stats = stats
            self._save()
            return len(ids)
