"""Throughput of offline triage: 1,000 Slack-length posts against 10,000 indexed tickets.

The posts and tickets are synthetic (generated here from a small product vocabulary). Ticket
vectors are random unit vectors under the real model's id: search cost does not depend on their
content, and embedding 10,000 tickets first would only measure indexing (see bench_index.py).
The posts go through the same path as `python -m bot triage`: the offline analyzer and the index,
both on the real int8 MiniLM behind the embedding cache, in batches of 64.

    .venv/bin/python bench/bench_triage.py [--posts 1000] [--tickets 10000]
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bot.adapters.analyzer_offline import OfflineAnalyzer
from bot.adapters.embedder_cache import CachedEmbedder
from bot.adapters.embedder_onnx import OnnxEmbedder
from bot.adapters.index_local import LocalIndex
from bot.adapters.store_sql import SqlStore
from bot.config import DEFAULT_TYPE_KINDS
from bot.domain.models import Post, Ticket
from bot.service.triage import Triager

WORDS = (
    "dashboard export report upload photo login password search filter calendar sync mobile app "
    "android ios web page button settings profile team workspace project board ticket label "
    "notification email slack deploy build pipeline api key token admin user invite billing "
    "invoice chart graph dark mode theme keyboard shortcut template onboarding checklist timeout "
    "crash error slow broken blank missing wrong duplicate offline cache image file csv pdf"
).split()
GLUE = "the a when we our it is to for and with after on in could would should please maybe".split()


class RandomVectors:
    """Random unit vectors under another embedder's model id (only for filling the index)."""

    def __init__(self, model_id: str, dim: int, seed: int = 7) -> None:
        self.model_id, self.dim = model_id, dim
        self.rng = np.random.default_rng(seed)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        v = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def sentence(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) if rng.random() < 0.6 else rng.choice(GLUE) for _ in range(n))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--posts", type=int, default=1000)
    ap.add_argument("--tickets", type=int, default=10000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=0, help="embedder batches at once (0: default)")
    ap.add_argument(
        "--embed-batch", type=int, default=0, help="texts per model run (0: the embedder's default)"
    )
    args = ap.parse_args()
    rng = random.Random(1)
    real = OnnxEmbedder(
        max_tokens=256, batch_size=args.embed_batch or None, workers=args.workers or None
    )
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        filler = LocalIndex(RandomVectors(real.model_id, real.dim), store)  # type: ignore[arg-type]
        tickets = [
            Ticket(key=f"T-{i}", title=sentence(rng, 8), description=sentence(rng, 40))
            for i in range(args.tickets)
        ]
        filler.upsert(tickets)
        embedder = CachedEmbedder(real)
        index = LocalIndex(embedder, store)
        analyzer = OfflineAnalyzer(
            embedder=embedder, index=index, type_kinds=DEFAULT_TYPE_KINDS, min_labelled=30
        )
        service = Triager(analyzer, index)
        posts = [
            Post(id=str(i), text=sentence(rng, rng.randint(20, 80))) for i in range(args.posts)
        ]
        service.triage_many(posts[:8])  # load the model and train the classifier
        embedder._cache.clear()
        load = os.getloadavg()[0]
        t0, cpu = time.perf_counter(), time.process_time()
        done = 0
        for start in range(0, len(posts), args.batch):
            done += len(service.triage_many(posts[start : start + args.batch]))
        dt, cpu = time.perf_counter() - t0, time.process_time() - cpu
        print(f"triage: {done} posts (20-80 words) against {index.count()} tickets")
        print(
            f"  {dt:.1f} s, {done / dt:.0f} posts/s (batch {args.batch}, offline analyzer, "
            f"embedder: {real.workers} worker(s), {real.batch_size} texts per run); "
            f"CPU {cpu * 1000 / done:.1f} ms/post; load average {load:.2f} -> "
            f"{os.getloadavg()[0]:.2f} (2 cores)"
        )


if __name__ == "__main__":
    main()
