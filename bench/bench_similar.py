"""Search latency and batch throughput of the local index on synthetic tickets.

    .venv/bin/python bench/bench_similar.py                 # 100,000 tickets, 300 single queries
    .venv/bin/python bench/bench_similar.py --n 10000 --throughput 500
    .venv/bin/python bench/bench_similar.py --busy-core     # also with one core taken

Part 1 (embedding excluded): tickets get random unit vectors and synthetic Zipf-distributed
texts (~60 words), stored in a SQLite catalogue; each single query is timed through
``LocalIndex.search_vectors`` (dense products, BM25 over postings, fusion, top-k) and p50/p99
are printed, then the catch-up query a search makes before it.
It also prints how often the top-k equals an exhaustive exact ranking (the candidate stage's
recall), and the time of small upserts (1 ticket, then a page of 100) into the 100k index with the
first query after each (which rebuilds the BM25 postings).
Part 2 (``--throughput``): ``search_many`` on that many synthetic posts (~40 words), including
the real ONNX embedder, against the same index; prints queries/s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.embedder_onnx import OnnxEmbedder
from bot.adapters.index_local import CANDIDATES, LocalIndex
from bot.adapters.store_sql import SqlStore
from bot.domain.models import Ticket


class RandomEmbedder:
    """Random unit vectors under the real model's id, so the index can be re-opened with it.

    Real sentence embeddings are far from isotropic: their covariance's eigenvalues decay
    roughly as 1/i^0.9 (measured on MiniLM vectors of bug reports: the top 128 of 384
    components carry ~86 % of the variance). These random vectors follow such a spectrum, so
    that the projected candidate pass meets what it would meet in production.
    With *related* (a cosine), a call with an even number of texts is taken as LocalIndex's
    (bodies, then their titles) and each title vector gets that cosine with its body's, as real
    tickets do (mean cosine 0.74 between a ticket's body and title vectors in the labelled
    Bugzilla set); with 0 every vector is independent of every other.
    """

    model_id = OnnxEmbedder.model_id
    dim = 384

    def __init__(self, seed: int = 0, related: float = 0.0) -> None:
        self.rng = np.random.default_rng(seed)
        self.std = (np.arange(1, self.dim + 1) ** -0.45).astype(np.float32)
        self.related = related

    def random(self, n: int) -> npt.NDArray[np.float32]:
        """*n* independent unit vectors with the MiniLM-like spectrum."""
        v = self.rng.standard_normal((n, self.dim)).astype(np.float32) * self.std
        out: npt.NDArray[np.float32] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    def near(self, v: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Unit vectors with cosine ~*related* to the rows of *v*."""
        c = np.float32(self.related)
        w = c * v + np.sqrt(np.float32(1) - c * c) * self.random(len(v))
        out: npt.NDArray[np.float32] = w / np.linalg.norm(w, axis=1, keepdims=True)
        return out

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        n = len(texts)
        if not self.related or n % 2:
            return self.random(n)
        body = self.random(n // 2)
        return np.concatenate([body, self.near(body)])


def synthetic_texts(n: int, words: int, rng: np.random.Generator, vocab: list[str]) -> list[str]:
    """*n* texts of about *words* words drawn from a Zipf distribution over *vocab*."""
    ranks = np.minimum(rng.zipf(1.2, size=(n, words)), len(vocab)) - 1
    return [" ".join(vocab[i] for i in row) for row in ranks]


def exact_top(
    ix: LocalIndex, text: str, q: npt.NDArray[np.float32], h: npt.NDArray[np.float32], k: int
) -> list[str]:
    """Keys of the *k* best tickets by the rank fusion computed on every row (no candidates)."""
    d = q.shape[0]
    body, title = ix._vecs[:, :d], ix._vecs[:, d:]
    signals = {
        "body": body @ q,
        "title": title @ q,
        "head_body": body @ h,
        "head_title": title @ h,
        "lexical": ix._lex.scores(text)[0],
        "lexical_title": ix._lex_title.scores(text)[0],
    }
    fused = ix.fusion.rank_scores(signals)
    order = np.lexsort((np.arange(len(fused)), -fused))[:k]
    return [ix._keys[i] for i in order]


def dense_recall(ix: LocalIndex, q: npt.NDArray[np.float32], h: npt.NDArray[np.float32]) -> float:
    """Share of the exact top-10 by the candidate stage's mixed dense score that the (projected)
    candidate pass keeps among its candidates."""
    a = np.float32(ix._mix_q)
    mq = a * q + (1 - a) * h
    n = len(ix._vecs)
    exact = np.argsort(-(ix._mix[:n] @ mq))[:10]
    approx = ix._proj.scores(mq, n) if ix._proj.active else ix._mix[:n] @ mq
    cand = np.argpartition(-approx, CANDIDATES)[:CANDIDATES]
    return len(set(exact.tolist()) & set(cand.tolist())) / 10


def busy_core(seconds: float = 300.0) -> subprocess.Popen[bytes]:
    """Another process keeping one core busy; it stops by itself after *seconds*."""
    loop = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    return subprocess.Popen([sys.executable, "-c", loop])


def percentile(xs: list[float], p: float) -> float:
    """The p-th percentile of xs in milliseconds."""
    return float(np.percentile(np.asarray(xs) * 1000.0, p))


def main(argv: list[str] | None = None) -> None:
    """Builds the synthetic index, runs both parts and prints the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--throughput", type=int, default=0, help="posts for search_many (0: skip)")
    ap.add_argument("--top-k", type=int, default=10)
    ap.add_argument(
        "--busy-core",
        action="store_true",
        help="time the queries again while another process spins on one core (the goal's case)",
    )
    ap.add_argument(
        "--related",
        type=float,
        default=0.74,
        help="cosine of a ticket's title vector with its body's, and of a query's headline "
        "vector with its text's (real tickets: 0.74); 0 makes the dense signals unrelated",
    )
    args = ap.parse_args(argv)
    print(f"load average at start: {os.getloadavg()[0]:.2f} (2 cores)")

    rng = np.random.default_rng(42)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "fe"]
    vocab = sorted(
        {"".join(rng.choice(syllables, size=int(rng.integers(2, 5)))) for _ in range(60_000)}
    )
    t0 = time.perf_counter()
    titles = synthetic_texts(args.n, 8, rng, vocab)
    bodies = synthetic_texts(args.n, 60, rng, vocab)
    tickets = [
        Ticket(key=f"SYN-{i}", title=titles[i], description=bodies[i], type="Bug")
        for i in range(args.n)
    ]
    print(f"{args.n} synthetic tickets generated in {time.perf_counter() - t0:.1f} s")
    with tempfile.TemporaryDirectory() as tmp:
        store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
        ix = LocalIndex(RandomEmbedder(related=args.related), store, "SYN")
        t0 = time.perf_counter()
        ix.upsert(tickets)
        print(
            f"indexed (random vectors stored in the SQLite catalogue, loaded back, BM25 postings) "
            f"in {time.perf_counter() - t0:.1f} s"
        )
        queries = synthetic_texts(args.queries, 40, rng, vocab)
        qv = RandomEmbedder(seed=1).random(len(queries))
        hv = RandomEmbedder(seed=2, related=args.related).near(qv) if args.related else None
        if hv is None:
            hv = RandomEmbedder(seed=2).random(len(queries))
        ix.search_vectors(queries[:1], qv[:1], hv[:1], args.top_k)  # builds the postings once
        for busy in (False, True) if args.busy_core else (False,):
            spinner = busy_core() if busy else None
            times = []
            cpu = time.process_time()
            for i in range(len(queries)):
                t = time.perf_counter()
                ix.search_vectors(queries[i : i + 1], qv[i : i + 1], hv[i : i + 1], args.top_k)
                times.append(time.perf_counter() - t)
            cpu = (time.process_time() - cpu) / len(queries)
            if spinner is not None:
                spinner.terminate()
                spinner.wait(timeout=10)
            print(
                f"single query at {args.n} tickets (embedding excluded)"
                f"{', another process spinning on one core' if busy else ''}: "
                f"p50 {percentile(times, 50):.2f} ms  p99 {percentile(times, 99):.2f} ms  "
                f"max {max(times) * 1000:.2f} ms; CPU {cpu * 1000:.2f} ms a query; "
                f"load average {os.getloadavg()[0]:.2f}"
            )
        n = len(ix._vecs)
        dense_times = []
        for i in range(min(100, len(queries))):
            if ix._proj.active:  # the projected rows the candidate pass reads
                mat, v = ix._proj.rows[:n], ix._proj.basis.T @ qv[i]
            else:  # the candidate stage's mixed matrix (body and title in one)
                mat, v = ix._mix[:n], qv[i]
            t = time.perf_counter()
            np.einsum("ij,j->i", mat, v)  # as LocalIndex runs it: one thread
            dense_times.append(time.perf_counter() - t)
        print(
            f"  of which the dense pass ({mat.nbytes / 1e6:.0f} MB matrix): "
            f"p50 {percentile(dense_times, 50):.2f} ms  p99 {percentile(dense_times, 99):.2f} ms"
        )
        lex_times = []
        for q in queries[:100]:
            t = time.perf_counter()
            ix._lex.scores(q)
            lex_times.append(time.perf_counter() - t)
        print(
            f"  of which BM25: p50 {percentile(lex_times, 50):.2f} ms  "
            f"p99 {percentile(lex_times, 99):.2f} ms"
        )
        check_times = []
        for _ in range(100):
            t = time.perf_counter()
            ix._is_empty()  # what a search adds: asking the catalogue for rows written since
            check_times.append(time.perf_counter() - t)
        print(
            f"  plus the catch-up query a search makes first (SQLite): "
            f"p50 {percentile(check_times, 50):.2f} ms  p99 {percentile(check_times, 99):.2f} ms"
        )
        found = [
            [m.key for m in ix.search_vectors(queries[i : i + 1], qv[i : i + 1], hv[i : i + 1])[0]]
            for i in range(min(50, len(queries)))
        ]
        exact = [
            exact_top(ix, queries[i], qv[i], hv[i], args.top_k)
            for i in range(min(50, len(queries)))
        ]
        same = sum(f == e for f, e in zip(found, exact, strict=True))
        overlap = np.mean(
            [len(set(f) & set(e)) / len(e) for f, e in zip(found, exact, strict=True)]
        )
        recall = np.mean([dense_recall(ix, qv[i], hv[i]) for i in range(min(200, len(queries)))])
        print(
            f"  against the exhaustive rank fusion (title/headline cosine {args.related}): "
            f"top-{args.top_k} identical {same}/{len(found)}, "
            f"recall@{args.top_k} {overlap:.3f}; the candidate pass keeps {recall:.3f} of the "
            "exact dense top-10"
        )
        for size in (1, 1, 1, 100):
            extra = [
                Ticket(key=f"NEW-{size}-{j}-{time.perf_counter_ns()}", title=t, description=b)
                for j, (t, b) in enumerate(
                    zip(
                        synthetic_texts(size, 8, rng, vocab),
                        synthetic_texts(size, 60, rng, vocab),
                        strict=True,
                    )
                )
            ]
            t = time.perf_counter()
            ix.upsert(extra)
            up = time.perf_counter() - t
            t = time.perf_counter()
            ix.search_vectors(queries[:1], qv[:1], hv[:1], args.top_k)
            first = time.perf_counter() - t
            print(
                f"upsert of {size} ticket(s) into {ix.count()}: {up * 1000:.0f} ms; "
                f"first query after it {first * 1000:.0f} ms"
            )
        if args.throughput:
            real = LocalIndex(OnnxEmbedder(), store, "SYN")
            posts = synthetic_texts(args.throughput, 40, rng, vocab)
            real.search_many(posts[:4], args.top_k)  # loads the model
            t = time.perf_counter()
            real.embedder.embed(posts)
            embed_s = time.perf_counter() - t
            t = time.perf_counter()
            real.search_many(posts, args.top_k)
            total = time.perf_counter() - t
            print(
                f"search_many: {len(posts)} posts (~40 words) against {args.n} tickets in "
                f"{total:.1f} s = {len(posts) / total:.0f} queries/s incl. embedding "
                f"(embedding the posts alone: {len(posts) / embed_s:.0f} texts/s)"
            )


if __name__ == "__main__":
    main()
