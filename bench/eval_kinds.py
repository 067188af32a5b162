"""Measures the offline analyzer's kind classification and throughput. Prints only.

    .venv/bin/python bench/eval_kinds.py --data /work/shared/data/issue-kinds/dev.jsonl

1. Backlog: 5-fold cross-validation. The training folds are indexed as labelled tickets (types
   Bug / New Feature / Question) in a small in-memory index; the held-out fold is triaged. The
   analyzer never sees the held-out fold's labels; its ticket titles are embedded (for the headline
   block) from the training folds only.
2. Cold: nothing indexed; all issues are classified from the project's own examples.
Macro-F1 over bug / idea / question (a prediction of ``other`` counts as wrong), and the expected
calibration error (ECE, 10 equal-width bins) of the confidence the analyzer reports.
3. Throughput of ``analyze_many`` plus index search on 1,000 Slack-length posts.
4. ``--train-time N``: the first training on a backlog of N labelled tickets (titles and bodies of
the dev issues recombined at random, with their cached vectors; the index hands out [body | title]
vectors as the catalogue does), wall and CPU time.

    .venv/bin/python bench/eval_kinds.py --data <dev.jsonl> --no-throughput --train-time 6000

Embeddings are cached under bench/out/ (keyed by the text's SHA-1) so reruns are fast.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.adapters.analyzer_offline import Hyper, OfflineAnalyzer, load_examples  # noqa: E402
from bot.adapters.embedder_onnx import OnnxEmbedder  # noqa: E402
from bot.config import DEFAULT_TYPE_KINDS  # noqa: E402
from bot.domain.models import Match, Post, Ticket  # noqa: E402

OUT = ROOT / "bench" / "out"
LABEL_KIND = {"bug": "bug", "feature": "idea", "question": "question"}
KIND_TYPE = {"bug": "Bug", "idea": "New Feature", "question": "Question"}
CLASSES = ("bug", "idea", "question")


class CachedEmbedder:
    """The real embedder behind a persistent text -> vector cache."""

    model_id = OnnxEmbedder.model_id
    dim = 384

    def __init__(self, path: Path, max_tokens: int = 128) -> None:
        self.inner = OnnxEmbedder(max_tokens=max_tokens)
        self.path = path
        self.cache: dict[str, np.ndarray] = {}
        self.dirty = False
        if path.exists():
            data = np.load(path)
            for k, v in zip(data["keys"], data["vecs"], strict=True):
                self.cache[str(k)] = v

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        keys = [hashlib.sha1(t.encode()).hexdigest() for t in texts]
        todo = sorted(
            {k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}.items()
        )
        if todo:
            vecs = self.inner.embed([t for _, t in todo])
            for (k, _), v in zip(todo, vecs, strict=True):
                self.cache[k] = v
            self.dirty = True
        return np.asarray([self.cache[k] for k in keys], dtype=np.float32)

    def save(self) -> None:
        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            keys = list(self.cache)
            np.savez(
                self.path, keys=np.asarray(keys), vecs=np.asarray([self.cache[k] for k in keys])
            )
            self.dirty = False


class MemIndex:
    """A minimal in-memory TicketIndex: cosine search over ticket vectors."""

    def __init__(self, embedder: CachedEmbedder | OnnxEmbedder) -> None:
        self.embedder = embedder
        self.tickets: dict[str, Ticket] = {}
        self.vecs: dict[str, np.ndarray] = {}
        # key -> [body | title] vector, handed out by labelled() instead of the body's alone
        self.pairs: dict[str, np.ndarray] = {}
        self._version = 0

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        vecs = self.embedder.embed([t.text()[:2000] for t in tickets])
        for t, v in zip(tickets, vecs, strict=True):
            self.tickets[t.key] = t
            self.vecs[t.key] = v
        self._version += 1
        return len(tickets)

    def delete(self, keys: Sequence[str]) -> None:
        for k in keys:
            self.tickets.pop(k, None)
            self.vecs.pop(k, None)
        self._version += 1

    def search(self, text: str, top_k: int = 10) -> list[Match]:
        return self.search_many([text], top_k)[0]

    def search_many(self, texts: Sequence[str], top_k: int = 10) -> list[list[Match]]:
        keys = list(self.tickets)
        if not keys:
            return [[] for _ in texts]
        m = np.asarray([self.vecs[k] for k in keys])
        scores = self.embedder.embed(list(texts)) @ m.T
        out = []
        for row in scores:
            best = np.argsort(-row)[:top_k]
            out.append(
                [
                    Match(
                        key=keys[i],
                        title=self.tickets[keys[i]].title,
                        score=float(max(0.0, row[i])),
                    )
                    for i in best
                ]
            )
        return out

    def count(self) -> int:
        return len(self.tickets)

    def labelled(self) -> list[tuple[Ticket, np.ndarray]]:
        return [(t, self.pairs.get(k, self.vecs[k])) for k, t in self.tickets.items() if t.type]

    def version(self) -> str:
        return str(self._version)


def ece(conf: Sequence[float], correct: Sequence[bool], bins: int = 10) -> float:
    """Expected calibration error: the bins' |mean confidence - accuracy|, weighted by size."""
    c = np.asarray(conf, dtype=np.float64)
    ok = np.asarray(correct, dtype=np.float64)
    which = np.minimum((c * bins).astype(int), bins - 1)
    return float(
        sum(
            (which == b).mean() * abs(c[which == b].mean() - ok[which == b].mean())
            for b in range(bins)
            if (which == b).any()
        )
    )


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> tuple[float, dict[str, float]]:
    per: dict[str, float] = {}
    for c in CLASSES:
        tp = sum(g == c and p == c for g, p in zip(gold, pred, strict=True))
        fp = sum(g != c and p == c for g, p in zip(gold, pred, strict=True))
        fn = sum(g == c and p != c for g, p in zip(gold, pred, strict=True))
        per[c] = 2 * tp / max(1, 2 * tp + fp + fn)
    return sum(per.values()) / len(per), per


def load(path: Path) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in path.open(encoding="utf-8") if line.strip()]
    for r in rows:
        r["kind"] = LABEL_KIND[r["label"]]
    return rows


def post_text(r: dict[str, str]) -> str:
    return f"{r['title']}\n{r['body']}"


def backlog_cv(
    rows: list[dict[str, str]], emb: CachedEmbedder, hyper: Hyper, folds: int = 5
) -> float:
    order = list(range(len(rows)))
    random.Random(7).shuffle(order)
    gold: list[str] = []
    pred: list[str] = []
    conf: list[float] = []
    other = 0
    fit_s = 0.0
    for f in range(folds):
        test = [rows[i] for j, i in enumerate(order) if j % folds == f]
        train = [rows[i] for j, i in enumerate(order) if j % folds != f]
        index = MemIndex(emb)
        index.upsert(
            [
                Ticket(
                    key=r["id"], title=r["title"], description=r["body"], type=KIND_TYPE[r["kind"]]
                )
                for r in train
            ]
        )
        an = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS, hyper=hyper)
        t = time.perf_counter()
        an.source  # noqa: B018 - trains on the training folds
        fit_s += time.perf_counter() - t
        res = an.analyze_many([Post(id=r["id"], text=post_text(r)) for r in test])
        assert an.source == "backlog"
        gold += [r["kind"] for r in test]
        pred += [a.kind for a in res]
        conf += [a.confidence for a in res]
        other += sum(a.kind == "other" for a in res)
    f1, per = macro_f1(gold, pred)
    calib = ece(conf, [g == p for g, p in zip(gold, pred, strict=True)])
    print(
        f"  backlog {folds}-fold macro-F1 {f1:.3f}  per-class "
        + " ".join(f"{k}={v:.3f}" for k, v in per.items())
        + f"  ECE {calib:.3f}  other={other}  train {fit_s / folds:.1f} s/fold"
        + f" ({len(train)} tickets)"
    )
    return f1


def cold(rows: list[dict[str, str]], emb: CachedEmbedder, hyper: Hyper) -> float:
    an = OfflineAnalyzer(emb, None, DEFAULT_TYPE_KINDS, hyper=hyper)
    res = an.analyze_many([Post(id=r["id"], text=post_text(r)) for r in rows])
    f1, per = macro_f1([r["kind"] for r in rows], [a.kind for a in res])
    other = sum(a.kind == "other" for a in res)
    calib = ece(
        [a.confidence for a in res], [a.kind == r["kind"] for a, r in zip(res, rows, strict=True)]
    )
    print(
        f"  cold macro-F1 {f1:.3f}  per-class "
        + " ".join(f"{k}={v:.3f}" for k, v in per.items())
        + f"  ECE {calib:.3f}  other={other}"
    )
    return f1


def train_time(rows: list[dict[str, str]], emb: CachedEmbedder, n: int) -> None:
    """Times the first training on a backlog of *n* labelled tickets (no request waits for it
    in ``serve``, which trains in a background thread)."""
    rng = random.Random(11)
    body = emb.embed([r["title"] + "\n" + r["body"] for r in rows])
    title = emb.embed([r["title"] for r in rows])
    index = MemIndex(emb)
    by_kind: dict[str, list[int]] = {}
    for i, r in enumerate(rows):
        by_kind.setdefault(r["kind"], []).append(i)
    for i in range(n):
        # A title of one issue over the body of another of the same kind: distinct texts.
        a = rng.randrange(len(rows))
        kind = rows[a]["kind"]
        same = rng.choice(by_kind[kind])
        t = Ticket(
            key=f"T-{i}",
            title=rows[a]["title"],
            description=rows[same]["body"],
            type=KIND_TYPE[kind],
        )
        index.tickets[t.key] = t
        index.vecs[t.key] = body[same]
        index.pairs[t.key] = np.concatenate([body[same], title[a]])
    an = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS)
    an._own_examples()  # the examples' vectors are cached by the benchmark, not what we time
    wall, cpu = time.perf_counter(), time.process_time()
    source = an.source
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    model = an._current()
    print(
        f"first training on {n} labelled tickets ({source}, {model.trained_on} rows with the "
        f"own examples): {wall:.1f} s wall, {cpu:.1f} s CPU"
    )


def throughput(rows: list[dict[str, str]], n: int = 1000) -> None:
    rng = random.Random(3)
    vocab = [w for r in rows[:300] for w in r["title"].split()] + [
        w for t, _ in load_examples(ROOT / "bot" / "examples" / "kinds.jsonl") for w in t.split()
    ]
    posts = [
        Post(id=str(i), text=" ".join(rng.choice(vocab) for _ in range(rng.randint(20, 80))))
        for i in range(n)
    ]
    emb = OnnxEmbedder(max_tokens=128)
    index = MemIndex(emb)
    index.upsert(
        [
            Ticket(
                key=f"T-{i}",
                title=r["title"],
                description=r["body"][:500],
                type=KIND_TYPE[r["kind"]],
            )
            for i, r in enumerate(rows[:600])
        ]
    )
    an = OfflineAnalyzer(emb, index, DEFAULT_TYPE_KINDS)
    an.analyze_many(posts[:5])  # trains and loads the model; not what we time
    t0 = time.perf_counter()
    res = an.analyze_many(posts)
    t1 = time.perf_counter()
    index.search_many([p.text for p in posts], top_k=5)
    t2 = time.perf_counter()
    emb.embed([p.text for p in posts])
    t3 = time.perf_counter()
    words = sum(len(p.text.split()) for p in posts) / n
    kinds = {k: sum(a.kind == k for a in res) for k in ("idea", "bug", "question", "other")}
    print(
        f"throughput: {n} posts (~{words:.0f} words): analyze_many {n / (t1 - t0):.0f} posts/s; "
        f"+ index search_many (embeds again) {n / (t2 - t0):.0f} posts/s; "
        f"embedder alone {n / (t3 - t2):.0f} posts/s; kinds {kinds}"
    )
    big = Post(id="big", text=("word " * 4000) + " <!channel> :tada:")
    t3 = time.perf_counter()
    an.analyze(big)
    print(f"one 20,000-char post: {1000 * (time.perf_counter() - t3):.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--sweep", action="store_true", help="also try other hyper-parameters")
    ap.add_argument("--no-throughput", action="store_true")
    ap.add_argument("--no-eval", action="store_true", help="skip the F1 / ECE runs")
    ap.add_argument(
        "--train-time", type=int, default=0, metavar="N", help="time a first training at N tickets"
    )
    args = ap.parse_args()
    rows = load(args.data)
    # Keyed by model: vectors of another model (or computation) must not be reused.
    emb = CachedEmbedder(OUT / f"eval_kinds_embeddings-{OnnxEmbedder.model_id}.npz")
    variants = {} if args.no_eval else {"default": Hyper()}
    if args.sweep:
        base = Hyper()
        variants.update(
            {
                "l2=1e-3": replace(base, l2=1e-3),
                "dense_scale=2": replace(base, dense_scale=2.0),
                "dense_scale=0.5": replace(base, dense_scale=0.5),
                "dense_scale=0 (tfidf only)": replace(base, dense_scale=0.0),
                "head_scale=0 (no headline block)": replace(base, head_scale=0.0),
                "head_scale=0, previous defaults": replace(
                    base, head_scale=0.0, dense_scale=0.3, l2=1e-4
                ),
                "head_scale=1.5": replace(base, head_scale=1.5),
                "l2=3e-5": replace(base, l2=3e-5),
                "feature_chars=800": replace(base, feature_chars=800),
                "feature_chars=4000": replace(base, feature_chars=4000),
                "embed_chars=400": replace(base, embed_chars=400),
                "own_weight=0.5": replace(base, own_weight=0.5),
                "own_weight=5": replace(base, own_weight=5.0),
                "iters=600": replace(base, iters=600),
                "no kNN evidence": replace(base, knn_weight=0.0),
                "kNN ungated (gate=0), k=10, temp=1": replace(
                    base, knn_gate=0.0, knn_k=10, knn_temp=1.0, knn_weight=0.2
                ),
                "kNN gate=0.7": replace(base, knn_gate=0.7),
                "kNN weight=0.8": replace(base, knn_weight=0.8),
                "no temperature (T=1)": replace(base, temperature=1.0, cold_temperature=1.0),
                "temperature 0.4 / cold 0.7": replace(base, temperature=0.4, cold_temperature=0.7),
                "lead=10": replace(base, lead=10),
                "lead=40": replace(base, lead=40),
                "no intent cues (before)": replace(base, intent_prior=0.0, intent_features=0.0),
                "intent cues as features only": replace(base, intent_prior=0.0),
                "cold intent prior only": replace(base, intent_features=0.0),
                "cold intent prior 1.0": replace(base, intent_prior=1.0),
                "intent features tf 0.5, no prior": replace(
                    base, intent_prior=0.0, intent_features=0.5
                ),
                "intent features tf 3, no prior": replace(
                    base, intent_prior=0.0, intent_features=3.0
                ),
            }
        )
    try:
        for name, hyper in variants.items():
            t = time.perf_counter()
            print(f"[{name}]")
            backlog_cv(rows, emb, hyper)
            cold(rows, emb, hyper)
            emb.save()
            print(f"  ({time.perf_counter() - t:.0f} s)")
        if args.train_time:
            train_time(rows, emb, args.train_time)
    finally:
        emb.save()
    if not args.no_throughput:
        throughput(rows)


if __name__ == "__main__":
    main()
