"""Chooses the cold change-title prior on one half of the dev set and scores it on the other.

    .venv/bin/python bench/eval_kinds_halves.py --data /work/shared/data/issue-kinds/dev.jsonl

Cold start only (the project's own examples): the examples' model is trained once, and each
strength of ``Hyper.change_title_prior`` (log-odds for ``idea`` when a post's first line is titled
as a change) is applied to its probabilities, as ``OfflineAnalyzer.analyze_many`` does. For three
random half-splits, the strength with the best macro-F1 on one half is scored on the other half,
both ways, so the choice is never scored on the issues it was chosen on. Prints only.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from eval_kinds import OUT, CachedEmbedder, load, macro_f1, post_text  # noqa: E402

from bot.adapters.analyzer_offline import Hyper, OfflineAnalyzer, intent_prior  # noqa: E402
from bot.adapters.embedder_onnx import OnnxEmbedder  # noqa: E402
from bot.adapters.post_intent import settle_kind  # noqa: E402
from bot.config import DEFAULT_TYPE_KINDS  # noqa: E402

STRENGTHS = (0.0, 0.5, 1.0, 1.5, 2.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    args = ap.parse_args()
    rows = load(args.data)
    # The cache eval_kinds.py keeps, keyed by model.
    emb = CachedEmbedder(OUT / f"eval_kinds_embeddings-{OnnxEmbedder.model_id}.npz")
    hyper = Hyper()
    an = OfflineAnalyzer(emb, None, DEFAULT_TYPE_KINDS, hyper=replace(hyper, change_title_prior=0))
    texts = [an._prepare(post_text(r)) for r in rows]
    model = an._current()
    vecs, counts = an._features(texts)
    emb.save()
    raw = model.proba(vecs, counts)
    cut = [t[: hyper.feature_chars] for t in texts]
    gold = [r["kind"] for r in rows]
    pred: dict[float, list[str]] = {}
    for s in STRENGTHS:
        probs = intent_prior(raw, model.kinds, cut, hyper.intent_prior, s)
        best = probs.argmax(axis=1)
        pred[s] = [settle_kind(model.kinds[int(b)], t) for b, t in zip(best, texts, strict=True)]

    def f1(s: float, sel: list[int]) -> float:
        return macro_f1([gold[i] for i in sel], [pred[s][i] for i in sel])[0]

    everything = list(range(len(rows)))
    print("strength  macro-F1 (whole dev set)")
    for s in STRENGTHS:
        print(f"  {s:4.1f}    {f1(s, everything):.3f}")
    for seed in (5, 6, 7):
        order = list(range(len(rows)))
        random.Random(seed).shuffle(order)
        halves = (order[: len(order) // 2], order[len(order) // 2 :])
        for a, b in ((0, 1), (1, 0)):
            # ties go to the weaker prior
            best = max(STRENGTHS, key=lambda s: (round(f1(s, halves[a]), 4), -s))
            print(
                f"seed {seed}, chosen on half {a}: {best} -> other half {f1(best, halves[b]):.3f}"
                f" (0: {f1(0.0, halves[b]):.3f})"
            )


if __name__ == "__main__":
    main()
