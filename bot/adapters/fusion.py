"""Rank fusion that transfers between trackers: weighted reciprocal-rank fusion (RRF).

A weighted mean of raw scores (the previous fusion) depends on each signal's scale, and scales
differ between trackers (boilerplate-heavy bug reports reach high cosines between unrelated
tickets; BM25's spread depends on the vocabulary), so weights tuned on one tracker lost to an
untuned fusion on another. RRF reads only each signal's ranking: ``sum_s w_s / (k + rank_s)``.
Chosen by cross-validation over folds of the dev queries (bench/eval_fusion_cv.py) against the
weighted mean and per-query z-score fusion: the best held-out recall, and the same weight
setting won on most training folds (the others each won on a few, with a wider spread).

Signals: ``body``/``title`` = cosine of the query with the ticket's body / title vector,
``head_*`` the same for the query's headline, ``lexical`` = BM25 over the whole ticket text and
``lexical_title`` = BM25 over the title field alone (per-field BM25).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]
RRF_K = 60.0
STD_FLOOR = 1e-3


@dataclass(frozen=True)
class Fusion:
    """Weights of each signal's reciprocal rank. Defaults: the setting cross-validation picked
    on most folds of the dev queries (bench/eval_fusion_cv.py)."""

    body: float = 1.0
    title: float = 0.0
    head_title: float = 0.0
    head_body: float = 0.5
    lexical: float = 0.5
    lexical_title: float = 0.25
    k: float = RRF_K

    def weights(self) -> dict[str, float]:
        """The non-zero signal weights by name."""
        return {
            f.name: float(getattr(self, f.name))
            for f in fields(self)
            if f.name != "k" and getattr(self, f.name)
        }

    def rank_scores(
        self, signals: Mapping[str, Any], known: Mapping[str, Any] | None = None
    ) -> Any:
        """RRF of the signals' rankings over the rows given (each (…, rows) arrays); *known*
        replaces some signals' ranks (e.g. ranks over a whole corpus the rows are drawn from)."""
        w = self.weights()
        ranks = ranks_of({n: signals[n] for n in w if not known or n not in known})
        return rrf_fuse({**ranks, **(known or {})}, w, self.k)


DEFAULT_FUSION = Fusion()


def ranks_of(signals: Mapping[str, Any]) -> dict[str, Any]:
    """1-based descending ranks of each signal along the last axis (ties by position)."""
    out = {}
    for name, v in signals.items():
        a = np.asarray(v)
        order = np.argsort(-a, axis=-1, kind="stable")
        r = np.empty_like(order)
        np.put_along_axis(r, order, np.arange(1, a.shape[-1] + 1), axis=-1)
        out[name] = r
    return out


def count_above(sample: Any, values: Any, presorted: bool = False) -> Any:
    """For each of *values*, how many of *sample* are greater; *presorted*: *sample* is sorted
    ascending already (the index sorts it once per query and signal, for ``top_k`` too)."""
    ordered = np.asarray(sample) if presorted else np.sort(np.asarray(sample))
    # A binary search per value in the sorted sample: searching each of 8,192 sample values
    # among 500 candidates instead cost ~0.4 ms (a branch mispredicted per step).
    return len(ordered) - np.searchsorted(ordered, np.asarray(values), side="right")


def corpus_ranks(rows: Any, values: Any, leaders: Any, above: Any = None) -> Any:
    """Ranks over the corpus of the candidate *rows* (scores *values*) for one signal whose best
    rows over the whole corpus, in order, are *leaders* (distinct): a leader gets its true rank;
    the other candidates follow the leaders in their own order. *above* (per candidate: how
    many corpus rows score higher, estimated) puts them at least that far down: ranked right
    after the leaders, a candidate that only another signal found gained up to 0.5/189 of RRF
    from a signal on which thousands of rows beat it."""
    rows = np.asarray(rows, dtype=np.int64)
    leaders = np.asarray(leaders, dtype=np.int64)
    out = np.empty(len(rows), dtype=np.int64)
    # Vectorised (a dict lookup per candidate cost ~1 ms a query at 500 candidates): find each
    # candidate among the leaders sorted by row number.
    hit = np.zeros(len(rows), dtype=np.bool_)
    if len(leaders) and len(rows):
        by_row = np.argsort(leaders, kind="stable")
        sorted_rows = leaders[by_row]
        at = np.minimum(np.searchsorted(sorted_rows, rows), len(sorted_rows) - 1)
        hit = sorted_rows[at] == rows
        out[hit] = by_row[at[hit]] + 1
    rest = np.flatnonzero(~hit)
    if len(rest):
        v = np.asarray(values)[rest]
        order = np.argsort(-v, kind="stable")
        ranked = len(leaders) + 1 + np.arange(len(rest))
        if above is not None:
            ranked = np.maximum(ranked, np.asarray(above)[rest[order]] + 1)
        out[rest[order]] = ranked
    return out


def rrf_fuse(ranks: Mapping[str, Any], weights: Mapping[str, float], k: float = RRF_K) -> Any:
    """Weighted reciprocal-rank fusion of 1-based *ranks*."""
    acc: Any = 0.0
    for name, w in weights.items():
        if w:
            acc = acc + w / (k + np.asarray(ranks[name], dtype=np.float64))
    return acc


def zscores(signals: Mapping[str, Any], axis: int = -1) -> dict[str, Any]:
    """Each signal standardised along *axis* (numpy or numpy.ma arrays); compared in the bench."""
    out: dict[str, Any] = {}
    for name, v in signals.items():
        mean = v.mean(axis=axis, keepdims=True)
        std = np.maximum(v.std(axis=axis, keepdims=True), STD_FLOOR)
        out[name] = (v - mean) / std
    return out
