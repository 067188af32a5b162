"""Retrieval quality of the ticket index on labelled duplicates, and the likely-duplicate rule.

    .venv/bin/python bench/eval_duplicates.py --data /work/shared/data/duplicates/

For every ticket listed in pairs.jsonl, its text is the query against all *other* tickets; a hit is
any of its listed duplicates. Reports Recall@1/5/10 and MRR for dense-only, title-only, BM25-only
and fused scoring, a small grid over the fusion weights, and precision/recall of candidate
"likely duplicate" rules on a balanced set. Embeddings are cached under bench/out/.
It also runs the same queries through ``LocalIndex`` itself (query ticket deleted from the index
for the query, so leave-one-out as above) to check that its candidate stage loses nothing
against the exhaustive fused ranking.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.fusion import DEFAULT_FUSION
from bot.adapters.lexical import (
    DEFAULT_WEIGHTS,
    SIGNALS,
    FusionWeights,
    InvertedIndex,
    headline,
    relative,
)
from bot.domain.duplicates import is_likely_duplicate
from bot.domain.models import Match, Ticket

OUT = Path(__file__).resolve().parent / "out"
Array = npt.NDArray[np.float32]


def load(data: Path) -> tuple[list[Ticket], dict[str, list[str]]]:
    """Tickets and the duplicate lists of the query tickets."""
    tickets = []
    with (data / "tickets.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            tickets.append(
                Ticket(
                    key=str(row["key"]),
                    title=row.get("title") or "",
                    description=row.get("description") or "",
                    status=row.get("status"),
                )
            )
    pairs: dict[str, list[str]] = {}
    with (data / "pairs.jsonl").open(encoding="utf-8") as f:
        for line in f:
            row = json.loads(line)
            pairs[str(row["key"])] = [str(k) for k in row["duplicates"]]
    return tickets, pairs


def embeddings(tickets: list[Ticket], max_tokens: int) -> tuple[Array, Array, float]:
    """(body, title) vectors from the real embedder, cached by data hash and max_tokens."""
    from bot.adapters.embedder_onnx import OnnxEmbedder

    texts = [t.text() for t in tickets] + [t.title for t in tickets]
    digest = hashlib.sha256("\x00".join(texts).encode()).hexdigest()[:16]
    # EMBED_COMPUTE=float32 measures the model as it ran before int8 compute (same vectors).
    emb = OnnxEmbedder(max_tokens=max_tokens, compute=os.environ.get("EMBED_COMPUTE", "int8"))
    path = OUT / f"emb-{emb.model_id}-{max_tokens}-{digest}.npz"
    if path.exists():
        z = np.load(path)
        return z["body"], z["title"], float(z["seconds"])
    OUT.mkdir(parents=True, exist_ok=True)
    emb.embed(["warm up"])
    t0 = time.perf_counter()
    vecs = emb.embed(texts)
    secs = time.perf_counter() - t0
    n = len(tickets)
    np.savez(path, body=vecs[:n], title=vecs[n:], seconds=secs)
    return vecs[:n], vecs[n:], secs


def ranks(scores: Array, qrows: list[int], relevant: list[set[int]]) -> list[int | None]:
    """1-based rank of the first relevant row per query (self excluded), None if absent."""
    out: list[int | None] = []
    for j, q in enumerate(qrows):
        s = scores[j].copy()
        s[q] = -np.inf
        order = np.argsort(-s, kind="stable")
        hit = next((r + 1 for r, i in enumerate(order[:100]) if i in relevant[j]), None)
        out.append(hit)
    return out


def metrics(rk: list[int | None]) -> dict[str, float]:
    """Recall@1/5/10 and MRR (over the first 100)."""
    n = len(rk)
    return {
        "R@1": sum(1 for r in rk if r is not None and r <= 1) / n,
        "R@5": sum(1 for r in rk if r is not None and r <= 5) / n,
        "R@10": sum(1 for r in rk if r is not None and r <= 10) / n,
        "MRR": sum(1.0 / r for r in rk if r is not None) / n,
    }


def fmt(m: dict[str, float]) -> str:
    """One line of metrics."""
    return "  ".join(f"{k} {v:.3f}" for k, v in m.items())


def signal_matrices(
    rows: list[int], tickets: list[Ticket], body_v: Array, title_v: Array, lex_index: InvertedIndex
) -> dict[str, Array]:
    """Every signal of the query tickets *rows* against all tickets (self scored 0).

    The query vectors are the tickets' own body vectors (the same text, so the same embedding)
    and, for the headline, the title vector when the headline is the title.
    """
    q = body_v[rows]
    h = title_v[rows]
    lex = []
    lex_abs = []
    for r in rows:
        raw, _ = lex_index.scores(tickets[r].text(), exclude=r)
        lex.append(relative(raw))
        lex_abs.append(raw)
    sig = {
        "body": q @ body_v.T,
        "title": q @ title_v.T,
        "head_body": h @ body_v.T,
        "head_title": h @ title_v.T,
        "lexical": np.stack(lex),
        "lexical_abs": np.stack(lex_abs),
    }
    for j, r in enumerate(rows):
        for m in sig.values():
            m[j, r] = 0.0
    return sig


def rrf_exhaustive(
    sig: dict[str, Array], rows: list[int], tickets: list[Ticket], lex_title: InvertedIndex
) -> Array:
    """The shipped rank fusion over every ticket (self ranked last), as LocalIndex approximates
    it on its candidates."""
    full = dict(sig)
    full["lexical_title"] = np.stack(
        [lex_title.scores(tickets[r].text(), exclude=r)[0] for r in rows]
    )
    for m in full.values():
        m[np.arange(len(rows)), rows] = -np.inf
    return np.asarray(DEFAULT_FUSION.rank_scores(full), dtype=np.float32)


class CachedEmbedder:
    """Serves the cached vectors of the data set's texts (bodies and titles) to LocalIndex."""

    dim = 384

    def __init__(self, model_id: str, texts: list[str], vecs: Array) -> None:
        self.model_id = model_id
        self.vec_of = dict(zip(texts, vecs, strict=True))

    def embed(self, texts: Sequence[str]) -> Array:
        """The cached vectors of *texts* (all must be from the data set)."""
        return np.stack([self.vec_of[t] for t in texts]).astype(np.float32)


def index_check(
    tickets: list[Ticket],
    qrows: list[int],
    relevant: list[set[int]],
    body_v: Array,
    title_v: Array,
    exhaustive: Array,
) -> None:
    """Ranks every query through LocalIndex and compares with the exhaustive fused ranking."""
    from bot.adapters.index_local import LocalIndex
    from bot.adapters.store_sql import SqlStore

    texts = [t.text() for t in tickets] + [t.title for t in tickets]
    emb = CachedEmbedder("cached", texts, np.concatenate([body_v, title_v]))
    row_of = {t.key: i for i, t in enumerate(tickets)}
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'eval.sqlite3'}")
        ix = LocalIndex(emb, store, "DUP")
        ix.upsert(tickets)
        rk: list[int | None] = []
        same = 0
        overlap = 0.0
        for j, r in enumerate(qrows):
            ix.delete([tickets[r].key])
            found = ix.search_vectors(
                [tickets[r].text()], body_v[r : r + 1], title_v[r : r + 1], 10
            )[0]
            ix.upsert([tickets[r]])
            got = [row_of[m.key] for m in found]
            rk.append(next((n + 1 for n, i in enumerate(got) if i in relevant[j]), None))
            s = exhaustive[j].copy()
            s[r] = -np.inf
            exact = np.argsort(-s, kind="stable")[:10].tolist()
            same += got == exact
            overlap += len(set(got) & set(exact)) / len(exact)
    m = metrics(rk)
    m["MRR"] = float("nan")  # only the top 10 is returned
    print(f"  {'LocalIndex (candidates)':<22} {fmt(m)}")
    print(
        f"  LocalIndex top-10 identical to the exhaustive RRF top-10: {same}/{len(qrows)}, "
        f"recall@10 against it {overlap / len(qrows):.3f}"
    )


def main(argv: list[str] | None = None) -> None:
    """Runs the evaluation and prints the report."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/duplicates/"))
    ap.add_argument("--max-tokens", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--grid", action="store_true", help="also print the fusion weight grid")
    args = ap.parse_args(argv)

    tickets, pairs = load(args.data)
    row_of = {t.key: i for i, t in enumerate(tickets)}
    queries = [k for k in pairs if k in row_of]
    qrows = [row_of[k] for k in queries]
    relevant = [{row_of[d] for d in pairs[k] if d in row_of} for k in queries]
    heads_are_titles = sum(headline(tickets[r].text()) == tickets[r].title.strip() for r in qrows)
    print(f"{len(tickets)} tickets, {len(queries)} queries with labelled duplicates")
    print(f"(query headline == ticket title for {heads_are_titles}/{len(qrows)} queries)")

    lex_index = InvertedIndex()
    lex_index.append([t.text() for t in tickets])
    lex_title = InvertedIndex()
    lex_title.append([t.title for t in tickets])
    w = DEFAULT_WEIGHTS
    chosen: dict[str, Array] = {}
    for mt in args.max_tokens:
        body_v, title_v, secs = embeddings(tickets, mt)
        print(f"\nmax_tokens={mt}: embedding {2 * len(tickets)} texts took {secs:.1f} s")
        sig = signal_matrices(qrows, tickets, body_v, title_v, lex_index)
        for name in SIGNALS:
            print(f"  {name + ' only':<22} {fmt(metrics(ranks(sig[name], qrows, relevant)))}")
        dense = FusionWeights(w.body, w.title, w.head_title, w.head_body, 0.0)
        print(
            f"  {'dense (4 cosines)':<22} {fmt(metrics(ranks(dense.fuse(sig), qrows, relevant)))}"
        )
        mean = fmt(metrics(ranks(w.fuse(sig), qrows, relevant)))
        print(f"  {'fused (weighted mean)':<22} {mean}")
        rrf = rrf_exhaustive(sig, qrows, tickets, lex_title)
        print(f"  {'RRF (shipped)':<22} {fmt(metrics(ranks(rrf, qrows, relevant)))}")
        if not chosen:
            index_check(tickets, qrows, relevant, body_v, title_v, rrf)
        if args.grid:
            grid = []
            g = (0.0, 0.1, 0.2, 0.3, 0.4)
            for wb, wt, wht, whb, wl in itertools.product((0.3, 0.5, 0.7), g, g, (0.0, 0.2), g):
                fw = FusionWeights(wb, wt, wht, whb, wl)
                m = metrics(ranks(fw.fuse(sig), qrows, relevant))
                grid.append((m["MRR"] + m["R@5"], fw, m))
            grid.sort(key=lambda x: -x[0])
            print("  best 10 of the weight grid (by MRR + R@5):")
            for _, fw, m in grid[:10]:
                print(f"    {fw}: {fmt(m)}")
        if not chosen:
            chosen = {"mt": np.array(mt), "body_v": body_v, "title_v": title_v, **sig}

    # ---------------------------------------------------------------- likely-duplicate rule
    mt = int(chosen["mt"])
    body_v, title_v = chosen["body_v"], chosen["title_v"]
    sig = {k: chosen[k] for k in (*SIGNALS, "lexical_abs")}
    Item = tuple[float, dict[str, float]]

    def top1(sg: dict[str, Array], j: int) -> tuple[int, Item]:
        fused = w.fuse({k: v[j] for k, v in sg.items()})
        i = int(np.argmax(fused))
        return i, (float(fused[i]), {k: float(v[j, i]) for k, v in sg.items()})

    positives: list[Item] = []
    hard: list[Item] = []
    for j in range(len(qrows)):
        i, item = top1(sig, j)
        (positives if i in relevant[j] else hard).append(item)
    in_pairs = {row_of[k] for k in pairs if k in row_of} | {
        row_of[d] for v in pairs.values() for d in v if d in row_of
    }
    others = [i for i in range(len(tickets)) if i not in in_pairs]
    o_sig = signal_matrices(others, tickets, body_v, title_v, lex_index)
    negatives = [top1(o_sig, j)[1] for j in range(len(others))]
    print(
        f"\nlikely-duplicate rule (max_tokens={mt}): {len(positives)} positives (labelled query, "
        f"true duplicate ranked first) vs {len(negatives)} negatives (top-1 of every ticket with "
        f"no labelled duplicate), weighted to a balanced 50/50 set; 'hard' = {len(hard)} labelled "
        "queries whose top-1 is a wrong ticket (fraction that fire)"
    )

    def report(name: str, pred: Any) -> None:
        rec = sum(1 for s, g in positives if pred(s, g)) / len(positives)
        fpr = sum(1 for s, g in negatives if pred(s, g)) / len(negatives)
        hard_fire = sum(1 for s, g in hard if pred(s, g)) / max(1, len(hard))
        prec = rec / (rec + fpr) if rec + fpr else float("nan")
        print(
            f"  {name:<52} precision {prec:.3f}  recall {rec:.3f}  fpr {fpr:.3f}  "
            f"hard {hard_fire:.2f}"
        )

    for thr in (0.6, 0.65, 0.7, 0.75, 0.8):
        report(f"fused >= {thr}", lambda s, g, thr=thr: s >= thr)
    for a, bb, c in itertools.product((0.7, 0.8), (0.2, 0.3), (0.6, 0.7)):
        report(
            f"body >= {a} & lexical_abs >= {bb} & title >= {c}",
            lambda s, g, a=a, bb=bb, c=c: (
                g["body"] >= a and g["lexical_abs"] >= bb and g["title"] >= c
            ),
        )
    for thr, c in itertools.product((0.65, 0.7, 0.75), (0.7, 0.8)):
        report(
            f"fused >= {thr} & body >= 0.7 & max(title,head_title) >= {c}",
            lambda s, g, thr=thr, c=c: (
                s >= thr and g["body"] >= 0.7 and max(g["title"], g["head_title"]) >= c
            ),
        )
    report(
        "is_likely_duplicate() defaults",
        lambda s, g: is_likely_duplicate(Match(key="x", score=s, signals=g)),
    )
    qs = [0.1, 0.25, 0.5, 0.75, 0.9]
    names = ("fused", *SIGNALS, "lexical_abs")
    for label, group in (("positives", positives), ("negatives", negatives), ("hard", hard)):
        print(f"  {label}: quantiles {qs}")
        arr = np.array([[s] + [g[k] for k in names[1:]] for s, g in group])
        for col, name in enumerate(names):
            print(f"    {name:<11} {np.round(np.quantile(arr[:, col], qs), 3).tolist()}")


if __name__ == "__main__":
    main()
