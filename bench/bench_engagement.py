"""What counting engagement costs the store: one reaction recorded (insert + counts derived under
the post's row lock), alone and with threads racing on the same post (prints figures only).

    .venv/bin/python -m bench.bench_engagement [--reactions 400] [--threads 8] [--pg URL]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from bot.adapters.store_sql import SqlStore
from bot.domain.ports import StoredPost


def run(url: str, reactions: int, threads: int) -> None:
    store = SqlStore(url)
    try:
        store.save_post(
            StoredPost(channel="C1", ts="1.0", user="U0", text="an idea", created=datetime.now(UTC))
        )
        one: list[float] = []
        for i in range(reactions // 2):
            t0 = time.perf_counter()
            store.add_engagement("C1", "1.0", "reaction", f"U{i}", "+1")
            one.append((time.perf_counter() - t0) * 1000)
        per_thread = reactions // 2 // threads
        barrier = threading.Barrier(threads)

        def racer(k: int) -> None:
            barrier.wait()
            for i in range(per_thread):
                store.add_engagement("C1", "1.0", "reaction", f"R{k}-{i}", "+1")

        workers = [threading.Thread(target=racer, args=(k,)) for k in range(threads)]
        t0 = time.perf_counter()
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        wall = time.perf_counter() - t0
        post = store.get_post("C1", "1.0")
        assert post is not None
        expected = reactions // 2 + per_thread * threads
        print(
            f"{store.backend:10s} one at a time: median {statistics.median(one):.2f} ms, "
            f"p95 {statistics.quantiles(one, n=20)[-1]:.2f} ms; "
            f"{threads} threads: {per_thread * threads / wall:.0f} reactions/s; "
            f"count {post.reactions} (expected {expected})"
        )
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reactions", type=int, default=400)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--pg", help="a PostgreSQL URL (an empty database) to measure as well")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}", args.reactions, args.threads)
    if args.pg:
        run(args.pg, args.reactions, args.threads)


if __name__ == "__main__":
    main()
