"""Indexing throughput of the local index with the real ONNX embedder (tickets/s).

    .venv/bin/python bench/bench_index.py --data /work/shared/data/duplicates/ \
        --max-tokens 256 [--batch-sizes 0 4 16] [--compute int8 float32] [--limit 300]

Each configuration indexes the tickets into a fresh LocalIndex on a fresh SQLite catalogue (two
embeddings per ticket:
body and title, embedded in one call) and reports tickets/s; a second upsert of the same tickets
shows the cost of a re-sync when nothing changed (content hashes, no embedding).
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.embedder_onnx import OnnxEmbedder
from bot.adapters.index_local import LocalIndex
from bot.adapters.store_sql import SqlStore
from bot.domain.models import Ticket

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_duplicates import load as load_duplicates


def load(data: Path) -> list[Ticket]:
    """The tickets of tickets.jsonl (the same reader as the retrieval evaluation)."""
    return load_duplicates(data)[0]


def main(argv: list[str] | None = None) -> None:
    """Runs each configuration and prints its throughput."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=Path("/work/shared/data/duplicates/"))
    ap.add_argument("--max-tokens", type=int, nargs="+", default=[256])
    ap.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[0], help="texts per run (0: default)"
    )
    ap.add_argument("--compute", nargs="+", default=["int8"], choices=["int8", "float32"])
    ap.add_argument("--limit", type=int, default=0, help="index only the first N tickets")
    ap.add_argument(
        "--workers", type=int, nargs="+", default=[0], help="batches run at once (0: default)"
    )
    args = ap.parse_args(argv)
    tickets = load(args.data)
    if args.limit:
        tickets = tickets[: args.limit]
    print(f"load average before: {os.getloadavg()[0]:.2f} (2 cores)")
    runs = itertools.product(args.compute, args.max_tokens, args.batch_sizes, args.workers)
    for compute, mt, bs, workers in runs:
        emb = OnnxEmbedder(
            max_tokens=mt, batch_size=bs or None, workers=workers or None, compute=compute
        )
        emb.embed(["warm up the session"])
        with tempfile.TemporaryDirectory() as tmp:
            store = SqlStore(f"sqlite:///{Path(tmp) / 'bench.sqlite3'}")
            ix = LocalIndex(emb, store, "DUP")
            t, cpu = time.perf_counter(), time.process_time()
            ix.upsert(tickets)
            secs, cpu = time.perf_counter() - t, time.process_time() - cpu
            t = time.perf_counter()
            ix.upsert(tickets)
            resync = time.perf_counter() - t
            store.close()
        print(
            f"{compute} max_tokens={mt} batch_size={emb.batch_size} workers={emb.workers}: "
            f"{len(tickets)} tickets "
            f"in {secs:.1f} s = {len(tickets) / secs:.1f} tickets/s "
            f"(CPU {cpu * 1000 / len(tickets):.0f} ms/ticket); "
            f"unchanged re-sync {resync * 1000:.0f} ms; load {os.getloadavg()[0]:.2f}"
        )


if __name__ == "__main__":
    main()
