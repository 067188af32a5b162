"""Throughput of offline triage: 1,000 Slack-length posts against 10,000 indexed tickets.

The posts and tickets are synthetic (generated here from a small product vocabulary). Ticket
vectors are random unit vectors under the real model's id: search cost does not depend on their
content, and embedding 10,000 tickets first would only measure indexing (see bench_index.py).
The posts go through the same path as `python -m bot triage`: the offline analyzer and the index,
both on the real int8 MiniLM behind the embedding cache, in batches of 64, the next batch's
embeddings computed while one is searched (``Triager.triage_stream``; ``--no-overlap``: one
``triage_many`` per batch, as before).

    .venv/bin/python bench/bench_triage.py [--posts 1000] [--tickets 10000]

``--fake-model`` swaps the model for a table lookup of fixed unit vectors, so what is left is the
rest of the triage path (cleaning, features, classifier, titles, labels, search); ``--profile N``
prints the N costliest functions by cumulative time (cProfile, over the timed part only).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import sys
import tempfile
import time
import zlib
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


class FixedVectors:
    """A stand-in for the model: each text gets one of 1,024 fixed unit vectors (by its CRC)."""

    def __init__(self, model_id: str, dim: int) -> None:
        self.model_id, self.dim = model_id, dim
        self.workers, self.batch_size = 0, 0
        table = np.random.default_rng(3).standard_normal((1024, dim)).astype(np.float32)
        self.table = table / np.linalg.norm(table, axis=1, keepdims=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self.table[[zlib.crc32(t.encode()) % len(self.table) for t in texts]]


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
    ap.add_argument("--fake-model", action="store_true", help="fixed vectors instead of MiniLM")
    ap.add_argument(
        "--no-overlap", action="store_true", help="triage_many per batch (no embedding ahead)"
    )
    ap.add_argument("--profile", type=int, default=0, help="print the N costliest functions")
    args = ap.parse_args()
    rng = random.Random(1)
    real: OnnxEmbedder | FixedVectors = (
        FixedVectors(OnnxEmbedder.model_id, OnnxEmbedder.dim)
        if args.fake_model
        else OnnxEmbedder(
            max_tokens=256, batch_size=args.embed_batch or None, workers=args.workers or None
        )
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
        profiler = cProfile.Profile() if args.profile else None
        t0, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
        if profiler is not None:
            profiler.enable()
        batches = [posts[s : s + args.batch] for s in range(0, len(posts), args.batch)]
        done = 0
        if args.no_overlap:
            for batch in batches:
                done += len(service.triage_many(batch))
        else:
            for verdicts in service.triage_stream(batches):
                done += len(verdicts)
        if profiler is not None:
            profiler.disable()
        dt, cpu = time.perf_counter() - t0, time.process_time() - cpu
        own = time.thread_time() - own  # the caller's thread: analysis, search (and the model
        # itself where nothing else runs it); the rest is the embedding threads'

        print(f"triage: {done} posts (20-80 words) against {index.count()} tickets")
        print(
            f"  {dt:.1f} s, {done / dt:.0f} posts/s (batch {args.batch}, offline analyzer, "
            f"embedder: {real.workers} worker(s), {real.batch_size} texts per run); "
            f"CPU {cpu * 1000 / done:.1f} ms/post ({own * 1000 / done:.1f} on the calling "
            f"thread); load average {load:.2f} -> "
            f"{os.getloadavg()[0]:.2f} (2 cores)"
            + (" [fake model]" if args.fake_model else "")
            + (" [no overlap]" if args.no_overlap else "")
        )
        if profiler is not None:
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(args.profile)


if __name__ == "__main__":
    main()
