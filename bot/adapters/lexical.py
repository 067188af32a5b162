"""Lexical relevance (BM25) and score fusion, shared by the local and the Pinecone index.

Two corpus representations:

* :class:`InvertedIndex` holds every document's term counts and answers a query by touching only
  the postings of the query's terms (a CSR array per term, rebuilt lazily after changes). It is
  what the local index uses, exact over the whole corpus.
* :class:`CorpusStats` holds only document frequencies and lengths; it scores a handful of
  candidate texts (the Pinecone adapter's dense candidates) with the same formula.

Both normalise a BM25 score by the query's *ideal* score (every capped query term at saturated
term frequency), so ``lexical`` is in [0, 1] and means the same thing for both adapters.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

K1 = 1.2
B = 0.75
MAX_QUERY_TERMS = 32

_TOKEN = re.compile(r"[a-z0-9]+")
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers him his how i if in into is it its itself just me more most my
    no nor not now of off on once only or other our ours out over own same she should so some such
    than that the their them then there these they this those through to too under until up very
    was we were what when where which while who whom why will with would you your yours""".split()
)


def _stem(word: str) -> str:
    # Harman's "S" stemmer: folds plurals only, so it rarely merges unrelated words.
    if len(word) > 3 and word.endswith("ies") and not word.endswith(("eies", "aies")):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and not word.endswith(("aes", "ees", "oes")):
        return word[:-1]
    if len(word) > 2 and word.endswith("s") and not word.endswith(("us", "ss")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words without stop words, plurals folded."""
    return [_stem(w) for w in _TOKEN.findall(text.lower()) if len(w) > 1 and w not in STOPWORDS]


def idf(df: npt.NDArray[np.float64] | float, n_docs: int) -> Any:
    """BM25's (always positive) inverse document frequency."""
    return np.log1p((n_docs - df + 0.5) / (np.asarray(df) + 0.5))


SIGNALS = ("body", "title", "head_title", "head_body", "lexical")
HEADLINE_MAX = 160
_SENTENCE_END = re.compile(r"[.!?](\s|$)")


def headline(text: str) -> str:
    """The first line of *text* (its first sentence if that line is long): what a title would say.

    A query is embedded twice, whole and as its headline, so that a post's opening line can meet
    a ticket's title on its own terms.
    """
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    if len(line) <= HEADLINE_MAX:
        return line
    m = _SENTENCE_END.search(line, 20, HEADLINE_MAX)
    if m:
        return line[: m.start() + 1]
    cut = line[:HEADLINE_MAX]
    return cut[: cut.rfind(" ")] if " " in cut[HEADLINE_MAX // 2 :] else cut


def headline_is_cut(text: str, head: str) -> bool:
    """True when *head* (``headline(text)``) is a cut of a long line, not a line or a sentence."""
    line = next((ln.strip() for ln in text.splitlines() if ln.strip()), "")
    return head != line and not head.endswith((".", "!", "?"))


@dataclass(frozen=True)
class FusionWeights:
    """How much each signal counts in the fused score (a weighted mean, so in [0, 1]).

    Signals: ``body`` = cos(query, ticket body), ``title`` = cos(query, ticket title),
    ``head_title`` / ``head_body`` = the same for the query's headline, ``lexical`` = BM25
    divided by the best BM25 among the scored tickets (``lexical_abs``, BM25 divided by the
    query's ideal score, is reported for the duplicate rule but not fused). Defaults measured on
    labelled duplicates (bench/eval_duplicates.py): a broad plateau, these sit in its middle.
    """

    body: float = 0.5
    title: float = 0.3
    head_title: float = 0.3
    head_body: float = 0.2
    lexical: float = 0.3

    @property
    def total(self) -> float:
        """The sum of the weights (the fused score is divided by it)."""
        return self.body + self.title + self.head_title + self.head_body + self.lexical

    def fuse(self, signals: Mapping[str, npt.NDArray[np.float32] | float]) -> Any:
        """Weighted mean of the signals, each clipped to [0, 1]."""
        total = 0.0
        acc: Any = 0.0
        for name in SIGNALS:
            w = float(getattr(self, name))
            if w:
                acc = acc + w * np.clip(signals[name], 0.0, 1.0)
                total += w
        return acc / total if total else acc


def relative(scores: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """*scores* divided by their maximum (all zeros stay zeros)."""
    top = float(scores.max()) if len(scores) else 0.0
    return scores / top if top > 0 else scores


DEFAULT_WEIGHTS = FusionWeights()


Term = TypeVar("Term", str, int)


def _query_terms(terms: Iterable[Term], idf_of: dict[Term, float], cap: int) -> list[Term]:
    # The rarest terms carry the signal; capping keeps long posts from touching every posting.
    known = sorted({t for t in terms if t in idf_of}, key=lambda t: (-idf_of[t], t))
    return known[:cap]


class _Bm25:
    """The BM25 parameters both corpus representations share."""

    def __init__(
        self, k1: float = K1, b: float = B, max_query_terms: int = MAX_QUERY_TERMS
    ) -> None:
        self.k1 = k1
        self.b = b
        self.max_query_terms = max_query_terms


class InvertedIndex(_Bm25):
    """BM25 over a list of documents addressed by row number (0..n-1, like the vector matrices).

    Each posting stores its finished contribution ``idf * tf * (k1 + 1) / (tf + norm)``, so a query
    is a gather-and-add per term. The most frequent terms (a query's slowest postings) are also
    kept as dense columns over all rows, added with one streaming pass each instead of a scatter.
    Not thread-safe by itself: the owner serialises writes and the lazy rebuild.
    """

    dense_min_share = 1 / 16  # a term in at least this share of rows gets a dense column ...
    dense_min_df = 2048  # ... if it is in at least this many rows ...
    dense_max_terms = 64  # ... for the most frequent terms only (bounds memory: 64 x rows floats)

    def __init__(
        self, k1: float = K1, b: float = B, max_query_terms: int = MAX_QUERY_TERMS
    ) -> None:
        super().__init__(k1, b, max_query_terms)
        self._vocab: dict[str, int] = {}
        self._doc_terms: list[npt.NDArray[np.int32]] = []
        self._doc_tfs: list[npt.NDArray[np.float32]] = []
        self._dirty = True
        self._indptr: npt.NDArray[np.int64] = np.zeros(1, dtype=np.int64)
        self._post_rows: npt.NDArray[np.int32] = np.zeros(0, dtype=np.int32)
        self._post_w: npt.NDArray[np.float32] = np.zeros(0, dtype=np.float32)
        self._idf: npt.NDArray[np.float64] = np.zeros(0)
        self._live_idf: list[float] = []
        self._dense: npt.NDArray[np.float32] = np.zeros((0, 0), dtype=np.float32)
        self._dense_row: npt.NDArray[np.int64] = np.zeros(0, dtype=np.int64)
        # Rows added or replaced since the last compile, scored one by one against the compiled
        # statistics: filing one issue must not cost a rebuild of the whole corpus (~1 s at 100k).
        self._compiled_n = 0
        self._avgdl = 1.0
        self._pending: set[int] = set()
        self._pending_df: Counter[int] = Counter()  # df of terms the compiled vocabulary lacks

    def __len__(self) -> int:
        return len(self._doc_terms)

    def _encode(self, text: str) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
        counts = Counter(tokenize(text))
        ids = np.fromiter(
            (self._vocab.setdefault(t, len(self._vocab)) for t in counts),
            dtype=np.int32,
            count=len(counts),
        )
        tfs = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        return ids, tfs

    def append(self, texts: Sequence[str]) -> None:
        """Adds documents at the end (rows len(self) ..)."""
        start = len(self._doc_terms)
        for text in texts:
            ids, tfs = self._encode(text)
            self._doc_terms.append(ids)
            self._doc_tfs.append(tfs)
        self._mark(range(start, len(self._doc_terms)))

    def replace(self, row: int, text: str) -> None:
        """Replaces the document at *row*."""
        self._doc_terms[row], self._doc_tfs[row] = self._encode(text)
        self._mark([row])

    def keep(self, rows: Sequence[int]) -> None:
        """Keeps only the documents at *rows*, in that order (how deletions compact)."""
        self._doc_terms = [self._doc_terms[r] for r in rows]
        self._doc_tfs = [self._doc_tfs[r] for r in rows]
        self._dirty = True

    def _mark(self, rows: Iterable[int]) -> None:
        if self._dirty:
            return
        known = len(self._idf)
        for row in rows:
            if row not in self._pending:
                self._pending_df.update(t for t in self._doc_terms[row].tolist() if t >= known)
            self._pending.add(row)
        # Stale statistics are fine for a few new rows; past a few percent, rebuild.
        if len(self._pending) > max(256, len(self._doc_terms) // 20):
            self._dirty = True

    def _compile(self) -> None:
        n = len(self._doc_terms)
        vocab_size = len(self._vocab)
        lengths = np.fromiter((float(t.sum()) for t in self._doc_tfs), dtype=np.float64, count=n)
        self._dense = np.zeros((0, n), dtype=np.float32)
        self._dense_row = np.full(vocab_size, -1, dtype=np.int64)
        if n == 0:
            self._indptr = np.zeros(vocab_size + 1, dtype=np.int64)
            self._post_rows = np.zeros(0, dtype=np.int32)
            self._post_w = np.zeros(0, dtype=np.float32)
            self._idf = np.zeros(vocab_size)
            self._live_idf = [0.0] * vocab_size
            self._compiled_n = 0
            self._pending.clear()
            self._pending_df.clear()
            self._dirty = False
            return
        sizes = np.fromiter((len(t) for t in self._doc_terms), dtype=np.int64, count=n)
        terms = np.concatenate(self._doc_terms) if sizes.sum() else np.zeros(0, dtype=np.int32)
        tfs = np.concatenate(self._doc_tfs) if sizes.sum() else np.zeros(0, dtype=np.float32)
        rows = np.repeat(np.arange(n, dtype=np.int32), sizes)
        order = np.argsort(terms, kind="stable")
        df = np.bincount(terms, minlength=vocab_size)
        self._indptr = np.concatenate([[0], np.cumsum(df)]).astype(np.int64)
        self._post_rows = rows[order]
        avgdl = max(float(lengths.mean()), 1e-9)
        tf = tfs[order].astype(np.float64)
        dl = lengths[self._post_rows]
        self._idf = idf(df.astype(np.float64), n)
        # Per term as Python floats for queries, 0 for terms no live row has (deleted rows').
        self._live_idf = np.where(df > 0, self._idf, 0.0).tolist()
        # Nothing in a posting's contribution depends on the query: keep it finished.
        self._post_w = (
            np.repeat(self._idf, df)
            * tf
            * (self.k1 + 1)
            / (tf + self.k1 * (1 - self.b + self.b * dl / avgdl))
        ).astype(np.float32)
        min_df = max(self.dense_min_df, self.dense_min_share * n)
        by_df = np.argsort(-df, kind="stable")[: self.dense_max_terms]
        frequent = [int(i) for i in by_df if df[i] >= min_df]
        self._dense = np.zeros((len(frequent), n), dtype=np.float32)
        for j, i in enumerate(frequent):
            lo, hi = self._indptr[i], self._indptr[i + 1]
            self._dense[j, self._post_rows[lo:hi]] = self._post_w[lo:hi]
            self._dense_row[i] = j
        self._compiled_n = n
        self._avgdl = avgdl
        self._pending.clear()
        self._pending_df.clear()
        self._dirty = False

    def scores(
        self, text: str, exclude: int | None = None, terms: Sequence[str] | None = None
    ) -> tuple[npt.NDArray[np.float32], float]:
        """Normalised BM25 of *text* against every row, and the raw ideal score used to normalise.

        *exclude* scores as if that row were not in the corpus (leave-one-out evaluation): its
        terms do not count towards document frequencies and its own score is 0. *terms*:
        ``tokenize(text)`` when the caller has it already (one query, two fields).
        """
        if self._dirty or (exclude is not None and self._pending):
            self._compile()
        n = len(self._doc_terms)
        base = self._compiled_n
        out = np.zeros(n, dtype=np.float32)
        vocab = self._vocab
        ids = {vocab[t] for t in (tokenize(text) if terms is None else terms) if t in vocab}
        known = len(self._idf)
        if exclude is None and not self._pending:
            # Nothing added since the compile: the compiled idf is the corpus's (the same
            # values, bit for bit, as computing it per term).
            live = self._live_idf
            idf_of = {i: live[i] for i in ids if i < known and live[i] > 0}
        else:
            df = {
                i: int(self._indptr[i + 1] - self._indptr[i]) if i < known else self._pending_df[i]
                for i in ids
            }
            n_docs = n
            if exclude is not None:
                own = set(self._doc_terms[exclude].tolist())
                df = {i: d - (i in own) for i, d in df.items()}
                n_docs -= 1
            idf_of = {i: float(idf(float(d), n_docs)) for i, d in df.items() if d > 0}
        if not idf_of:
            return out, 0.0
        ideal = 0.0
        chosen = _query_terms(idf_of, idf_of, self.max_query_terms)
        for i in chosen:
            w = idf_of[i]
            ideal += w * (self.k1 + 1)
            if i >= known:  # only in rows added since the compile: scored below
                continue
            # The stored contributions carry the corpus idf; leave-one-out rescales them.
            scale = np.float32(w / self._idf[i]) if exclude is not None else None
            j = int(self._dense_row[i])
            if j >= 0:
                out[:base] += self._dense[j] if scale is None else scale * self._dense[j]
            else:
                lo, hi = self._indptr[i], self._indptr[i + 1]
                pw = self._post_w[lo:hi]
                # add.at: a third of the time of ``out[rows] += pw`` (numpy 2), same sums.
                np.add.at(out, self._post_rows[lo:hi], pw if scale is None else scale * pw)
        for row in self._pending:
            out[row] = self._score_row(row, {i: idf_of[i] for i in chosen})
        if exclude is not None:
            out[exclude] = 0.0
        out /= ideal
        return out, ideal

    def _score_row(self, row: int, idf_of: dict[int, float]) -> float:
        """BM25 of one uncompiled row, with the compiled corpus's idf and average length."""
        terms, tfs = self._doc_terms[row], self._doc_tfs[row]
        norm = self.k1 * (1 - self.b + self.b * float(tfs.sum()) / self._avgdl)
        total = 0.0
        for t, tf in zip(terms.tolist(), tfs.tolist(), strict=True):
            w = idf_of.get(t)
            if w is not None:
                total += w * tf * (self.k1 + 1) / (tf + norm)
        return total


class CorpusStats(_Bm25):
    """Document frequencies and lengths of a corpus stored elsewhere, for BM25 on candidates.

    Serialisable to a small JSON dict; ``add``/``remove`` take the same text the document was
    counted with, so the counts stay exact under replacement.
    """

    def __init__(
        self, k1: float = K1, b: float = B, max_query_terms: int = MAX_QUERY_TERMS
    ) -> None:
        super().__init__(k1, b, max_query_terms)
        self.df: Counter[str] = Counter()
        self.n_docs = 0
        self.total_len = 0

    def add(self, text: str) -> None:
        """Counts one document."""
        tokens = tokenize(text)
        self.df.update(set(tokens))
        self.n_docs += 1
        self.total_len += len(tokens)

    def remove(self, text: str) -> None:
        """Uncounts one document previously added with the same text."""
        tokens = tokenize(text)
        self.df.subtract(set(tokens))
        for t in set(tokens):
            if self.df[t] <= 0:
                del self.df[t]
        self.n_docs = max(0, self.n_docs - 1)
        self.total_len = max(0, self.total_len - len(tokens))

    def score(self, query: str, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """Normalised BM25 of *query* against each of *texts* (same scale as InvertedIndex)."""
        out = np.zeros(len(texts), dtype=np.float32)
        if not texts or self.n_docs == 0:
            return out
        q = set(tokenize(query))
        idf_of = {t: float(idf(float(self.df[t]), self.n_docs)) for t in q if self.df.get(t, 0) > 0}
        chosen = _query_terms(q, idf_of, self.max_query_terms)
        if not chosen:
            return out
        ideal = sum(idf_of[t] * (self.k1 + 1) for t in chosen)
        avgdl = max(self.total_len / self.n_docs, 1e-9)
        for j, text in enumerate(texts):
            tokens = tokenize(text)
            counts = Counter(tokens)
            norm = self.k1 * (1 - self.b + self.b * len(tokens) / avgdl)
            s = 0.0
            for t in chosen:
                tf = counts.get(t, 0)
                if tf:
                    s += idf_of[t] * tf * (self.k1 + 1) / (tf + norm)
            out[j] = s / ideal
        return out

    def to_json(self) -> dict[str, Any]:
        """A JSON-serialisable snapshot."""
        return {"n_docs": self.n_docs, "total_len": self.total_len, "df": dict(self.df)}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CorpusStats:
        """The inverse of :meth:`to_json`."""
        stats = cls()
        stats.n_docs = int(data.get("n_docs", 0))
        stats.total_len = int(data.get("total_len", 0))
        stats.df = Counter({str(k): int(v) for k, v in data.get("df", {}).items()})
        return stats


def top_k(
    scores: npt.NDArray[np.float32],
    k: int,
    sample: npt.NDArray[np.float32] | None = None,
    stride: int = 1,
    above: float | None = None,
) -> npt.NDArray[np.int64]:
    """Indices of the *k* largest scores, best first (ties by lower index, also at the k-th place);
    with *above*, only scores greater than it (so possibly fewer than *k*).

    *sample* (optional) is ``scores[::stride]`` sorted ascending: a bound is read from it below
    which, almost surely, fewer than *k* rows lie, and only the rows at or above it are
    partitioned (at 100,000 rows one comparison pass instead of a partition: ~0.1 ms vs ~0.8 ms).
    The result is the same with or without it; a bound that keeps fewer than *k* rows is not used.
    """
    n = len(scores)
    if n == 0 or k <= 0:
        return np.zeros(0, dtype=np.int64)
    rows: npt.NDArray[np.int64] | None = None
    if sample is not None and 4 * k < n:
        # The sample's j-th largest has about j * stride rows at or above it; a margin of four
        # standard deviations of that count keeps at least k rows but for freak draws.
        need = k / stride
        j = int(need + 4.0 * need**0.5) + 2
        if j <= len(sample):
            bound = sample[len(sample) - j]
            if above is None or bound > above:
                kept = np.flatnonzero(scores >= bound)
                if len(kept) >= k:
                    rows = kept
    if rows is None:
        rows = np.arange(n, dtype=np.int64) if above is None else np.flatnonzero(scores > above)
    k = min(k, len(rows))
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    return rows[_top_k_exact(scores[rows], k)]


def _top_k_exact(scores: npt.NDArray[np.float32], k: int) -> npt.NDArray[np.int64]:
    """``top_k`` without a sample (0 < k <= len(scores))."""
    n = len(scores)
    if k < n:
        # Partitioning at n - k spares a negated copy of *scores*; which of several rows tied
        # at the k-th value it keeps is arbitrary, so the ties are settled by index below.
        kth = scores[np.argpartition(scores, n - k)[n - k]]
        above = np.flatnonzero(scores > kth)
        tied = np.flatnonzero(scores == kth)[: k - len(above)]
        part = np.concatenate([above, tied])
    else:
        part = np.arange(n)
    return part[np.lexsort((part, -scores[part]))].astype(np.int64)
