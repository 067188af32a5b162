"""The offline analyzer: classifies posts with a small model learnt from the team's own backlog.

Kind: multinomial logistic regression (numpy only) over the sentence embeddings of the post and of
its headline (first line; a ticket's title) joined with hashed TF-IDF word uni/bigrams. It is
trained on the index's labelled tickets (Jira issue type mapped to a kind) once there are enough
of them, and on the project's own examples otherwise. The project's ``other`` examples (chit-chat,
thanks, announcements) are always mixed in, since a backlog never holds them. Title, summary and
labels are extracted from the post text, not generated.

A post that nearly repeats backlog tickets also hears their kinds (``kind_model.Neighbours``, over
the vectors the catalogue already stores: nothing is embedded twice). Probabilities are temperature
scaled, so the confidence reads as a probability.

Training is kept off the request path once ``warm_up`` (``serve`` calls it) hands it to a
background thread: a request never waits for the backlog model; it is served by the previous
model, or the examples' model until the first backlog model is ready.

onnxruntime is never imported here: the embedder is injected.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bot.adapters.extract import (
    MAX_WORK_CHARS,
    bucket,
    has_words,
    hashed_counts,
    slack_to_text,
    title_and_summary,
)
from bot.adapters.index_local import embed_queries
from bot.adapters.keyphrases import keyphrase_labels
from bot.adapters.kind_model import F32, Hyper, KindModel, Neighbours, train
from bot.adapters.post_intent import proposes, seeks_help, settle_kind
from bot.domain.models import KINDS, Analysis, Kind, Post, Ticket
from bot.domain.ports import Embedder, TicketIndex

logger = logging.getLogger(__name__)

# Runs a training job: inline (None), or e.g. ``in_background`` so no request waits for it.
TrainRunner = Callable[[Callable[[], None]], None]


def in_background(job: Callable[[], None]) -> None:
    """A ``TrainRunner`` that trains in a daemon thread."""
    threading.Thread(target=job, name="kind-model-training", daemon=True).start()


EXAMPLES_PATH = Path(__file__).resolve().parent.parent / "examples" / "kinds.jsonl"
# Code blocks are not read, but that a post has one (a stack trace, a config) is a hint to its kind.
CODE_MARKER = " codeblock "
LABEL_CHARS = 3000


@dataclass(frozen=True)
class _Examples:
    kinds: list[Kind]
    vecs: F32
    counts: list[dict[int, float]]


def intent_cues(text: str) -> dict[str, bool]:
    """What *text* does on the page that marks a kind: seeks help (question), proposes (idea)."""
    return {"__seeks_help__": seeks_help(text), "__proposes__": proposes(text)}


def intent_prior(probs: F32, kinds: Sequence[Kind], texts: Sequence[str], strength: float) -> F32:
    """*probs* with ``question`` raised by *strength* in log-odds for texts that seek help and
    ``idea`` for texts that propose a change; rows renormalised."""
    out = probs.copy()
    for col, cue in (("question", seeks_help), ("idea", proposes)):
        if col not in kinds:
            continue
        c = kinds.index(col)
        hit = np.asarray([cue(t) for t in texts], dtype=bool)
        out[hit, c] *= np.float32(np.exp(strength))
    out /= out.sum(axis=1, keepdims=True)
    return out


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
    ``index.version()`` changes. Without *train_in* the caller that notices pays for the
    retraining while concurrent callers keep using the previous model (batch commands and
    benches want the backlog model for their first post); with it, the retraining is handed to
    *train_in* and every caller keeps the model it has. Safe to share between threads.
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
        train_in: TrainRunner | None = None,
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
        self._cold: KindModel | None = None
        self._model: KindModel | None = None
        self._version: str | None = None
        self._titles: dict[str, F32] = {}
        self.train_in = train_in
        self._scheduled = False  # a retraining was handed to train_in and has not finished
        self._sched_lock = threading.Lock()
        self._cold_lock = threading.RLock()

    def warm_up(self) -> None:
        """Loads the embedding model and trains the classifier in a background thread, so the
        first post after start-up does not wait for them (on a busy machine, longer than a
        shutdown's grace); from then on every retraining runs in the background too
        (``train_in_background``). A post that comes before the examples' model is ready waits
        for that one only; nothing trains twice.
        """
        self.train_in_background()

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
        counts = hashed_counts([t[: h.feature_chars] for t in texts], h.hash_dim, h.lead)
        if h.intent_features:
            for t, row in zip(texts, counts, strict=True):
                for name, on in intent_cues(t[: h.feature_chars]).items():
                    if on:
                        row[bucket(name, h.hash_dim)] = h.intent_features
        return vecs, counts

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

    def prefetch(self, posts: Sequence[Post]) -> None:
        """Embeds the texts and headlines that ``analyze_many`` and triage's search will ask
        for *posts*, through the (caching) embedder both use: triage calls it in another
        thread for the next batch, so that batch's model work overlaps this one's search."""
        texts = [self.embedding_text(p.text) for p in posts]
        if texts:
            embed_queries(self.embedder, texts)

    # ------------------------------------------------------------------ training

    def _own_examples(self) -> _Examples:
        with self._cold_lock:
            if self._own is None:
                rows = load_examples(self.examples_path)
                vecs, counts = self._features([self._prepare(t) for t, _ in rows])
                self._own = _Examples([k for _, k in rows], vecs, counts)
            return self._own

    def _train_cold(self) -> KindModel:
        # Its own lock: a request waiting for the examples' model must not wait for a backlog
        # training that holds ``_lock``.
        with self._cold_lock:
            return self._train_cold_locked()

    def _train_cold_locked(self) -> KindModel:
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
                temperature=self.hyper.cold_temperature,
            )
            logger.info("offline classifier trained on %d own examples", len(own.kinds))
        return self._cold

    def _train_backlog(self, labelled: Sequence[tuple[Ticket, F32]]) -> KindModel | None:
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
        model = train(
            dense,
            counts,
            labels,
            weights,
            self.hyper,
            "backlog",
            head_dim=dim,
            temperature=self.hyper.temperature,
        )
        if self.hyper.knn_weight > 0:
            # The tickets' own vectors, as the catalogue stores them: no second embedding.
            ids = np.asarray([model.kinds.index(k) for _, _, k in picked], dtype=np.int64)
            model.neighbours = Neighbours.of(body, head, ids, len(model.kinds))
        logger.info(
            "offline classifier trained on %d labelled tickets (%s) and %d own examples",
            len(picked),
            ", ".join(f"{k}={len(v)}" for k, v in sorted(per_kind.items())),
            len(own.kinds),
        )
        return model

    def _current(self) -> KindModel:
        if self.index is None:
            return self._cold or self._train_cold()
        try:
            version = self.index.version()
        except Exception:  # an unreachable index must not stop triage
            logger.warning("offline classifier: index version unavailable", exc_info=True)
            return self._model or self._train_cold()
        model = self._model
        if model is not None and version == self._version:
            return model
        if self.train_in is not None:
            self._schedule()
            if model is not None:
                return model
            # Until the first backlog model is ready: the examples' model (small, and trained
            # once; ``warm_up`` at start-up trains it before any request comes).
            return self._model or self._train_cold()
        # Somebody else is retraining: keep serving with the model we have.
        if not self._lock.acquire(blocking=model is None):
            return model  # type: ignore[return-value]
        try:
            return self._retrain()
        finally:
            self._lock.release()

    def _retrain(self) -> KindModel:
        """Trains for the index's current version unless that is done already (lock held)."""
        assert self.index is not None
        try:
            version = self.index.version()
        except Exception:
            logger.warning("offline classifier: index version unavailable", exc_info=True)
            return self._model or self._train_cold()
        if self._model is not None and version == self._version:
            return self._model
        try:
            fresh = self._train_backlog(self.index.labelled())
        except Exception:
            logger.warning("offline classifier: learning from the backlog failed", exc_info=True)
            fresh = None
        self._model, self._version = fresh or self._train_cold(), version
        return self._model

    def _schedule(self) -> None:
        """Hands one retraining to ``train_in`` unless one is pending."""
        with self._sched_lock:
            if self._scheduled:
                return
            self._scheduled = True

        def job() -> None:
            try:
                # The examples' model first: it serves until the backlog's is ready.
                self._train_cold()
                if self.index is not None:
                    with self._lock:
                        self._retrain()
            except Exception:  # the next post retries; a training must never stop the process
                logger.warning("offline classifier: training failed", exc_info=True)
            finally:
                with self._sched_lock:
                    self._scheduled = False

        try:
            assert self.train_in is not None
            self.train_in(job)
        except Exception:
            logger.warning("offline classifier: could not start training", exc_info=True)
            with self._sched_lock:
                self._scheduled = False

    def train_in_background(self, runner: TrainRunner = in_background) -> None:
        """From now on trains through *runner* (a daemon thread by default), starting now: no
        request waits for a training, except one that comes before the examples' model is
        ready (it is small: a couple of seconds at start-up)."""
        self.train_in = runner
        self._schedule()

    def trained(self) -> bool:
        """True once a model for the index's current contents is in use (cheap)."""
        if self.index is None:
            return self._cold is not None
        try:
            return self._model is not None and self._version == self.index.version()
        except Exception:
            return False

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
        model: KindModel | None = None
        if live:
            model = self._current()
            vecs, counts = self._features([prepared[i] for i in live])
            probs = model.proba(vecs, counts)
            if model.source == "examples" and self.hyper.intent_prior:
                probs = intent_prior(
                    probs,
                    model.kinds,
                    [prepared[i][: self.hyper.feature_chars] for i in live],
                    self.hyper.intent_prior,
                )
        row_of = {i: r for r, i in enumerate(live)}
        # Labels look a word's idf up once per batch: an unseen word's fallback is the maximum
        # over the whole idf table, which was most of the labels' cost.
        idf = functools.cache(model.idf_of) if model is not None else None
        out: list[Analysis] = []
        for i, post in enumerate(posts):
            r = row_of.get(i)
            if r is None or model is None:
                # Nothing but mentions, emoji or links: nothing to file.
                kind: Kind = "other"
                confidence = 0.9
            else:
                best = int(np.argmax(probs[r]))
                kind = settle_kind(model.kinds[best], prepared[i])
                if kind != model.kinds[best]:
                    # what the post does on the page overrules the model; say how sure it was
                    best = model.kinds.index(kind) if kind in model.kinds else best
                confidence = float(min(1.0, max(0.0, probs[r, best])))
            title, summary = title_and_summary(post.text, kind)
            labels = (
                keyphrase_labels(post.text[:LABEL_CHARS], idf, limit=3, focus=title)
                if r is not None and idf is not None
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


__all__ = [
    "EXAMPLES_PATH",
    "Hyper",
    "OfflineAnalyzer",
    "TrainRunner",
    "in_background",
    "load_examples",
    "train",
]
