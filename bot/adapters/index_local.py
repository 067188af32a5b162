"""The default ticket index: numpy matrices on local disk, exact search, BM25 fused in.

Layout of the index directory (``BOT_DATA_DIR/index/<namespace>``)::

    CURRENT            name of the live generation directory (replaced atomically)
    g<counter>/        meta.json  tickets.jsonl  body.npy  title.npy

Every write builds a complete new generation in a temporary directory, renames it into place and
then swaps ``CURRENT`` with ``os.replace``, so a reader (or a crash) only ever sees a whole index.
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
    relative,
    top_k,
)
from bot.domain.models import Match, Ticket
from bot.domain.ports import Embedder

logger = logging.getLogger(__name__)

FORMAT = 1
QUERY_BLOCK = 256  # queries scored per matrix product in search_many (bounds memory at 100k rows)
CANDIDATES = 64  # rows re-scored exactly per query (at least 4 x top_k)

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


class LocalIndex:
    """``TicketIndex`` on local files; safe for concurrent use by threads of one process.

    *on_mismatch* decides what happens when the stored vectors came from another embedding model:
    ``"reembed"`` re-embeds the stored tickets (their text is kept), ``"raise"`` raises
    :class:`IndexModelMismatch`.
    """

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
        self._keys: list[str] = []
        self._pos: dict[str, int] = {}
        self._tickets: list[Ticket] = []
        self._hashes: list[str] = []
        # Body and title vectors side by side in one matrix: a query reads it in one pass.
        self._vecs: Array = np.zeros((0, 2 * self._dim), dtype=np.float32)
        self._lex = InvertedIndex()
        self._uid = uuid.uuid4().hex[:12]
        self._counter = 0
        self._loaded_gen: str | None = None
        with self._lock:
            self._load(on_mismatch)

    # ------------------------------------------------------------------ persistence

    def _current(self) -> str | None:
        try:
            return (self.dir / "CURRENT").read_text(encoding="utf-8").strip() or None
        except FileNotFoundError:
            return None

    def _load(self, on_mismatch: Literal["reembed", "raise"]) -> None:
        gen = self._current()
        if gen is None:
            return
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
        self._uid = str(meta.get("uid", self._uid))
        self._counter = int(meta.get("counter", 0))
        self._loaded_gen = gen
        self._set_tickets(tickets, hashes)
        same_model = (
            meta.get("model_id") == self.embedder.model_id and int(meta["dim"]) == self._dim
        )
        if same_model:
            body, title = np.load(gdir / "body.npy"), np.load(gdir / "title.npy")
            if len(body) != len(tickets) or len(title) != len(tickets):
                raise RuntimeError(f"index at {gdir} is inconsistent; delete it and re-sync")
            self._vecs = np.concatenate([body, title], axis=1)
            return
        if on_mismatch == "raise":
            raise IndexModelMismatch(
                f"index at {self.dir} was built with {meta.get('model_id')!r} "
                f"(dim {meta.get('dim')}), the embedder is {self.embedder.model_id!r} "
                f"(dim {self._dim}); re-sync or delete the directory"
            )
        logger.warning(
            "index %s was built with model %s; re-embedding %d tickets with %s",
            self.dir,
            meta.get("model_id"),
            len(tickets),
            self.embedder.model_id,
        )
        self._vecs = np.concatenate(self._embed(tickets), axis=1)
        self._counter += 1
        self._save()

    def _set_tickets(self, tickets: list[Ticket], hashes: list[str]) -> None:
        self._tickets = tickets
        self._hashes = hashes
        self._keys = [t.key for t in tickets]
        self._pos = {k: i for i, k in enumerate(self._keys)}
        self._lex = InvertedIndex()
        self._lex.append([ticket_text(t) for t in tickets])

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
        pointer = self.dir / f".CURRENT-{gen}"
        pointer.write_text(gen, encoding="utf-8")
        os.replace(pointer, self.dir / "CURRENT")
        self._loaded_gen = gen
        for old in self.dir.iterdir():
            if old.name != gen and (old.name.startswith("g") or old.name.startswith(".tmp-")):
                shutil.rmtree(old, ignore_errors=True)

    def _refresh(self) -> None:
        # Another process (``ideabot sync-jira``) may have written a newer generation.
        gen = self._current()
        if gen is not None and gen != self._loaded_gen:
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

        Only tickets whose title or description changed are re-embedded.
        """
        latest: dict[str, Ticket] = {}
        for t in tickets:
            latest[t.key] = t
        with self._lock:
            self._refresh()
            new: list[Ticket] = []
            changed_text: list[Ticket] = []
            changed_meta: list[Ticket] = []
            for t in latest.values():
                i = self._pos.get(t.key)
                if i is None:
                    new.append(t)
                elif self._hashes[i] != content_hash(t):
                    changed_text.append(t)
                elif self._tickets[i] != t:
                    changed_meta.append(t)
            if not (new or changed_text or changed_meta):
                return 0
            body, title = self._embed(changed_text + new)
            for j, t in enumerate(changed_text):
                i = self._pos[t.key]
                self._vecs[i, : self._dim] = body[j]
                self._vecs[i, self._dim :] = title[j]
                self._tickets[i] = t
                self._hashes[i] = content_hash(t)
                self._lex.replace(i, ticket_text(t))
            for t in changed_meta:
                self._tickets[self._pos[t.key]] = t
            if new:
                k = len(changed_text)
                added = np.concatenate([body[k:], title[k:]], axis=1)
                self._vecs = np.concatenate([self._vecs, added])
                for t in new:
                    self._pos[t.key] = len(self._keys)
                    self._keys.append(t.key)
                    self._tickets.append(t)
                    self._hashes.append(content_hash(t))
                self._lex.append([ticket_text(t) for t in new])
            self._counter += 1
            self._save()
            n = len(new) + len(changed_text) + len(changed_meta)
            logger.info(
                "index %s: %d new, %d re-embedded, %d metadata-only",
                self.dir.name,
                len(new),
                len(changed_text),
                len(changed_meta),
            )
            return n

    def delete(self, keys: Sequence[str]) -> None:
        """Removes tickets by key; unknown keys are ignored."""
        with self._lock:
            self._refresh()
            gone = {self._pos[k] for k in keys if k in self._pos}
            if not gone:
                return
            keep = [i for i in range(len(self._keys)) if i not in gone]
            self._vecs = self._vecs[keep]
            self._tickets = [self._tickets[i] for i in keep]
            self._hashes = [self._hashes[i] for i in keep]
            self._keys = [self._keys[i] for i in keep]
            self._pos = {k: i for i, k in enumerate(self._keys)}
            self._lex.keep(keep)
            self._counter += 1
            self._save()

    # ------------------------------------------------------------------ reads

    def _rank(self, text: str, q: Array, h: Array, approx_dense: Array, top: int) -> list[Match]:
        # Candidates by the linear score (the fused score without clipping negative cosines, a
        # lower bound of it), then every signal computed exactly on the candidates only.
        lex_abs, _ = self._lex.scores(text)
        lex = relative(lex_abs)
        w = self.weights
        approx = approx_dense + (w.lexical / w.total) * lex
        cand = top_k(approx, max(CANDIDATES, 4 * top))
        d = self._dim
        body, title = self._vecs[cand, :d], self._vecs[cand, d:]
        signals = {
            "body": body @ q,
            "title": title @ q,
            "head_body": body @ h,
            "head_title": title @ h,
            "lexical": lex[cand],
            "lexical_abs": lex_abs[cand],
        }
        fused = w.fuse(signals)
        return [
            build_match(
                self._tickets[cand[i]], float(fused[i]), {k: v[i] for k, v in signals.items()}
            )
            for i in top_k(fused, top)
        ]

    def search(self, text: str, top_k: int = 10) -> list[Match]:
        """The *top_k* tickets most like *text*, best first, with fused scores in [0, 1]."""
        return self.search_many([text], top_k)[0]

    def search_many(self, texts: Sequence[str], top_k: int = 10) -> list[list[Match]]:
        """``search`` for many texts, embedding them (and their headlines) in one batch."""
        if not texts:
            return []
        with self._lock:
            self._refresh()
            if not self._keys:
                return [[] for _ in texts]
        q, h = embed_queries(self.embedder, texts)
        return self.search_vectors(texts, q, h, top_k)

    def search_vectors(
        self, texts: Sequence[str], queries: Array, heads: Array, top_k: int = 10
    ) -> list[list[Match]]:
        """Ranks with precomputed vectors of the texts and their headlines (benchmarks use it)."""
        w = self.weights
        # One combined query row per text, so that the dense part is one pass over the matrix.
        combined = np.concatenate(
            [w.body * queries + w.head_body * heads, w.title * queries + w.head_title * heads],
            axis=1,
        ).astype(np.float32) / np.float32(w.total)
        out: list[list[Match]] = []
        with self._lock:
            for start in range(0, len(texts), QUERY_BLOCK):
                block = combined[start : start + QUERY_BLOCK]
                dense = self._vecs @ block[0] if len(block) == 1 else block @ self._vecs.T
                dense = dense.reshape(len(block), -1)
                for j in range(len(block)):
                    i = start + j
                    out.append(self._rank(texts[i], queries[i], heads[i], dense[j], top_k))
        return out

    def count(self) -> int:
        """Number of tickets indexed."""
        with self._lock:
            self._refresh()
            return len(self._keys)

    def labelled(self) -> list[tuple[Ticket, Array]]:
        """Tickets with an issue type and a copy of their body vectors."""
        with self._lock:
            self._refresh()
            d = self._dim
            return [(t, self._vecs[i, :d].copy()) for i, t in enumerate(self._tickets) if t.type]

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
