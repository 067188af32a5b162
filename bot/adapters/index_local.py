"""The default ticket index: a cache of the ticket catalogue in memory; exact search, BM25 fused.

The database is the only state. Every ticket, and the vectors of its text per embedding model,
live in the catalogue (the ``TicketStore`` port, ``bot.adapters.sql_catalogue``); this process
keeps numpy matrices and BM25 postings built from it and nothing on disk, so replicas never
share a folder and an empty disk only costs the load (``bench/bench_catalogue.py``: a fresh
process with 10,000 tickets in the database is ready in about 3 s, nothing re-embedded; most of
it is BM25 tokenising the texts).

Writes (sync-jira, the ``index`` command, a filed issue) go to the catalogue: the text is
embedded once, its vectors stored by (content hash, model); then the cache catches up. The
cache catches up by sequence number before a search (at most every ``refresh_every`` seconds):
one indexed query that usually returns nothing, and otherwise only the rows written since,
tombstones included. Each ticket has two vectors: its body (title + description) and its title.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from bot.adapters.dense_candidates import MIN_ROWS as PROJECT_FROM
from bot.adapters.dense_candidates import ProjectedRows
from bot.adapters.fusion import DEFAULT_FUSION, Fusion, corpus_ranks, count_above
from bot.adapters.lexical import (
    DEFAULT_WEIGHTS,
    FusionWeights,
    InvertedIndex,
    headline,
    headline_is_cut,
    tokenize,
    top_k,
)
from bot.domain.models import Match, Ticket
from bot.domain.ports import CatalogueRow, Embedder, TicketStore

logger = logging.getLogger(__name__)

PAGE = 2000  # catalogue rows per catch-up query (~6 MB of vectors at dim 384)
QUERY_BLOCK = 256  # queries scored per matrix product in search_many (bounds memory at 100k rows)
# Rows re-scored exactly per query (at least 4 x top_k). The candidate score approximates the
# dense part with one mixed matrix, so keep this generous: re-scoring 256 rows costs ~0.1 ms.
CANDIDATES = 256
# ... plus the best rows of each BM25 field, so rank fusion sees each signal's leaders.
LEXICAL_CANDIDATES = 128
# Rows sampled (evenly) to estimate how far down the corpus a candidate ranks on a signal whose
# leaders it is not among.
SAMPLE_ROWS = 8192
# Tickets embedded per step when re-embedding after a model change (two texts each).
REEMBED_BATCH = 256
# ... embedded this many at a time, so that stopping waits for a piece, not a step.
REEMBED_PIECE = 32
# The re-embedding lease (one replica pays the provider): held this long past each step, so a
# step must take less; a replica that died frees it after that long.
REEMBED_LEASE = 300.0
# How often a replica not holding the lease looks whether the work is done (or the holder died).
REEMBED_POLL = 30.0

Array = npt.NDArray[np.float32]


class IndexModelMismatch(RuntimeError):
    """The stored vectors were embedded with another model than the one configured."""


def ticket_text(ticket: Ticket) -> str:
    """The text a ticket is embedded and matched by: title and description."""
    return ticket.text()


def content_hash(ticket: Ticket) -> str:
    """Identifies the embedded text: equal hashes mean the vectors need not be recomputed."""
    return ticket.content_hash()


def encode_vectors(body: Array, title: Array) -> bytes:
    """One ticket's stored embedding: its body vector, then its title vector (float32)."""
    return np.concatenate([body, title]).astype(np.float32, copy=False).tobytes()


def decode_vectors(blobs: Sequence[bytes], dim: int) -> tuple[Array, Array]:
    """(body, title) matrices of many stored embeddings, decoded in one pass."""
    both = np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), 2, dim)
    return both[:, 0, :], both[:, 1, :]


HEADLINE_SHARE = 0.7


def embed_queries(embedder: Embedder, texts: Sequence[str]) -> tuple[Array, Array]:
    """Vectors of the texts and of their headlines, in one embedder call."""
    n = len(texts)
    heads = [headline(t) for t in texts]
    # A headline that is most of its text would embed to nearly the text's own vector: reuse that
    # one instead of paying for a second model pass (it halved triage throughput on short posts).
    # So is one that is only the first 160 characters of a long unpunctuated paragraph: it says
    # no more than the text does, and costs a model pass all the same.
    extra = [
        i
        for i, (t, h) in enumerate(zip(texts, heads, strict=True))
        if h and len(h) < HEADLINE_SHARE * len(t.strip()) and not headline_is_cut(t, h)
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
        labels=(*ticket.labels, *ticket.components),
    )


DENSE_SIGNALS = ("body", "title", "head_body", "head_title")


def rank_candidates(
    tickets: Sequence[Ticket],
    body: Array,
    title: Array | Callable[[npt.NDArray[np.int64]], Array],
    q: Array,
    h: Array,
    lexical: Array,
    lexical_abs: Array,
    weights: FusionWeights,
    k: int,
    lexical_title: Array | None = None,
    fusion: Fusion | None = None,
    known_ranks: dict[str, Array] | None = None,
    dense_leaders: npt.NDArray[np.bool_] | None = None,
    rows: npt.NDArray[np.int64] | None = None,
    dense_above: npt.NDArray[np.int64] | None = None,
) -> list[Match]:
    """Every signal computed exactly on candidate rows, fused; the best *k* as Matches.

    With *fusion* the candidates are ordered by its reciprocal-rank fusion of the signals'
    rankings among them (``bot.adapters.fusion``); the match's ``score`` stays the weighted mean
    of the raw signals (in [0, 1]: what people are shown and the duplicate rule reads).
    *known_ranks* gives some signals' ranks over the whole corpus instead (see
    ``fusion.corpus_ranks``); *dense_leaders* marks the candidates that lead the corpus on the
    dense score, which then rank before the others on every dense signal. With *rows*, candidate
    ``j`` is ``tickets[rows[j]]`` (only the best *k* are looked up). *dense_above* estimates, per
    candidate, how many rows of the corpus lead it on the candidate stage's dense score: the
    other candidates rank at least that far down on every dense signal.
    *title* may be a function giving the title vectors of some candidates (by position): when
    the fusion orders without the title signals, only the best *k* candidates' are read.
    """
    signals = {
        "body": body @ q,
        "head_body": body @ h,
        "lexical": lexical,
        "lexical_abs": lexical_abs,
    }
    if lexical_title is not None:
        signals["lexical_title"] = lexical_title
    ranked = fusion is not None and all(
        n in signals or n in ("title", "head_title") for n in fusion.weights()
    )
    if callable(title) and not (
        ranked and fusion is not None and not {"title", "head_title"} & set(fusion.weights())
    ):
        title = title(np.arange(len(body), dtype=np.int64))
    if not callable(title):
        signals["title"] = title @ q
        signals["head_title"] = title @ h
    if ranked and fusion is not None:
        known = dict(known_ranks or {})
        if dense_leaders is not None and dense_leaders.any():
            pos = np.arange(len(body))
            for name in fusion.weights():
                if name in DENSE_SIGNALS:
                    v = signals[name]
                    lead = pos[dense_leaders]
                    known[name] = corpus_ranks(
                        pos, v, lead[np.argsort(-v[lead], kind="stable")], dense_above
                    )
        order = fusion.rank_scores(signals, known)
    else:
        order = weights.fuse(signals)
    best = top_k(order, k)
    chosen = {n: v[best] for n, v in signals.items()}
    if callable(title):  # the title signals of the best k only (the fusion did not read them)
        t = title(best)
        chosen["title"], chosen["head_title"] = t @ q, t @ h
    fused = weights.fuse(chosen)
    return [
        build_match(
            tickets[i if rows is None else int(rows[i])],
            float(fused[j]),
            {n: chosen[n][j] for n in signals.keys() | chosen.keys()},
        )
        for j, i in enumerate(best.tolist())
    ]


class FusedSearch:
    """``search``/``search_many`` of both adapters: embed the texts and headlines, then rank.

    Subclasses provide ``_is_empty`` (refreshing from storage) and ``search_vectors``.
    """

    embedder: Embedder

    def _is_empty(self) -> bool:
        raise NotImplementedError

    def search_vectors(
        self,
        texts: Sequence[str],
        queries: Array,
        heads: Array,
        top_k: int = 10,
        projects: Sequence[str] | None = None,
    ) -> list[list[Match]]:
        """Ranks with precomputed vectors of the texts and their headlines."""
        raise NotImplementedError

    def search(
        self, text: str, top_k: int = 10, projects: Sequence[str] | None = None
    ) -> list[Match]:
        """The *top_k* tickets most like *text*, best first, with fused scores in [0, 1];
        with *projects*, only tickets of those Jira projects."""
        return self.search_many([text], top_k, projects)[0]

    def search_many(
        self, texts: Sequence[str], top_k: int = 10, projects: Sequence[str] | None = None
    ) -> list[list[Match]]:
        """``search`` for many texts, embedding them (and their headlines) in one batch."""
        if not texts:
            return []
        if self._is_empty():
            return [[] for _ in texts]
        q, h = embed_queries(self.embedder, texts)
        if projects is None:
            return self.search_vectors(texts, q, h, top_k)
        return self.search_vectors(texts, q, h, top_k, projects)


class CatalogueFollower:
    """Loading and readiness of an index that follows the ticket catalogue (local or Pinecone).

    The subclass holds ``catalogue``, ``namespace``, ``_lock``, ``_warm_lock``, ``_warming`` and
    ``_caught_up``, and implements ``_catch_up``; *_log_name* names it in log lines.
    """

    _log_name = "index"
    catalogue: Any
    namespace: str
    _lock: threading.RLock
    _warm_lock: threading.Lock
    _warming: threading.Thread | None
    _caught_up: bool

    def _catch_up(self, force: bool = True) -> None:
        raise NotImplementedError

    def warm_up(self, background: bool = True) -> None:
        """Catches up with the catalogue now, in a daemon thread when *background*."""
        if not background:
            with self._lock:
                self._catch_up()
            return
        with self._warm_lock:
            if self._warming is not None and self._warming.is_alive():
                return
            self._warming = threading.Thread(
                target=self._warm, name=f"{self._log_name}-warm-{self.namespace}", daemon=True
            )
            self._warming.start()

    def _warm(self) -> None:
        try:
            with self._lock:
                self._catch_up()
        except Exception:  # the next search (or readiness check) tries again
            logger.warning(
                "%s %s: loading from the catalogue failed",
                self._log_name,
                self.namespace,
                exc_info=True,
            )

    def stop(self, timeout: float = 5.0) -> None:
        """Nothing runs in the background but the load, which a stopping process drops."""

    def ready(self) -> bool:
        """True when the database answers and the index has caught up at least once.

        Never waits for the load: before the first catch-up it starts one in the background
        and answers False.
        """
        if not self._caught_up:
            self.warm_up(background=True)
            return False
        try:
            self.catalogue.catalogue_head(self.namespace)
        except Exception:
            logger.warning(
                "%s %s: the catalogue does not answer",
                self._log_name,
                self.namespace,
                exc_info=True,
            )
            return False
        return True


class LocalIndex(CatalogueFollower, FusedSearch):
    """``TicketIndex`` cached in memory from the ticket catalogue; safe for threads of one process.

    *catalogue* is the store's ``TicketStore``; *namespace* the catalogue project (the Jira
    project). Nothing is loaded until first use (or ``warm_up``). When stored tickets have no
    vectors of the configured model (the model changed), *on_mismatch* decides: ``"reembed"``
    embeds them once and stores the vectors for every replica, ``"raise"`` raises
    :class:`IndexModelMismatch`. *refresh_every* bounds how often a search asks the database
    for what other processes wrote (0: before every search).
    """

    def __init__(
        self,
        embedder: Embedder,
        catalogue: TicketStore,
        namespace: str = "default",
        weights: FusionWeights = DEFAULT_WEIGHTS,
        on_mismatch: Literal["reembed", "raise"] = "reembed",
        refresh_every: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
        fusion: Fusion = DEFAULT_FUSION,
        project_from: int = PROJECT_FROM,
        previous: Callable[[str], Embedder | None] | None = None,
        reembed_batch: int = REEMBED_BATCH,
        background: bool = True,
        wall_clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        reembed_lease: float = REEMBED_LEASE,
        reembed_poll: float = REEMBED_POLL,
    ) -> None:
        self.embedder = embedder  # the model of the vectors in memory: queries are embedded by it
        self._target = embedder  # the configured model
        self._previous = previous
        self._reembed_batch = reembed_batch
        self._background = background
        self._chosen = previous is None  # whether the model to serve has been decided
        self._reembedding: threading.Thread | None = None
        self.reembedded = threading.Event()  # set once the configured model's vectors serve
        # The re-embedding lease is dated by the wall clock: replicas share it, not a monotonic one.
        self._wall_clock = wall_clock
        self._lease_for = timedelta(seconds=reembed_lease)
        self._reembed_poll = reembed_poll
        self._lease_token: int | None = (
            None  # this replica's re-embedding lease, while it holds one
        )
        self._stop_reembed = threading.Event()
        self.catalogue = catalogue
        self.namespace = namespace
        self.weights = weights
        self.fusion = fusion
        self.on_mismatch = on_mismatch
        self.refresh_every = refresh_every
        self._clock = clock
        self._lock = threading.RLock()
        self._project_from = project_from
        w = fusion
        # The candidate stage reads one (rows x dim) matrix mixing body and title as the fusion
        # weighs them, queried with the text/headline mix: half the bytes of both.
        dense_total = w.body + w.title + w.head_body + w.head_title
        self._dense_weight = dense_total or 1.0
        self._mix_body = np.float32((w.body + w.head_body) / (dense_total or 1.0))
        self._mix_title = np.float32((w.title + w.head_title) / (dense_total or 1.0))
        self._mix_q = (w.body + w.title) / dense_total if dense_total else 1.0
        self._warming: threading.Thread | None = None
        self._warm_lock = threading.Lock()
        self._reset_cache()

    def _reset_cache(self) -> None:
        """An empty cache for ``self.embedder``'s vectors (the next catch-up loads it)."""
        self._dim = int(self.embedder.dim)
        self._seq = 0  # the catalogue number applied last
        self._caught_up = False
        self._checked_at = float("-inf")
        self._keys: list[str] = []
        self._pos: dict[str, int] = {}
        self._tickets: list[Ticket] = []
        # (projects, seq, rows) -> which rows are in them: one project filter per catalogue state
        self._project_mask: tuple[tuple[frozenset[str], int, int], npt.NDArray[np.bool_]] | None
        self._project_mask = None
        self._hashes: list[str] = []
        self._lex = InvertedIndex()
        self._lex_title = InvertedIndex()  # BM25 over the title field alone
        self._n = 0
        # Rows [0, _n) are live; spare capacity makes appending one ticket O(1), not a copy.
        # Body and title vectors side by side: the exact re-score gathers a candidate's both.
        self._buf: Array = np.zeros((0, 2 * self._dim), dtype=np.float32)
        self._mix: Array = np.zeros((0, self._dim), dtype=np.float32)
        # From 20,000 rows on, the candidate pass reads the mixed rows' PCA projection (1/3 of
        # the bytes); candidates are re-scored exactly either way.
        self._proj = ProjectedRows(self._dim, min_rows=self._project_from)
        # Per-query n-row buffers, reused (searches hold the lock).
        self._scratch: Array = np.zeros(0, dtype=np.float32)
        self._dense_out: Array = np.zeros(0, dtype=np.float32)

    @property
    def _vecs(self) -> Array:
        return self._buf[: self._n]

    # ------------------------------------------------------------------ the cache

    def _catch_up(self, force: bool = True) -> None:
        """Applies what the catalogue holds beyond the last number applied (lock held)."""
        now = self._clock()
        if not force and self._caught_up and now - self._checked_at < self.refresh_every:
            return
        if not self._chosen:
            self._choose_model()  # a database error here is retried at the next catch-up
            self._chosen = True
        first = not self._caught_up
        started = time.perf_counter()
        while True:
            rows = self.catalogue.tickets_since(
                self.namespace, self._seq, model=self.embedder.model_id, limit=PAGE
            )
            if rows:
                self._apply_rows(rows)
            if len(rows) < PAGE:
                break
        self._caught_up = True
        self._checked_at = now
        if first:
            logger.info(
                "index %s: %d tickets loaded from the catalogue in %.2f s",
                self.namespace,
                self._n,
                time.perf_counter() - started,
            )

    def _apply_rows(self, rows: Sequence[CatalogueRow]) -> None:
        live = [r for r in rows if r.ticket is not None]
        size = 2 * self._dim * 4  # float32 body and title vectors
        blobs = [r.vectors if r.vectors and len(r.vectors) == size else None for r in live]
        missing = {r.content_hash: r.ticket for r, b in zip(live, blobs, strict=True) if b is None}
        if missing:
            made = self._embed_missing(missing)
            blobs = [b or made[r.content_hash] for r, b in zip(live, blobs, strict=True)]
        body, title = decode_vectors([b or b"" for b in blobs], self._dim)
        self._apply(
            [r.ticket for r in live if r.ticket is not None],
            [r.content_hash for r in live],
            body,
            title,
            [r.key for r in rows if r.ticket is None],
        )
        self._seq = max(self._seq, rows[-1].seq)
        if self._proj.needs_refit(self._n):
            started = time.perf_counter()
            self._proj.refit(self._mix[: self._n])
            self._proj.resize(len(self._buf))
            logger.info(
                "index %s: candidate projection fitted on %d rows in %.2f s",
                self.namespace,
                self._n,
                time.perf_counter() - started,
            )

    def _embed_missing(self, texts: dict[str, Ticket | None]) -> dict[str, bytes]:
        """Embeds stored texts that have no vectors of this model, and stores the vectors."""
        if self.on_mismatch == "raise":
            raise IndexModelMismatch(
                f"{len(texts)} texts of {self.namespace!r} have no vectors of "
                f"{self.embedder.model_id!r} (dim {self._dim}); re-sync to embed them"
            )
        logger.warning(
            "index %s: embedding %d stored texts that have no vectors of %s (a new model?)",
            self.namespace,
            len(texts),
            self.embedder.model_id,
        )
        hashes = [h for h, t in texts.items() if t is not None]
        body, title = self._embed([t for t in texts.values() if t is not None])
        made = {h: encode_vectors(body[i], title[i]) for i, h in enumerate(hashes)}
        self.catalogue.put_embeddings(self.embedder.model_id, made)
        return made

    # ------------------------------------------------------------------ a model change

    def _choose_model(self) -> None:
        """Serves the stored vectors of the model that covers most live tickets (lock held).

        When that is not the configured model (it changed) and *previous* can build the old
        one, searches keep using the old vectors, queries embedded by the old model, while the
        configured model's vectors are made in the background (``reembed``); then the cache is
        reloaded with them. Otherwise the missing vectors are made at load, as before.
        """
        assert self._previous is not None
        target = self._target.model_id
        models = self.catalogue.embedding_models(self.namespace)
        covered = models.get(target, 0)
        if covered >= self.catalogue.count_tickets(self.namespace):
            return
        best = max(
            (m for m in models if m != target and models[m] > covered),
            key=lambda m: models[m],
            default=None,
        )
        if best is None:
            return
        try:
            old = self._previous(best)
        except Exception:
            logger.warning("index %s: cannot build %s", self.namespace, best, exc_info=True)
            old = None
        if old is None or old.model_id != best:
            logger.warning(
                "index %s: the stored vectors are of %s, which cannot be used for queries; "
                "embedding every text with %s before serving",
                self.namespace,
                best,
                target,
            )
            return
        logger.warning(
            "index %s: %d of %d tickets have vectors of %s, %d of %s: searching %s's while "
            "re-embedding in the background",
            self.namespace,
            models[best],
            self.catalogue.count_tickets(self.namespace),
            best,
            covered,
            target,
            best,
        )
        self.embedder = old
        self._reset_cache()
        if self._background:
            self._reembedding = threading.Thread(
                target=self._reembed_until_done,
                name=f"index-reembed-{self.namespace}",
                daemon=True,
            )
            self._reembedding.start()

    def _reembed_until_done(self) -> None:
        attempt = 0
        while not self._stop_reembed.is_set():
            try:
                self.reembed()
                if self.reembedded.is_set():
                    return
                wait, attempt = self._reembed_poll, 0  # another replica holds the lease
            except Exception:
                # The old vectors keep serving; the work done so far is stored.
                wait = min(300.0, 5.0 * 2**attempt)
                logger.warning(
                    "index %s: re-embedding failed; trying again in %.0f s",
                    self.namespace,
                    wait,
                    exc_info=True,
                )
                attempt = min(attempt + 1, 6)
            self._stop_reembed.wait(wait)

    def stop_reembedding(self, timeout: float = 5.0) -> None:
        """Stops the background re-embedding after its current step, waiting up to *timeout*
        seconds for it; the step's vectors are written and the lease is handed back, so another
        replica goes on at once instead of after the lease (a rolling restart stops the holder)."""
        self._stop_reembed.set()
        thread = self._reembedding
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self.stop_reembedding(timeout)

    def reembed(self) -> int:
        """Makes the configured model's vectors of every stored text that has none, then serves
        them; returns for how many tickets (a body and a title text each) this replica did.

        The work is claimed through a fenced lease in the store, so one replica pays the
        provider: the holder embeds in steps of ``reembed_batch`` tickets, renewing the lease
        before each step and writing each step fenced (a holder that lost the lease stops
        without writing more; an interrupted run resumes from what is stored). Another replica
        returns 0 at once and keeps serving the old vectors until the catalogue holds the new
        model's for every live ticket, or takes the lease over once it has expired.
        """
        target = self._target
        model = target.model_id
        if self.reembedded.is_set():
            return 0
        if self._covered(model):
            self._switch_to_target(0, time.perf_counter())
            return 0
        token = self._hold_lease(model)
        if token is None:
            return 0
        size = 2 * int(target.dim) * 4
        done, seq = 0, 0
        started = time.perf_counter()
        while True:
            rows = self.catalogue.tickets_since(self.namespace, seq, model=model, limit=PAGE)
            todo = {
                r.content_hash: r.ticket
                for r in rows
                if r.ticket is not None and (r.vectors is None or len(r.vectors) != size)
            }
            items = [(h, t) for h, t in todo.items() if t is not None]
            for start in range(0, len(items), self._reembed_batch):
                if self._stop_reembed.is_set():
                    self._release_lease(model, token)
                    return done
                if not self._renew_lease(model, token, {}):
                    return done
                made: dict[str, bytes] = {}
                step = items[start : start + self._reembed_batch]
                # In pieces, so that a stop waits for one piece, not a whole step; what is made
                # is written either way.
                for at in range(0, len(step), REEMBED_PIECE):
                    if self._stop_reembed.is_set():
                        break
                    piece = step[at : at + REEMBED_PIECE]
                    body, title = self._embed([t for _, t in piece], target)
                    made.update(
                        (h, encode_vectors(body[i], title[i])) for i, (h, _) in enumerate(piece)
                    )
                if not self._renew_lease(model, token, made):
                    return done
                done += len(made)
            if len(rows) < PAGE:
                break
            seq = rows[-1].seq
        self._switch_to_target(done, started)
        return done

    def _covered(self, model: str) -> bool:
        """Whether the catalogue holds *model*'s vectors for every live ticket."""
        have = self.catalogue.embedding_models(self.namespace).get(model, 0)
        return have >= self.catalogue.count_tickets(self.namespace)

    def _hold_lease(self, model: str) -> int | None:
        """This replica's re-embedding lease: the one it holds still, or a new one if free."""
        token = self._lease_token
        if token is not None and self._renew_lease(model, token, {}):
            return token
        until = self._wall_clock() + self._lease_for
        token = self.catalogue.lease_reembed(self.namespace, model, self._wall_clock(), until)
        self._lease_token = token
        if token is not None:
            logger.info("index %s: took the lease on re-embedding with %s", self.namespace, model)
        return token

    def _renew_lease(self, model: str, token: int, vectors: dict[str, bytes]) -> bool:
        """Writes *vectors* and renews the lease, fenced by *token*; False once it is lost."""
        until = self._wall_clock() + self._lease_for
        if self.catalogue.put_reembedded(self.namespace, model, token, vectors, until):
            return True
        self._lease_token = None
        logger.warning(
            "index %s: lost the lease on re-embedding with %s; another replica goes on",
            self.namespace,
            model,
        )
        return False

    def _release_lease(self, model: str, token: int) -> None:
        """Hands the lease back (fenced: only if still ours) by making it expire now."""
        try:
            if self.catalogue.put_reembedded(self.namespace, model, token, {}, self._wall_clock()):
                logger.info("index %s: handed back the lease on re-embedding", self.namespace)
        except Exception:  # stopping anyway: the lease then runs out by itself
            logger.warning("index %s: could not hand back the lease", self.namespace)
        self._lease_token = None

    def _switch_to_target(self, done: int, started: float) -> None:
        target = self._target
        with self._lock:
            if self.embedder is not target:
                self.embedder = target
                self._reset_cache()
                self._catch_up()  # texts written meanwhile without its vectors are made here
        self.reembedded.set()
        logger.info(
            "index %s: %d texts re-embedded with %s in %.1f s; now serving its vectors",
            self.namespace,
            done,
            target.model_id,
            time.perf_counter() - started,
        )

    def search_many(
        self, texts: Sequence[str], top_k: int = 10, projects: Sequence[str] | None = None
    ) -> list[list[Match]]:
        """``search`` for many texts, embedding them (and their headlines) in one batch, with
        the model whose vectors are in memory (the old one while re-embedding)."""
        if not texts:
            return []
        if self._is_empty():
            return [[] for _ in texts]
        while True:
            embedder = self.embedder
            q, h = embed_queries(embedder, texts)
            with self._lock:
                # The model switched while the query was embedded: embed it again.
                if self.embedder is embedder:
                    return self.search_vectors(texts, q, h, top_k, projects)

    def _apply(
        self,
        tickets: list[Ticket],
        hashes: list[str],
        body: Array,
        title: Array,
        deleted: list[str],
    ) -> None:
        """Applies one batch of catalogue rows to memory (a key appears at most once)."""
        gone = {self._pos[k] for k in deleted if k in self._pos}
        if gone:
            keep = [i for i in range(self._n) if i not in gone]
            m = len(keep)
            self._buf[:m] = self._buf[keep]
            self._mix[:m] = self._mix[keep]
            self._proj.keep(keep)
            self._n = m
            self._tickets = [self._tickets[i] for i in keep]
            self._hashes = [self._hashes[i] for i in keep]
            self._keys = [self._keys[i] for i in keep]
            self._pos = {k: i for i, k in enumerate(self._keys)}
            self._lex.keep(keep)
            self._lex_title.keep(keep)
        new: list[int] = []
        for j, (t, h) in enumerate(zip(tickets, hashes, strict=True)):
            i = self._pos.get(t.key)
            if i is None:
                new.append(j)
                continue
            if self._hashes[i] != h:
                self._set_vectors([i], body[j : j + 1], title[j : j + 1])
                self._lex.replace(i, ticket_text(t))
                self._lex_title.replace(i, t.title)
            self._tickets[i], self._hashes[i] = t, h
        if new:
            self._append_vectors(body[new], title[new])
            for j in new:
                t = tickets[j]
                self._pos[t.key] = len(self._keys)
                self._keys.append(t.key)
                self._tickets.append(t)
                self._hashes.append(hashes[j])
            self._lex.append([ticket_text(tickets[j]) for j in new])
            self._lex_title.append([tickets[j].title for j in new])

    def _append_vectors(self, body: Array, title: Array) -> None:
        n, m, d = self._n, len(body), self._dim
        if n + m > len(self._buf):
            # Headroom from the first load on: the next filed issue must not copy the matrix.
            cap = int(1.125 * (n + m)) + 64
            buf = np.empty((cap, 2 * d), dtype=np.float32)
            mix = np.empty((cap, d), dtype=np.float32)
            buf[:n], mix[:n] = self._buf[:n], self._mix[:n]
            self._buf, self._mix = buf, mix
            self._proj.resize(cap)
        self._n = n + m
        self._set_vectors(slice(n, n + m), body, title)

    def _set_vectors(self, rows: slice | list[int], body: Array, title: Array) -> None:
        d = self._dim
        self._buf[rows, :d] = body
        self._buf[rows, d:] = title
        self._mix[rows] = self._mix_body * body + self._mix_title * title
        self._proj.set(rows, self._mix[rows])

    # ------------------------------------------------------------------ writes

    def _embed(
        self, tickets: Sequence[Ticket], embedder: Embedder | None = None
    ) -> tuple[Array, Array]:
        embedder = embedder or self.embedder
        n, dim = len(tickets), int(embedder.dim)
        if n == 0:
            empty = np.zeros((0, dim), dtype=np.float32)
            return empty, empty.copy()
        vecs = np.asarray(
            embedder.embed([ticket_text(t) for t in tickets] + [t.title for t in tickets]),
            dtype=np.float32,
        )
        if vecs.shape != (2 * n, dim):
            raise ValueError(f"embedder returned shape {vecs.shape}, expected {(2 * n, dim)}")
        return vecs[:n], vecs[n:]

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        """Adds or replaces tickets by key in the catalogue; returns how many were written.

        A text is embedded only when no vectors of it (its content hash) are stored for this
        model yet; an unchanged ticket costs nothing. The cache then catches up.
        """
        latest: dict[str, Ticket] = {}
        for t in tickets:
            latest[t.key] = t
        with self._lock:
            self._catch_up()
            # While the configured model's vectors are being made, new texts get both models'.
            models = [self.embedder]
            if self._target is not self.embedder:
                models.append(self._target)
            changed: list[Ticket] = []
            new_text: dict[str, Ticket] = {}
            for t in latest.values():
                i = self._pos.get(t.key)
                if i is not None and self._tickets[i] == t:
                    continue
                changed.append(t)
                h = t.content_hash()
                if i is None or self._hashes[i] != h:
                    new_text[h] = t
        if not changed:
            return 0
        # Embedding runs outside the lock: searches go on meanwhile. The catalogue compares
        # again inside its own transaction, so a racing writer cannot make this one wrong.
        todo: list[Ticket] = []
        for embedder in models:
            model = embedder.model_id
            stored = self.catalogue.get_embeddings(model, list(new_text)) if new_text else {}
            todo = [t for h, t in new_text.items() if h not in stored]
            if todo:
                body, title = self._embed(todo, embedder)
                self.catalogue.put_embeddings(
                    model,
                    {
                        t.content_hash(): encode_vectors(body[i], title[i])
                        for i, t in enumerate(todo)
                    },
                )
        written = self.catalogue.put_tickets(self.namespace, changed)
        with self._lock:
            self._catch_up()
        logger.info(
            "index %s: %d written (%d texts embedded, %d reused)",
            self.namespace,
            written,
            len(todo),
            len(new_text) - len(todo),
        )
        return written

    def delete(self, keys: Sequence[str]) -> None:
        """Removes tickets by key (tombstones in the catalogue); unknown keys are ignored."""
        if self.catalogue.delete_tickets(self.namespace, list(keys)):
            with self._lock:
                self._catch_up()

    # ------------------------------------------------------------------ reads

    def _candidates(
        self,
        full: dict[str, Array],
        k: int,
        stride: int,
    ) -> tuple[npt.NDArray[np.int64], float, dict[str, npt.NDArray[np.int64]], dict[str, Array]]:
        """The rows worth scoring exactly: the best *k* by the mixed dense score (``full["dense"]``)
        and the best rows of each BM25 field (rank fusion reads each signal's leaders, whatever
        the others say). Also returns the scale making ``lexical`` relative, each group's leaders
        in order (``dense``, ``lexical``, ``lexical_title``: their ranks over the whole corpus)
        and, per group, every *stride*-th row's score sorted: how far down the corpus the
        other candidates rank is counted on it."""
        # One sort of an 8,192-row sample per signal serves both the leaders' search (a bound
        # instead of a partition of every row) and the counts of rows above each candidate.
        samples = {"dense": np.sort(full["dense"][::stride])}
        leaders = {"dense": top_k(full["dense"], k, samples["dense"], stride)}
        for name in ("lexical", "lexical_title"):
            if getattr(self.fusion, name):
                values = full[name]
                samples[name] = np.sort(values[::stride])
                best = top_k(values, LEXICAL_CANDIDATES, samples[name], stride, above=0.0)
                if len(best):
                    leaders[name] = best
        lex = full["lexical"]
        if "lexical" in leaders:
            top = float(lex[leaders["lexical"][0]])  # the maximum
        else:
            top = float(lex.max()) if len(lex) else 0.0
        scale = 1.0 / top if top > 0 else 0.0
        cand = np.sort(np.concatenate(list(leaders.values())))
        # Sorted and deduplicated (np.unique hashes first: ~4x the time on ~700 rows).
        cand = cand[np.concatenate(([True], cand[1:] != cand[:-1]))] if len(cand) else cand
        return cand, scale, leaders, samples

    def _titles(self, rows: npt.NDArray[np.int64], at: npt.NDArray[np.int64]) -> Array:
        """Title vectors of ``rows[at]`` (lock held)."""
        out: Array = self._buf[rows[at], self._dim : 2 * self._dim]
        return out

    def _in_projects(self, projects: Sequence[str]) -> npt.NDArray[np.bool_]:
        """Which live rows belong to *projects* (lock held); cached until the rows change."""
        wanted = frozenset(p.upper() for p in projects)
        cached = self._project_mask
        if cached is not None and cached[0] == (wanted, self._seq, self._n):
            return cached[1]
        mask = np.fromiter(
            (t.project_key.upper() in wanted for t in self._tickets[: self._n]),
            dtype=np.bool_,
            count=self._n,
        )
        self._project_mask = ((wanted, self._seq, self._n), mask)
        return mask

    def search_vectors(
        self,
        texts: Sequence[str],
        queries: Array,
        heads: Array,
        top_k: int = 10,
        projects: Sequence[str] | None = None,
    ) -> list[list[Match]]:
        """Ranks with precomputed vectors of the texts and their headlines (benchmarks use it).

        Candidates come from one pass over the mixed matrix (or its projection, past 20,000
        rows) plus BM25 over the postings; every signal is then computed exactly on them. With
        *projects*, rows of other projects are never candidates.
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
            keep = self._in_projects(projects) if projects is not None else None
            proj = self._proj
            if proj.active:  # the same order of rows, a per-query constant apart
                mix = proj.rows[:n]
                mixed = mixed @ proj.basis
            for start in range(0, len(texts), QUERY_BLOCK):
                block = mixed[start : start + QUERY_BLOCK]
                if len(block) == 1:
                    # One thread: BLAS splits this memory-bound product over both cores, and
                    # when another process holds one of them the split waits for it (p99
                    # 38 ms vs 15 ms on 100,000 rows at load ~7; einsum's loop is as fast).
                    dense = np.einsum("ij,j->i", mix, block[0], out=self._dense_out[:n])
                    dense = dense.reshape(1, n)
                else:
                    dense = block @ mix.T
                for j in range(len(block)):
                    i = start + j
                    terms = tokenize(texts[i])  # once for both fields
                    lex_abs, _ = self._lex.scores(texts[i], terms=terms)
                    lex_title, _ = self._lex_title.scores(texts[i], terms=terms)
                    if keep is not None:  # other projects' rows are never candidates
                        lex_abs = np.where(keep, lex_abs, np.float32(0))
                        lex_title = np.where(keep, lex_title, np.float32(0))
                        dense[j][~keep] = -np.inf
                    full = {"lexical": lex_abs, "lexical_title": lex_title, "dense": dense[j]}
                    # How many rows beat each candidate, counted on every stride-th row: exact
                    # up to 8,192 rows, within a few per cent of a rank past that.
                    stride = max(1, n // SAMPLE_ROWS)
                    cand, scale, leaders, samples = self._candidates(full, k, stride)
                    if keep is not None:
                        cand = cand[keep[cand]]
                        leaders = {name: r[keep[r]] for name, r in leaders.items()}
                    above = {
                        name: count_above(samples[name], full[name][cand], presorted=True) * stride
                        for name in leaders
                    }
                    known = {
                        name: corpus_ranks(cand, full[name][cand], rows_, above[name])
                        for name, rows_ in leaders.items()
                        if name != "dense"
                    }
                    rows = self._buf[cand, :d]  # body halves; the title halves of the best k only
                    # Every dense leader is a candidate; *cand* is sorted.
                    is_dense_leader = np.zeros(len(cand), dtype=np.bool_)
                    is_dense_leader[np.searchsorted(cand, leaders["dense"])] = True
                    out.append(
                        rank_candidates(
                            self._tickets,
                            rows,
                            partial(self._titles, cand),
                            queries[i],
                            heads[i],
                            lex_abs[cand] * np.float32(scale),
                            lex_abs[cand],
                            self.weights,
                            top_k,
                            lex_title[cand],
                            self.fusion,
                            known,
                            is_dense_leader,
                            cand,
                            above["dense"],
                        )
                    )
        return out

    def _is_empty(self) -> bool:
        with self._lock:
            try:
                self._catch_up(force=False)
            except Exception:
                if not self._caught_up:
                    raise  # nothing to answer from
                # The database is away for a moment: answer from the cache as it stands.
                logger.warning(
                    "index %s: catalogue unavailable; searching the cache",
                    self.namespace,
                    exc_info=True,
                )
            return not self._keys

    def count(self) -> int:
        """Number of tickets indexed."""
        with self._lock:
            self._catch_up()
            return len(self._keys)

    def labelled(self) -> list[tuple[Ticket, Array]]:
        """Tickets with an issue type and a copy of their [body | title] vectors (2 x dim).

        The title half spares the classifier a model pass per ticket title.
        """
        with self._lock:
            self._catch_up()
            if self.embedder is not self._target:
                # Other vectors than the configured model's: a classifier on them would be fed
                # queries of another model. Until re-embedding ends, nothing is labelled.
                return []
            d2 = 2 * self._dim
            return [(t, self._buf[i, :d2].copy()) for i, t in enumerate(self._tickets) if t.type]

    def version(self) -> str:
        """Changes whenever the contents change; equal in every process that caught up as far."""
        with self._lock:
            self._catch_up(force=False)
            if self.embedder is not self._target:
                return f"{self.namespace}@{self._seq}~{self.embedder.model_id}"
            return f"{self.namespace}@{self._seq}"

    def get(self, key: str) -> Ticket | None:
        """The cached ticket for *key*, if any."""
        with self._lock:
            self._catch_up(force=False)
            i = self._pos.get(key)
            return None if i is None else self._tickets[i]
