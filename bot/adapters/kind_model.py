"""The offline analyzer's kind model: multinomial logistic regression in numpy, and its training.

Features are [body embedding | headline embedding] joined with hashed TF-IDF word uni/bigrams;
``train`` fits the weights by full-batch gradient descent with L2, on whatever labelled texts it
is given (the backlog's tickets, the project's own examples). Its probabilities are temperature
scaled (the class-balanced, L2-regularised fit is under-confident), and a post that nearly repeats
backlog tickets also hears their kinds (``Neighbours``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot.adapters.extract import bucket
from bot.domain.models import KINDS, Kind

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
    own_weight: float = 0.5
    # The first words of a post count twice (as marked features): that is where its kind shows.
    lead: int = 20
    # A backlog is capped per kind so that retraining stays within seconds on 2 cores.
    max_per_kind: int = 2000
    # Temperature of the softmax, by what the model learnt from: < 1 sharpens. Chosen for the
    # lowest expected calibration error (bench/eval_kinds.py reports ECE).
    temperature: float = 0.6
    cold_temperature: float = 0.9
    # Backlog tickets as nearest-neighbour evidence: only for a post whose closest ticket is at
    # least *knn_gate* similar ([body | headline] cosine), the kinds of its *knn_k* closest
    # tickets (softmax of similarity / *knn_temp*, per kind share of the backlog) are mixed in
    # with weight *knn_weight*. Below the gate the linear model already knows as much (measured:
    # an ungated blend lowered macro-F1).
    knn_k: int = 5
    knn_gate: float = 0.8
    knn_temp: float = 0.05
    knn_weight: float = 0.5
    # What a post does on the page (bot/adapters/post_intent.py): it seeks help ("how do I",
    # "I am trying to", "what am I missing") or proposes a change ("it would be nice"). Issue-style
    # questions that describe an error otherwise read as bug reports. *intent_features*: each cue
    # is one more hashed column of the linear model with this term weight (as one occurrence of
    # a word), learnt from the examples or the backlog. *intent_prior*: in cold start only (a
    # few, Slack-like own examples) also this much log-odds for ``question`` / ``idea``; 0.5
    # (odds x1.6) is a moderate round value, not the dev set's best (1.0: +0.004 macro-F1, worse
    # ECE). Every variant tried is in bench/eval_kinds.py --sweep and the README.
    intent_prior: float = 0.5
    intent_features: float = 1.0
    # Cold start only: this much log-odds more for ``idea`` when a post's first line opens with a
    # verb of change, as requests are titled ("Add a CSV export"; ``post_intent.titled_as_change``).
    # The own examples are Slack-worded ideas ("What if we ...", "It would be great ..."), so the
    # examples' model never learns that title form. 1.0 was chosen on each half of the dev set
    # separately (both halves chose it; 1.5 and 2.0 tie with it: the cue mostly settles the post).
    change_title_prior: float = 1.0


@dataclass(frozen=True)
class SparseRows:
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

    def transpose(self, m: int) -> SparseRows:
        """X.T, X having *m* columns: X.T @ G is then ``.transpose(m).dot(G.T)``, as fast as
        X @ W."""
        order = np.argsort(self.cols, kind="stable")
        return SparseRows(self.cols[order], self.rows[order], self.vals[order], m)


def sparse_rows(counts: Sequence[dict[int, float]], weight: F32) -> SparseRows:
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
    return SparseRows(
        np.asarray(rows, dtype=np.int64),
        np.asarray(cols, dtype=np.int64),
        np.asarray(vals, dtype=np.float32),
        len(counts),
    )


def softmax_t(z: F32) -> F32:
    """Softmax over axis 0 (classes are rows)."""
    e = np.exp(z - z.max(axis=0, keepdims=True))
    out: F32 = e / e.sum(axis=0, keepdims=True)
    return out


@dataclass(frozen=True)
class Neighbours:
    """Labelled backlog tickets for nearest-neighbour evidence.

    *vecs* rows are [body | title] / sqrt(2), so a [text | headline] query over sqrt(2) scores the
    mean of the body and the title cosine in one product; *labels* index the model's kinds.
    """

    vecs: F32
    labels: I64
    prior: F32  # each kind's share of the tickets (0 for kinds the backlog lacks)

    @staticmethod
    def of(body: F32, title: F32, labels: I64, kinds: int) -> Neighbours:
        vecs = np.concatenate([body, title], axis=1).astype(np.float32) / np.float32(np.sqrt(2))
        prior = np.bincount(labels, minlength=kinds).astype(np.float32)
        prior /= np.float32(max(1, len(labels)))
        return Neighbours(vecs, labels.astype(np.int64), prior)

    def blend(self, probs: F32, dense: F32, hyper: Hyper) -> F32:
        """*probs* (rows, classes) with the neighbours' votes mixed into the rows of posts that
        have a close enough ticket. A kind no ticket has (``other``) keeps its probability."""
        n, k = len(self.labels), min(hyper.knn_k, len(self.labels))
        if not n or not k or hyper.knn_weight <= 0:
            return probs
        q = np.asarray(dense, dtype=np.float32)
        if q.shape[1] != self.vecs.shape[1]:
            return probs
        sims = (q / np.float32(np.sqrt(2))) @ self.vecs.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        best = np.take_along_axis(sims, top, axis=1)
        close = best.max(axis=1) >= hyper.knn_gate
        if not close.any():
            return probs
        out = probs.copy()
        w = np.exp((best[close] - best[close].max(axis=1, keepdims=True)) / hyper.knn_temp)
        votes = np.zeros((int(close.sum()), probs.shape[1]), dtype=np.float32)
        for c in range(probs.shape[1]):
            if self.prior[c] > 0:
                # Per kind share, so a backlog that is mostly bugs does not out-vote the rest.
                votes[:, c] = (w * (self.labels[top[close]] == c)).sum(axis=1) / self.prior[c]
        votes /= votes.sum(axis=1, keepdims=True)
        has = self.prior > 0
        p = probs[close]
        mass = p[:, has].sum(axis=1, keepdims=True)
        a = np.float32(hyper.knn_weight)
        p[:, has] = (1 - a) * p[:, has] + a * mass * votes[:, has]
        out[close] = p
        return out


@dataclass
class KindModel:
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
    temperature: float = 1.0
    neighbours: Neighbours | None = None

    def proba(self, dense: F32, counts: Sequence[dict[int, float]]) -> F32:
        """Class probabilities, shape (len(counts), classes); rows sum to 1."""
        x = (np.asarray(dense, dtype=np.float32) - self.mean) * self.scale
        z = (
            self.w_dense @ x.T
            + sparse_rows(counts, self.idf).dot(self.w_sparse)
            + self.bias[:, None]
        )
        p = softmax_t(z / np.float32(self.temperature)).T
        if self.neighbours is not None:
            p = self.neighbours.blend(p, dense, self.hyper)
        return p

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
    temperature: float = 1.0,
) -> KindModel:
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
    full = sparse_rows(counts, idf)
    used, compact = np.unique(full.cols, return_inverse=True)
    xs = SparseRows(full.rows, compact.astype(np.int64), full.vals, n)
    m = len(used)
    xt = xs.transpose(m)
    mean = (np.asarray(dense, dtype=np.float32) * sw[:, None]).sum(axis=0)
    scale = dense_scale(dense.shape[1], head_dim, hyper)
    xd = (np.asarray(dense, dtype=np.float32) - mean) * scale
    onehot_t = np.eye(kk, dtype=np.float32)[:, y]

    # Step 1/L, L bounding the loss's curvature: 1/2 * the largest eigenvalue of the weighted Gram
    # matrix of [dense | 1] (power iteration) plus 1/2 for the unit-norm sparse rows.
    xb = np.concatenate([xd, np.ones((n, 1), dtype=np.float32)], axis=1)
    v = np.ones(xb.shape[1], dtype=np.float32)
    lam = 1.0
    for _ in range(30):
        u = np.einsum("nd,n->d", xb, sw * np.einsum("nd,d->n", xb, v))
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
        # einsum, not @: these skinny products are memory-bound, and BLAS's thread pool made
        # them 5-50x slower in CPU and wall time on a busy 2-core machine (measured).
        p = softmax_t(np.einsum("kd,nd->kn", yd, xd) + xs.dot(ys) + yb[:, None])
        g = (p - onehot_t) * sw
        pd, ps, pb = wd, ws, b
        wd = np.asarray(yd - step * (np.einsum("kn,nd->kd", g, xd) + l2 * yd), np.float32)
        ws = np.asarray(ys - step * (xt.dot(g) + l2 * ys), np.float32)
        b = np.asarray(yb - step * g.sum(axis=1), np.float32)
    w_sparse = np.zeros((kk, hyper.hash_dim), dtype=np.float32)
    w_sparse[:, used] = ws
    return KindModel(kinds, mean, scale, wd, w_sparse, b, idf, hyper, source, n, temperature)


def dense_scale(width: int, head_dim: int, hyper: Hyper) -> F32:
    """Column scales of [body embedding | headline embedding (the last *head_dim* columns)]."""
    scale = np.full(width, hyper.dense_scale, dtype=np.float32)
    if head_dim:
        scale[width - head_dim :] *= np.float32(hyper.head_scale)
    return scale
