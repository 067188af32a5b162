"""The offline analyzer: classifies posts with a small model learnt from the team's own backlog.

Kind: multinomial logistic regression (numpy only) over the sentence embeddings of the post and of
its headline (first line; a ticket's title) joined with hashed TF-IDF word uni/bigrams. It is
trained on the index's labelled tickets (Jira issue type mapped to a kind) once there are enough
of them, and on the project's own examples otherwise. The project's ``other`` examples (chit-chat,
thanks, announcements) are always mixed in, since a backlog never holds them. Title, summary and
labels are extracted from the post text, not generated.

onnxruntime is never imported here: the embedder is injected.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bot.adapters.extract import (
    MAX_WORK_CHARS,
    bucket,
    has_words,
    hashed_counts,
    keyword_labels,
    slack_to_text,
    title_and_summary,
)
from bot.adapters.index_local import embed_queries
from bot.domain.models import KINDS, Analysis, Kind, Post, Ticket
from bot.domain.ports import Embedder, TicketIndex

logger = logging.getLogger(__name__)

EXAMPLES_PATH = Path(__file__).resolve().parent.parent / "examples" / "kinds.jsonl"
# Code blocks are not read, but that a post has one (a stack trace, a config) is a hint to its kind.
CODE_MARKER = " codeblock "
LABEL_CHARS = 3000

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Hyper:
    """Knobs of the classifier, chosen by measurement (bench/eval_kinds.py; dense_scale, head_scale
    and l2 by its 5-fold cross-validation on the dev set)."""

    hash_dim: int = 1 << 18
    # Relative scale of the embedding block against the (unit-norm) tf-idf block.
    dense_scale: float = 0.25
    # Scale of the headline embedding relative to the body embedding; 0 skips the headline pass.
    head_scale: float = 1.0
    l2: float = 3e-4
    iters: int = 300
    # Hashed n-grams seen in fewer training texts than this carry no signal that generalises.
    min_df: int = 2
    feature_chars: int = 2000
    embed_chars: int = 1000
    # Weight of one own example relative to one backlog ticket, before classes are balanced.
    own_weight: float = 2.0
    # The first words of a post count twice (as marked features): that is where its kind shows.
    lead: int = 20
    # A backlog is capped per kind so that retraining stays within seconds on 2 cores.
    max_per_kind: int = 2000


@dataclass(frozen=True)
class _Sparse:
    """A sparse matrix as (row, column, value) triples sorted by row: X @ W and X.T @ G with
    numpy's take/reduceat, so no scipy is needed."""

    rows: I64
    cols: I64
    vals: F32
    n: int

    def __post_init__(self) -> None:
        # Where each row's run of triples starts: computed once, used at every iteration.
        starts = (
            np.flatnonzero(np.r_[True, self.rows[1:] != self.rows[:-1]])
            if len(self.rows)
            else self.rows
        )
        object.__setattr__(self, "_starts", starts)
        object.__setattr__(self, "_present", self.rows[starts])

    def dot(self, w_t: F32) -> F32:
        """(X @ W).T for W given transposed, shape (classes, columns)."""
        out = np.zeros((w_t.shape[0], self.n), dtype=np.float32)
        if len(self.rows):
            starts: I64 = self._starts  # type: ignore[attr-defined]
            contrib = np.take(w_t, self.cols, axis=1)
            contrib *= self.vals
            out[:, self._present] = np.add.reduceat(contrib, starts, axis=1)  # type: ignore[attr-defined]
        return out

    def transpose(self, m: int) -> _Sparse:
        """X.T, X having *m* columns: X.T @ G is then ``.transpose(m).dot(G.T)``, as fast as
        X @ W."""
        order = np.argsort(self.cols, kind="stable")
        return _Sparse(self.cols[order], self.rows[order], self.vals[order], m)


def _sparse(counts: Sequence[dict[int, float]], weight: F32) -> _Sparse:
    """Rows of tf x idf, L2-normalised; columns whose *weight* is 0 are dropped."""
    rows: list[int] = []
    cols: list[int] = []
    vals: list[float] = []
    for i, row in enumerate(counts):
        keys = [k for k in row if weight[k] > 0]
        if not keys:
            continue
        v = np.fromiter((row[k] for k in keys), dtype=np.float32, count=len(keys)) * weight[keys]
        v /= max(float(np.linalg.norm(v)), 1e-12)
        rows.extend([i] * len(keys))
        cols.extend(keys)
        vals.extend(v.tolist())
    return _Sparse(
        np.asarray(rows, dtype=np.int64),
        np.asarray(cols, dtype=np.int64),
        np.asarray(vals, dtype=np.float32),
        len(counts),
    )


def _softmax_t(z: F32) -> F32:
    """Softmax over axis 0 (classes are rows)."""
    e = np.exp(z - z.max(axis=0, keepdims=True))
    out: F32 = e / e.sum(axis=0, keepdims=True)
    return out


@dataclass
class _Model:
    kinds: tuple[Kind, ...]
    mean: F32
    scale: F32  # per dense column
    w_dense: F32  # (classes, dim)
    w_sparse: F32  # (classes, hash_dim)
    bias: F32
    idf: F32  # 0 for columns not used
    hyper: Hyper
    source: str
    trained_on: int

    def proba(self, dense: F32, counts: Sequence[dict[int, float]]) -> F32:
        """Class probabilities, shape (len(counts), classes)."""
        x = (np.asarray(dense, dtype=np.float32) - self.mean) * self.scale
        z = self.w_dense @ x.T + _sparse(counts, self.idf).dot(self.w_sparse) + self.bias[:, None]
        return _softmax_t(z).T

    def idf_of(self, word: str) -> float:
        """How distinctive *word* was in the training texts (unseen words count as rare)."""
        v = float(self.idf[bucket(word, self.hyper.hash_dim)])
        return v if v > 0 else self.max_idf

    @property
    def max_idf(self) -> float:
        return float(self.idf.max()) if self.idf.size else 1.0


def train(
    dense: F32,
    counts: Sequence[dict[int, float]],
    labels: Sequence[Kind],
    weights: Sequence[float],
    hyper: Hyper,
    source: str,
    head_dim: int = 0,
) -> _Model:
    """Fits class-balanced multinomial logistic regression (L2) by Nesterov-accelerated gradient
    descent over [centred embedding | hashed tf-idf]. The last *head_dim* columns of *dense* are
    the headline embedding, scaled by ``hyper.head_scale`` relative to the rest."""
    kinds = tuple(k for k in KINDS if k in set(labels))
    index = {k: i for i, k in enumerate(kinds)}
    y = np.asarray([index[k] for k in labels], dtype=np.int64)
    n, kk = len(y), len(kinds)
    sw = np.asarray(weights, dtype=np.float64)
    sw = sw / np.bincount(y, weights=sw, minlength=kk)[y]
    sw = (sw / sw.sum()).astype(np.float32)

    df = np.zeros(hyper.hash_dim, dtype=np.float32)
    for row in counts:
        df[list(row)] += 1.0
    idf = np.where(
        df >= min(hyper.min_df, max(1, n // 50)), np.log((1.0 + n) / (1.0 + df)) + 1.0, 0.0
    ).astype(np.float32)
    full = _sparse(counts, idf)
    used, compact = np.unique(full.cols, return_inverse=True)
    xs = _Sparse(full.rows, compact.astype(np.int64), full.vals, n)
    m = len(used)
    xt = xs.transpose(m)
    mean = (np.asarray(dense, dtype=np.float32) * sw[:, None]).sum(axis=0)
    scale = _dense_scale(dense.shape[1], head_dim, hyper)
    xd = (np.asarray(dense, dtype=np.float32) - mean) * scale
    onehot_t = np.eye(kk, dtype=np.float32)[:, y]

    # Step 1/L, L bounding the loss's curvature: 1/2 * the largest eigenvalue of the weighted Gram
    # matrix of [dense | 1] (power iteration) plus 1/2 for the unit-norm sparse rows.
    xb = np.concatenate([xd, np.ones((n, 1), dtype=np.float32)], axis=1)
    v = np.ones(xb.shape[1], dtype=np.float32)
    lam = 1.0
    for _ in range(30):
        u = xb.T @ (sw * (xb @ v))
        lam = float(np.linalg.norm(u)) / max(float(np.linalg.norm(v)), 1e-12)
        v = u / max(float(np.linalg.norm(u)), 1e-12)
    step = np.float32(1.0 / (0.5 * (lam + 1.0) + hyper.l2))
    l2 = np.float32(hyper.l2)

    wd = np.zeros((kk, xd.shape[1]), dtype=np.float32)
    ws = np.zeros((kk, m), dtype=np.float32)
    b = np.zeros(kk, dtype=np.float32)
    pd, ps, pb = wd, ws, b
    for t in range(1, hyper.iters + 1):
        mom = np.float32((t - 1) / (t + 2))
        yd, ys, yb = wd + mom * (wd - pd), ws + mom * (ws - ps), b + mom * (b - pb)
        p = _softmax_t(yd @ xd.T + xs.dot(ys) + yb[:, None])
        g = (p - onehot_t) * sw
        pd, ps, pb = wd, ws, b
        wd = np.asarray(yd - step * (g @ xd + l2 * yd), np.float32)
        ws = np.asarray(ys - step * (xt.dot(g) + l2 * ys), np.float32)
        b = np.asarray(yb - step * g.sum(axis=1), np.float32)
    w_sparse = np.zeros((kk, hyper.hash_dim), dtype=np.float32)
    w_sparse[:, used] = ws
    return _Model(kinds, mean, scale, wd, w_sparse, b, idf, hyper, source, n)


def _dense_scale(width: int, head_dim: int, hyper: Hyper) -> F32:
    """Column scales of [body embedding | headline embedding (the last *head_dim* columns)]."""
    scale = np.full(width, hyper.dense_scale, dtype=np.float32)
    if head_dim:
        scale[width - head_dim :] *= np.float32(hyper.head_scale)
    return scale


@dataclass(frozen=True)
class _Examples:
    kinds: list[Kind]
    vecs: F32
    counts: list[dict[int, float]]


def load_examples(path: Path) -> list[tuple[str, Kind]]:
    """Reads ``{"text", "kind"}`` lines; skips blank lines, rejects unknown kinds."""
    out: list[tuple[str, Kind]] = []
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            kind = row["kind"]
            if kind not in KINDS:
                raise ValueError(f"{path}:{n}: unknown kind {kind!r}")
            out.append((str(row["text"]), kind))
    return out


class OfflineAnalyzer:
    """The ``Analyzer`` used when no LLM is configured.

    *type_kinds* maps lower-case Jira issue type names to kinds. With at least *min_labelled*
    labelled tickets of two or more kinds in *index*, the classifier learns from them (plus the
    project's own examples); otherwise from the project's examples alone. It retrains lazily when
    ``index.version()`` changes: one caller pays for the retraining while concurrent callers keep
    using the previous model. Safe to share between threads.
    """

    name = "offline"

    def __init__(
        self,
        embedder: Embedder,
        index: TicketIndex | None = None,
        type_kinds: dict[str, str] | None = None,
        min_labelled: int = 30,
        examples_path: Path | None = None,
        hyper: Hyper | None = None,
    ) -> None:
        self.embedder = embedder
        self.index = index
        self.type_kinds: dict[str, Kind] = {
            k.strip().lower(): v for k, v in (type_kinds or {}).items() if v in KINDS
        }
        self.min_labelled = min_labelled
        self.examples_path = examples_path or EXAMPLES_PATH
        self.hyper = hyper or Hyper()
        self._lock = threading.Lock()
        self._own: _Examples | None = None
        self._cold: _Model | None = None
        self._model: _Model | None = None
        self._version: str | None = None
        self._titles: dict[str, F32] = {}

    # ------------------------------------------------------------------ features

    def _features(self, texts: Sequence[str]) -> tuple[F32, list[dict[int, float]]]:
        """[Embedding | headline embedding] and hashed n-gram counts of already prepared texts.

        One embedder call: headlines are embedded exactly as the index embeds a query's headline
        (``embed_queries``), so a caching embedder serves triage's search too; a headline that is
        most of its text reuses the text's vector instead of costing a second pass.
        """
        h = self.hyper
        cut = [t[: h.embed_chars] for t in texts]
        if h.head_scale:
            body, head = embed_queries(self.embedder, cut)
        else:
            body = np.asarray(self.embedder.embed(cut), dtype=np.float32)
            head = body
        vecs = np.concatenate([body, head], axis=1)
        return vecs, hashed_counts([t[: h.feature_chars] for t in texts], h.hash_dim, h.lead)

    def _title_vectors(self, tickets: Sequence[Ticket], body: F32) -> F32:
        """Embeddings of the tickets' titles (the index's title vectors, when it has them).

        Kept between retrainings, so only new or re-titled tickets cost a model pass.
        """
        dim = self.embedder.dim
        if not self.hyper.head_scale:
            return body
        cache = self._titles
        todo = sorted({t.title for t in tickets if t.title and t.title not in cache})
        fresh: dict[str, F32] = dict(cache)
        if todo:
            vecs = np.asarray(self.embedder.embed(todo), dtype=np.float32).reshape(-1, dim)
            fresh.update(zip(todo, vecs, strict=True))
        out = body.copy()
        for i, t in enumerate(tickets):
            if t.title:
                out[i] = fresh[t.title]
        # Forget titles no longer in the backlog, so the cache stays the backlog's size.
        self._titles = {t.title: fresh[t.title] for t in tickets if t.title}
        return out

    @staticmethod
    def _prepare(text: str) -> str:
        return slack_to_text(text, MAX_WORK_CHARS, code=CODE_MARKER)

    def embedding_text(self, text: str) -> str:
        """The exact string this analyzer embeds for *text*.

        Triage searches the index with it, so the (cached) embedding is computed once per post.
        """
        return self._prepare(text)[: self.hyper.embed_chars]

    # ------------------------------------------------------------------ training

    def _own_examples(self) -> _Examples:
        if self._own is None:
            rows = load_examples(self.examples_path)
            vecs, counts = self._features([self._prepare(t) for t, _ in rows])
            self._own = _Examples([k for _, k in rows], vecs, counts)
        return self._own

    def _train_cold(self) -> _Model:
        if self._cold is None:
            own = self._own_examples()
            self._cold = train(
                own.vecs,
                own.counts,
                own.kinds,
                [1.0] * len(own.kinds),
                self.hyper,
                "examples",
                head_dim=self.embedder.dim,
            )
            logger.info("offline classifier trained on %d own examples", len(own.kinds))
        return self._cold

    def _train_backlog(self, labelled: Sequence[tuple[Ticket, F32]]) -> _Model | None:
        dim = self.embedder.dim
        per_kind: dict[Kind, list[tuple[Ticket, F32]]] = {}
        for ticket, vec in labelled:
            kind = self.type_kinds.get((ticket.type or "").strip().lower())
            # An index may hand out [body | title] vectors; only the body one is required.
            if kind is not None and vec is not None and len(vec) in (dim, 2 * dim):
                per_kind.setdefault(kind, []).append((ticket, vec))
        usable = sum(len(v) for v in per_kind.values())
        if usable < self.min_labelled or len(per_kind) < 2:
            logger.info(
                "offline classifier: %d labelled tickets in %d kinds, need %d in 2; "
                "learning from own examples",
                usable,
                len(per_kind),
                self.min_labelled,
            )
            return None
        picked: list[tuple[Ticket, F32, Kind]] = []
        for kind, items in per_kind.items():
            if len(items) > self.hyper.max_per_kind:
                # Keep the most recently updated tickets; undated ones count as oldest.
                items = sorted(
                    items, key=lambda tv: (tv[0].updated is not None, tv[0].updated or 0, tv[0].key)
                )[-self.hyper.max_per_kind :]
            picked.extend((t, v, kind) for t, v in items)
        own = self._own_examples()
        texts = [self._prepare(t.text())[: self.hyper.feature_chars] for t, _, _ in picked]
        body = np.asarray([v[:dim] for _, v, _ in picked], np.float32)
        head = body.copy()
        given = [i for i, (_, v, _) in enumerate(picked) if len(v) == 2 * dim]
        if given:
            head[given] = np.asarray([picked[i][1][dim:] for i in given], np.float32)
        rest = [i for i in range(len(picked)) if len(picked[i][1]) == dim]
        if rest:
            head[rest] = self._title_vectors([picked[i][0] for i in rest], body[rest])
        dense = np.concatenate([np.concatenate([body, head], axis=1), own.vecs])
        counts = hashed_counts(texts, self.hyper.hash_dim, self.hyper.lead) + own.counts
        labels = [k for _, _, k in picked] + own.kinds
        weights = [1.0] * len(picked) + [self.hyper.own_weight] * len(own.kinds)
        model = train(dense, counts, labels, weights, self.hyper, "backlog", head_dim=dim)
        logger.info(
            "offline classifier trained on %d labelled tickets (%s) and %d own examples",
            len(picked),
            ", ".join(f"{k}={len(v)}" for k, v in sorted(per_kind.items())),
            len(own.kinds),
        )
        return model

    def _current(self) -> _Model:
        if self.index is None:
            if self._cold is not None:
                return self._cold
            with self._lock:
                return self._train_cold()
        try:
            version = self.index.version()
        except Exception:  # an unreachable index must not stop triage
            logger.warning("offline classifier: index version unavailable", exc_info=True)
            with self._lock:
                return self._model or self._train_cold()
        model = self._model
        if model is not None and version == self._version:
            return model
        # Somebody else is retraining: keep serving with the model we have.
        if not self._lock.acquire(blocking=model is None):
            return model  # type: ignore[return-value]
        try:
            if self._model is not None and version == self._version:
                return self._model
            try:
                fresh = self._train_backlog(self.index.labelled())
            except Exception:
                logger.warning(
                    "offline classifier: learning from the backlog failed", exc_info=True
                )
                fresh = None
            self._model, self._version = fresh or self._train_cold(), version
            return self._model
        finally:
            self._lock.release()

    @property
    def source(self) -> str:
        """``backlog`` or ``examples``: what the classifier learnt from (trains first if needed)."""
        return self._current().source

    # ------------------------------------------------------------------ analysis

    def analyze(self, post: Post) -> Analysis:
        """Classifies and summarises one post."""
        return self.analyze_many([post])[0]

    def analyze_many(self, posts: Sequence[Post]) -> list[Analysis]:
        """Analyses *posts* with one batched embedding call; results in the same order."""
        prepared = [self._prepare(p.text) for p in posts]
        live = [i for i, t in enumerate(prepared) if has_words(t)]
        probs: F32 = np.zeros((0, 0), dtype=np.float32)
        model: _Model | None = None
        if live:
            model = self._current()
            vecs, counts = self._features([prepared[i] for i in live])
            probs = model.proba(vecs, counts)
        row_of = {i: r for r, i in enumerate(live)}
        out: list[Analysis] = []
        for i, post in enumerate(posts):
            r = row_of.get(i)
            if r is None or model is None:
                # Nothing but mentions, emoji or links: nothing to file.
                kind: Kind = "other"
                confidence = 0.9
            else:
                best = int(np.argmax(probs[r]))
                kind = model.kinds[best]
                confidence = float(min(1.0, max(0.0, probs[r, best])))
            title, summary = title_and_summary(post.text, kind)
            labels = (
                keyword_labels(post.text[:LABEL_CHARS], model.idf_of, limit=3, focus=title)
                if r is not None and model is not None
                else []
            )
            out.append(
                Analysis(
                    kind=kind,
                    confidence=confidence,
                    title=title,
                    summary=summary,
                    labels=tuple(labels),
                    analyzer=self.name,
                )
            )
        return out


__all__ = ["EXAMPLES_PATH", "Hyper", "OfflineAnalyzer", "load_examples", "train"]
