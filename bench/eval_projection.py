"""Recall of the projected candidate pass (bot/adapters/dense_candidates.py) on real embeddings.

    .venv/bin/python bench/eval_projection.py --data /work/shared/data/duplicates/

Every ticket's body and title vectors (the real model, cached by eval_duplicates.py) form the
corpus; each row is a query against all others. For each number of principal components and of
candidates, the exact top-10 by inner product is compared with the top-10 after the projected
pass and exact re-scoring of its candidates: recall@10 (share of the exact top-10 found) and how
often the top-1 is the same. Projected rows are 1/3 (128 of 384) of the bytes per query.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.eval_duplicates import embeddings, load
from bot.adapters.dense_candidates import ProjectedRows


def main(argv: list[str] | None = None) -> None:
    """Prints recall@10 and top-1 agreement per setting."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/duplicates/"))
    ap.add_argument("--queries", type=int, default=1000)
    args = ap.parse_args(argv)
    tickets, _ = load(args.data)
    body, title, _ = embeddings(tickets, 256)
    corpus = np.concatenate([body, title]).astype(np.float32)
    n = len(corpus)
    rng = np.random.default_rng(0)
    qs = rng.choice(n, min(args.queries, n), replace=False)
    exact = corpus[qs] @ corpus.T
    exact[np.arange(len(qs)), qs] = -np.inf
    truth = np.argsort(-exact, axis=1)[:, :10]
    print(f"{n} real embeddings (bodies and titles), {len(qs)} queries, top-10")
    for dims in (64, 96, 128, 192):
        proj = ProjectedRows(corpus.shape[1], dims=dims, min_rows=0)
        proj.refit(corpus)
        for cand in (64, 128, 256, 512):
            rec, same = 0.0, 0
            for j, q in enumerate(qs):
                approx = proj.scores(corpus[q], n)
                approx[q] = -np.inf
                c = np.argpartition(-approx, cand)[:cand]
                c = c[c != q]
                top = c[np.argsort(-(corpus[c] @ corpus[q]))[:10]]
                rec += len(set(top.tolist()) & set(truth[j].tolist())) / 10
                same += int(top[0] == truth[j, 0])
            print(
                f"  {dims:>3} components, {cand:>3} candidates: recall@10 {rec / len(qs):.3f}, "
                f"top-1 same {same / len(qs):.3f}"
            )


if __name__ == "__main__":
    main()
