"""The default ticket index: numpy matrices on local disk, exact search, BM25 fused in.

Layout of the index directory (``BOT_DATA_DIR/index/<namespace>``)::

    CURRENT            "<generation>" or "<generation> <k>": the live state (replaced atomically)
    g<counter>/        meta.json  tickets.jsonl  body.npy  title.npy   (the base)
                       d000001.npz .. d<k>.npz                           (delta segments)

A large write builds a complete new generation in a temporary directory, renames it into place
and then swaps ``CURRENT`` with ``os.replace``. A small write (filing one issue, a sync page)
only writes a delta segment (its tickets with their vectors, or deleted keys) next to the base,
complete before ``CURRENT`` is switched to count it; readers replay segments 1..k over the base,
and other processes catch up by reading only the segments they have not seen. Segments are
merged into a new generation once they hold ``delta_share`` of the base (or
``delta_max_files``). So a reader (or a crash) only ever sees a whole index.
Each ticket has two vectors: its body (title + description) and its title alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from bot.adapters.lexical import (
    DEFAULT_WEIGHTS,
    FusionWeights,
    InvertedIndex,
    headline,
    top_k,
)
from bot.domain.models import Match, Ticket
from bot.domain.ports import Embedder

logger = logging.getLogger(__name__)

FORMAT = 1
QUERY_BLOCK = 256  # queries scored per matrix product in search_many (bounds memory at 100k rows)
# Rows re-scored exactly per query (at least 4 x top_k). The candidate score approximates the
# dense part with one mixed matrix, so keep this generous: re-scoring 256 rows costs ~0.1 ms.
CANDIDATES = 256

Array = npt.NDArray[np.float32]


class IndexModelMismatch(RuntimeError):
    """The index on disk was embedded with another model than the one configured."""


def ticket_text(ticket: Ticket) -> str:
    """The text a ticket is embedded and matched by: title and description."""
    return ticket.text()


def content_hash(ticket: Ticket) -> str:
    """Identifies the embedded text: equal hashes mean the vectors need not be recomputed."""
    return hashlib.sha256(f"{ticket.title}\x00{ticket.description}".encode()).hexdigest()[:32]


HEADLINE_SHARE = 0.7


def embed_queries(embedder: Embedder, texts: Sequence[str]) -> tuple[Array, Array]:
    """Vectors of the texts and of their headlines, in one embedder call."""
    n = len(texts)
    heads = [headline(t) for t in texts]
    # A headline that is most of its text would embed to nearly the text's own vector: reuse that
    # one instead of paying for a second model pass (it halved triage throughput on short posts).
    extra = [
        i
        for i, (t, h) in enumerate(zip(texts, heads, strict=True))
        if h and len(h) < HEADLINE_SHARE * len(t.strip())
    ]
    vecs = np.asarray(embedder.embed(list(texts) + [heads[i] for i in extra]), dtype=np.float32)
    q = vecs[:n]
    h = q.copy()
    if extra:
        h[extra] = vecs[n:]
    return q, h


def build_match(ticket: Ticket, score: float, signals: dict[str, float]) -> Match:
    """A Match carrying the fused score and the signals it was fused from."""
    return Match(
        key=ticket.key,
        title=ticket.title,
        score=float(min(1.0, max(0.0, score))),
        url=ticket.url,
        type=ticket.type,
        status=ticket.status,
        signals={k: round(float(v), 6) for k, v in signals.items()},
    )


def rank_candidates(
    tickets: Sequence[Ticket],
    body: Array,
    title: Array,
    q: Array,
    h: Array,
    lexical: Array,
    lexical_abs: Array,
    weights: FusionWeights,
    k: int,
) -> list[Match]:
    """Every signal computed exactly on candidate rows, fused; the best *k* as Matches."""
    signals = {
        "body": body @ q,
        "title": title @ q,
        "head_body": body @ h,
        "head_title": title @ h,
        "lexical": lexical,
        "lexical_abs": lexical_abs,
    }
    fused = weights.fuse(signals)
    return [
        build_match(tickets[i], float(fused[i]), {n: v[i] for n, v in signals.items()})
        for i in top_k(fused, k)
    ]


class FusedSearch:
    """``search``/``search_many`` of both adapters: embed the texts and headlines, then rank.

    Subclasses provide ``_is_empty`` (refreshing from storage) and ``search_vectors``.
    """

    embedder: Embedder

    def _is_empty(self) -> bool:
        raise NotImplementedError

    def search_vectors(
        self, texts: Sequence[str], queries: Array, heads: Array, top_k: int = 10
    ) -> list[list[Match]]:
        """Ranks with precomputed vectors of the texts and their headlines."""
        raise NotImplementedError

    def search(self, text: str, top_k: int = 10) -> list[Match]:
        """The *top_k* tickets most like *text*, best first, with fused scores in [0, 1]."""
        return self.search_many([text], top_k)[0]

    def search_many(self, texts: Sequence[str], top_k: int = 10) -> list[list[Match]]:
        """``search`` for many texts, embedding them (and their headlines) in one batch."""
        if not texts:
            return []
        if self._is_empty():
            return [[] for _ in texts]
        q, h = embed_queries(self.embedder, texts)
        return self.search_vectors(texts, q, h, top_k)


class _Delta:
    """One small write: tickets (with vectors) added or replaced, or keys removed."""

    def __init__(
        self,
        counter: int,
        tickets: list[Ticket],
        hashes: list[str],
        body: Array,
        title: Array,
        deleted: list[str],
    ) -> None:
        self.counter = counter
        self.tickets = tickets
        self.hashes = hashes
        self.body = body
        self.title = title
        self.deleted = deleted

    @property
    def rows(self) -> int:
        return len(self.tickets) + len(self.deleted)

    def write(self, path: Path, tmp: Path) -> None:
        record = {
            "counter": self.counter,
            "deleted": self.deleted,
            "upserted": [
                {"h": h, "t": t.model_dump(mode="json")}
                for t, h in zip(self.tickets, self.hashes, strict=True)
            ],
        }
        blob = np.frombuffer(json.dumps(record).encode("utf-8"), dtype=np.uint8)
        try:
            with tmp.open("wb") as f:
                np.savez(f, body=self.body, title=self.title, record=blob)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    @classmethod
    def read(cls, path: Path) -> _Delta:
        with np.load(path) as z:
            record = json.loads(z["record"].tobytes().decode("utf-8"))
            body, title = z["body"], z["title"]
        rows = record["upserted"]
        return cls(
            int(record["counter"]),
            [Ticket.model_validate(r["t"]) for r in rows],
            [str(r["h"]) for r in rows],
            np.asarray(body, dtype=np.float32),
            np.asarray(title, dtype=np.float32),
            [str(k) for k in record["deleted"]],
        )


class LocalIndex(FusedSearch):
    """``TicketIndex`` on local files; safe for concurrent use by threads of one process.

    *on_mismatch* decides what happens when the stored vectors came from another embedding model:
    ``"reembed"`` re-embeds the stored tickets (their text is kept), ``"raise"`` raises
    :class:`IndexModelMismatch`.
    """

    delta_share = 0.1  # pending delta rows, as a share of the base, that trigger a merge ...
    delta_min_rows = 256  # ... (but small bases may hold this many rows in deltas) ...
    delta_max_files = 128  # ... or this many delta files (every reload replays them)

    def __init__(
        self,
        directory: Path,
        embedder: Embedder,
        weights: FusionWeights = DEFAULT_WEIGHTS,
        on_mismatch: Literal["reembed", "raise"] = "reembed",
    ) -> None:
        self.dir = Path(directory)
        self.embedder = embedder
        self.weights = weights
        self._lock = threading.RLock()
        self._dim = int(embedder.dim)
        w = weights
        # The candidate stage reads one (rows x dim) matrix mixing body and title as the fused
        # score weighs them, queried with the text/headline mix: half the bytes of both.
        dense_total = w.body + w.title + w.head_body + w.head_title
        self._mix_body = np.float32((w.body + w.head_body) / w.total)
        self._mix_title = np.float32((w.title + w.head_title) / w.total)
        self._mix_q = (w.body + w.title) / dense_total if dense_total else 1.0
        self._uid = uuid.uuid4().hex[:12]
        self._reset()
        with self._lock:
            self._load(on_mismatch)

    def _reset(self) -> None:
        self._counter = 0
        self._loaded: tuple[str, int] | None = None
        self._base_rows = 0
        self._delta_rows = 0
        self._keys: list[str] = []
        self._pos: dict[str, int] = {}
        self._tickets: list[Ticket] = []
        self._hashes: list[str] = []
        self._lex = InvertedIndex()
        self._n = 0
        # Rows [0, _n) are live; spare capacity makes appending one ticket O(1), not a copy.
        # Body and title vectors side by side: the exact re-score gathers a candidate's both.
        self._buf: Array = np.zeros((0, 2 * self._dim), dtype=np.float32)
        self._mix: Array = np.zeros((0, self._dim), dtype=np.float32)
        # Per-query n-row buffers, reused (searches hold the lock).
        self._scratch: Array = np.zeros(0, dtype=np.float32)
        self._dense_out: Array = np.zeros(0, dtype=np.float32)

    @property
    def _vecs(self) -> Array:
        return self._buf[: self._n]

    # ------------------------------------------------------------------ persistence

    def _current(self) -> tuple[str, int] | None:
        # CURRENT holds "<generation>" or "<generation> <number of delta segments>".
        try:
            parts = (self.dir / "CURRENT").read_text(encoding="utf-8").split()
        except FileNotFoundError:
            return None
        if not parts:
            return None
        return parts[0], int(parts[1]) if len(parts) > 1 else 0

    def _set_current(self, gen: str, seq: int) -> None:
        pointer = self.dir / f".CURRENT-{gen}-{seq}"
        pointer.write_text(gen if seq == 0 else f"{gen} {seq}", encoding="utf-8")
        os.replace(pointer, self.dir / "CURRENT")
        self._loaded = (gen, seq)

    def _delta_path(self, gen: str, seq: int) -> Path:
        return self.dir / gen / f"d{seq:06d}.npz"

    def _load(self, on_mismatch: Literal["reembed", "raise"]) -> None:
        # A concurrent merge may delete the generation being read: read CURRENT again then.
        for attempt in range(5):
            try:
                self._load_once(on_mismatch)
                return
            except FileNotFoundError:
                if attempt == 4:
                    raise
                logger.info("index %s changed while loading; retrying", self.dir)

    def _load_once(self, on_mismatch: Literal["reembed", "raise"]) -> None:
        cur = self._current()
        if cur is None:
            return
        gen, seq = cur
        gdir = self.dir / gen
        meta = json.loads((gdir / "meta.json").read_text(encoding="utf-8"))
        tickets: list[Ticket] = []
        hashes: list[str] = []
        with (gdir / "tickets.jsonl").open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    row = json.loads(line)
                    tickets.append(Ticket.model_validate(row["t"]))
                    hashes.append(row["h"])
        deltas = [_Delta.read(self._delta_path(gen, i)) for i in range(1, seq + 1)]
        same_model = (
            meta.get("model_id") == self.embedder.model_id and int(meta["dim"]) == self._dim
        )
        if same_model:
            body, title = np.load(gdir / "body.npy"), np.load(gdir / "title.npy")
            if len(body) != len(tickets) or len(title) != len(tickets):
                raise RuntimeError(f"index at {gdir} is inconsistent; delete it and re-sync")
        elif on_mismatch == "raise":
            raise IndexModelMismatch(
                f"index at {self.dir} was built with {meta.get('model_id')!r} "
                f"(dim {meta.get('dim')}), the embedder is {self.embedder.model_id!r} "
                f"(dim {self._dim}); re-sync or delete the directory"
            )
        else:
            body = title = np.zeros((len(tickets), self._dim), dtype=np.float32)
        self._reset()
        self._uid = str(meta.get("uid", self._uid))
        self._counter = int(meta.get("counter", 0))
        self._set_rows(tickets, hashes, body, title)
        self._base_rows = len(tickets)
        for delta in deltas:
            self._apply(delta)
        self._loaded = (gen, seq)
        if same_model:
            return
        logger.warning(
            "index %s was built with model %s; re-embedding %d tickets with %s",
            self.dir,
            meta.get("model_id"),
            len(self._tickets),
            self.embedder.model_id,
        )
        body, title = self._embed(self._tickets)
        self._set_rows(list(self._tickets), list(self._hashes), body, title)
        self._counter += 1
        self._save()

    def _set_rows(
        self, tickets: list[Ticket], hashes: list[str], body: Array, title: Array
    ) -> None:
        self._tickets = tickets
        self._hashes = hashes
        self._keys = [t.key for t in tickets]
        self._pos = {k: i for i, k in enumerate(self._keys)}
        self._lex = InvertedIndex()
        self._lex.append([ticket_text(t) for t in tickets])
        self._n = 0
        self._buf = np.zeros((0, 2 * self._dim), dtype=np.float32)
        self._mix = np.zeros((0, self._dim), dtype=np.float32)
        self._append_vectors(body, title)

    def _append_vectors(self, body: Array, title: Array) -> None:
        n, m, d = self._n, len(body), self._dim
        if n + m > len(self._buf):
            # Headroom from the first load on: the next filed issue must not copy the matrix.
            cap = int(1.125 * (n + m)) + 64
            buf = np.empty((cap, 2 * d), dtype=np.float32)
            mix = np.empty((cap, d), dtype=np.float32)
            buf[:n], mix[:n] = self._buf[:n], self._mix[:n]
            self._buf, self._mix = buf, mix
        self._n = n + m
        self._set_vectors(slice(n, n + m), body, title)

    def _set_vectors(self, rows: slice | list[int], body: Array, title: Array) -> None:
        d = self._dim
        self._buf[rows, :d] = body
        self._buf[rows, d:] = title
        self._mix[rows] = self._mix_body * body + self._mix_title * title

    def _apply(self, delta: _Delta) -> None:
        """Applies one write to memory: how the writer changes itself and how readers replay it."""
        self._counter = max(self._counter, delta.counter)
        self._delta_rows += delta.rows
        gone = {self._pos[k] for k in delta.deleted if k in self._pos}
        if gone:
            keep = [i for i in range(self._n) if i not in gone]
            m = len(keep)
            self._buf[:m] = self._buf[keep]
            self._mix[:m] = self._mix[keep]
            self._n = m
            self._tickets = [self._tickets[i] for i in keep]
            self._hashes = [self._hashes[i] for i in keep]
            self._keys = [self._keys[i] for i in keep]
            self._pos = {k: i for i, k in enumerate(self._keys)}
            self._lex.keep(keep)
        new: list[int] = []
        for j, (t, h) in enumerate(zip(delta.tickets, delta.hashes, strict=True)):
            i = self._pos.get(t.key)
            if i is None:
                new.append(j)
                continue
            if self._hashes[i] != h:
                self._set_vectors([i], delta.body[j : j + 1], delta.title[j : j + 1])
                self._lex.replace(i, ticket_text(t))
            self._tickets[i], self._hashes[i] = t, h
        if new:
            self._append_vectors(delta.body[new], delta.title[new])
            for j in new:
                t = delta.tickets[j]
                self._pos[t.key] = len(self._keys)
                self._keys.append(t.key)
                self._tickets.append(t)
                self._hashes.append(delta.hashes[j])
            self._lex.append([ticket_text(delta.tickets[j]) for j in new])

    def _write(self, delta: _Delta) -> None:
        """Makes *delta* durable (a small segment, or a merged generation) and applies it."""
        fits = (
            self._loaded is not None
            and self._loaded[1] < self.delta_max_files
            and self._delta_rows + delta.rows
            <= max(self.delta_min_rows, self.delta_share * self._base_rows)
        )
        if not fits:
            self._apply(delta)
            self._save()
            return
        assert self._loaded is not None
        gen, seq = self._loaded
        # The segment is complete on disk before CURRENT names it: a crash leaves either the old
        # state or the new one (an unnamed segment is never read, and is overwritten later).
        delta.write(self._delta_path(gen, seq + 1), self.dir / f".tmp-d-{uuid.uuid4().hex}.npz")
        self._apply(delta)
        self._set_current(gen, seq + 1)

    def _save(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        gen = f"g{self._counter:09d}-{uuid.uuid4().hex[:6]}"
        tmp = self.dir / f".tmp-{gen}"
        tmp.mkdir()
        try:
            np.save(tmp / "body.npy", np.ascontiguousarray(self._vecs[:, : self._dim]))
            np.save(tmp / "title.npy", np.ascontiguousarray(self._vecs[:, self._dim :]))
            with (tmp / "tickets.jsonl").open("w", encoding="utf-8") as f:
                for t, h in zip(self._tickets, self._hashes, strict=True):
                    f.write(json.dumps({"h": h, "t": t.model_dump(mode="json")}) + "\n")
            meta = {
                "format": FORMAT,
                "model_id": self.embedder.model_id,
                "dim": self._dim,
                "uid": self._uid,
                "counter": self._counter,
                "count": len(self._tickets),
            }
            (tmp / "meta.json").write_text(json.dumps(meta), encoding="utf-8")
            os.replace(tmp, self.dir / gen)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._set_current(gen, 0)
        self._base_rows = len(self._tickets)
        self._delta_rows = 0
        for old in self.dir.iterdir():
            if old.name == gen:
                continue
            if old.name.startswith("g") or old.name.startswith(".tmp-"):
                if old.is_dir():
                    shutil.rmtree(old, ignore_errors=True)
                else:
                    old.unlink(missing_ok=True)

    def _refresh(self) -> None:
        # Another process (``ideabot sync-jira``) may have written a newer generation or segment.
        cur = self._current()
        if cur is None or cur == self._loaded:
            return
        if self._loaded is not None and cur[0] == self._loaded[0] and cur[1] > self._loaded[1]:
            gen, seq = self._loaded
            try:
                deltas = [_Delta.read(self._delta_path(gen, i)) for i in range(seq + 1, cur[1] + 1)]
            except FileNotFoundError:
                deltas = None  # merged away meanwhile: load the new generation instead
            if deltas is not None:
                for delta in deltas:
                    self._apply(delta)
                self._loaded = cur
                return
        logger.info("index %s changed on disk; reloading", self.dir)
        self._load("reembed")

    # ------------------------------------------------------------------ writes

    def _embed(self, tickets: Sequence[Ticket]) -> tuple[Array, Array]:
        n = len(tickets)
        if n == 0:
            empty = np.zeros((0, self._dim), dtype=np.float32)
            return empty, empty.copy()
        vecs = np.asarray(
            self.embedder.embed([ticket_text(t) for t in tickets] + [t.title for t in tickets]),
            dtype=np.float32,
        )
        if vecs.shape != (2 * n, self._dim):
            raise ValueError(f"embedder returned shape {vecs.shape}, expected {(2 * n, self._dim)}")
        return vecs[:n], vecs[n:]

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        """Adds or replaces tickets by key; returns how many were new or changed.

        Only tickets whose title or description changed are re-embedded. A small write is
        appended to the index as a delta segment; a large one (or many small ones) rewrites it.
        """
        latest: dict[str, Ticket] = {}
        for t in tickets:
            latest[t.key] = t
        with self._lock:
            self._refresh()
            embed: list[Ticket] = []
            changed_meta: list[Ticket] = []
            n_new = 0
            for t in latest.values():
                i = self._pos.get(t.key)
                if i is None or self._hashes[i] != content_hash(t):
                    embed.append(t)
                    n_new += i is None
                elif self._tickets[i] != t:
                    changed_meta.append(t)
            if not (embed or changed_meta):
                return 0
            body, title = self._embed(embed)
            if changed_meta:
                rows = [self._pos[t.key] for t in changed_meta]
                d = self._dim
                body = np.concatenate([body, self._buf[rows, :d]])
                title = np.concatenate([title, self._buf[rows, d:]])
            changed = embed + changed_meta
            hashes = [content_hash(t) for t in changed]
            self._write(_Delta(self._counter + 1, changed, hashes, body, title, []))
            logger.info(
                "index %s: %d new, %d re-embedded, %d metadata-only",
                self.dir.name,
                n_new,
                len(embed) - n_new,
                len(changed_meta),
            )
            return len(changed)

    def delete(self, keys: Sequence[str]) -> None:
        """Removes tickets by key; unknown keys are ignored."""
        with self._lock:
            self._refresh()
            known = [k for k in dict.fromkeys(keys) if k in self._pos]
            if not known:
                return
            empty = np.zeros((0, self._dim), dtype=np.float32)
            self._write(_Delta(self._counter + 1, [], [], empty, empty, known))

    # ------------------------------------------------------------------ reads

    def _candidates(
        self, approx: Array, lex_abs: Array, k: int
    ) -> tuple[npt.NDArray[np.int64], float]:
        # approx holds the mixed dense score; add the lexical one in place (no new n-row arrays).
        top = float(lex_abs.max()) if len(lex_abs) else 0.0
        scale = 1.0 / top if top > 0 else 0.0
        w = self.weights
        lw = np.float32(w.lexical / w.total * scale)
        if lw:
            scratch = self._scratch[: len(approx)]
            np.multiply(lex_abs, lw, out=scratch)
            approx += scratch
        return top_k(approx, k), scale

    def search_vectors(
        self, texts: Sequence[str], queries: Array, heads: Array, top_k: int = 10
    ) -> list[list[Match]]:
        """Ranks with precomputed vectors of the texts and their headlines (benchmarks use it).

        Candidates come from one pass over the mixed matrix plus BM25 over the postings; every
        signal is then computed exactly on the candidates.
        """
        a = np.float32(self._mix_q)
        mixed = (a * queries + (np.float32(1) - a) * heads).astype(np.float32)
        out: list[list[Match]] = []
        k = max(CANDIDATES, 4 * top_k)
        d = self._dim
        with self._lock:
            n = self._n
            if len(self._scratch) < n:
                self._scratch = np.empty(len(self._buf), dtype=np.float32)
                self._dense_out = np.empty(len(self._buf), dtype=np.float32)
            mix = self._mix[:n]
            for start in range(0, len(texts), QUERY_BLOCK):
                block = mixed[start : start + QUERY_BLOCK]
                if len(block) == 1:
                    dense = np.matmul(mix, block[0], out=self._dense_out[:n]).reshape(1, n)
                else:
                    dense = block @ mix.T
                for j in range(len(block)):
                    i = start + j
                    lex_abs, _ = self._lex.scores(texts[i])
                    cand, scale = self._candidates(dense[j], lex_abs, k)
                    rows = self._buf[cand]
                    out.append(
                        rank_candidates(
                            [self._tickets[c] for c in cand],
                            rows[:, :d],
                            rows[:, d:],
                            queries[i],
                            heads[i],
                            lex_abs[cand] * np.float32(scale),
                            lex_abs[cand],
                            self.weights,
                            top_k,
                        )
                    )
        return out

    def _is_empty(self) -> bool:
        with self._lock:
            self._refresh()
            return not self._keys

    def count(self) -> int:
        """Number of tickets indexed."""
        with self._lock:
            self._refresh()
            return len(self._keys)

    def labelled(self) -> list[tuple[Ticket, Array]]:
        """Tickets with an issue type and a copy of their [body | title] vectors (2 x dim).

        The title half spares the classifier a model pass per ticket title.
        """
        with self._lock:
            self._refresh()
            d2 = 2 * self._dim
            return [(t, self._buf[i, :d2].copy()) for i, t in enumerate(self._tickets) if t.type]

    def version(self) -> str:
        """Changes whenever the contents change (also across processes and re-creation)."""
        with self._lock:
            self._refresh()
            return f"{self._uid}-{self._counter}"

    def get(self, key: str) -> Ticket | None:
        """The stored ticket for *key*, if any."""
        with self._lock:
            i = self._pos.get(key)
            return None if i is None else self._tickets[i]
