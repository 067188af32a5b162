"""Cold start of a replica: a new process, an empty disk, N tickets in the database's catalogue.

    .venv/bin/python bench/bench_catalogue.py                       # SQLite file, 10,000 tickets
    .venv/bin/python bench/bench_catalogue.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/test

The tickets (synthetic ~60-word texts) and their stored vectors are prepared first: random unit
vectors under the real model's id, because embedding 20,000 texts with the real model takes
minutes and the load path does not care where the vectors came from. Then a fresh Python
process with an empty BOT_DATA_DIR goes through the real composition root (``bootstrap``, the
ONNX embedder, ``LocalIndex`` on ``SqlStore``), starts up like ``serve`` (the cache loads in the
background) and polls ``Bot.catalogue_ready()`` as ``/readyz`` would. It reports the time to
ready (from the process's start, imports included), the first search (which loads the ONNX
model), later searches, and its resident memory (VmRSS) at each step. On PostgreSQL the data
goes into a schema of its own, dropped afterwards.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path

START = time.perf_counter()

import numpy as np  # noqa: E402
import numpy.typing as npt  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def rss_mb() -> float:
    """This process's resident memory now (VmRSS), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class RandomEmbedder:
    """Random unit vectors under the real model's id (preparation only)."""

    dim = 384

    def __init__(self, model_id: str) -> None:
        self.model_id = model_id
        self.rng = np.random.default_rng(0)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        v = self.rng.standard_normal((len(texts), self.dim)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def prepare(url: str, n: int) -> float:
    """Stores *n* tickets with vectors in the catalogue; returns the seconds it took."""
    from bot.adapters.embedder_onnx import OnnxEmbedder
    from bot.adapters.index_local import LocalIndex
    from bot.adapters.store_sql import SqlStore
    from bot.domain.models import Ticket

    rng = np.random.default_rng(42)
    syllables = ["ka", "lo", "mi", "ne", "ru", "sa", "te", "vo", "zi", "pa", "do", "fe"]
    vocab = sorted(
        {"".join(rng.choice(syllables, size=int(rng.integers(2, 5)))) for _ in range(30_000)}
    )

    def texts(count: int, words: int) -> list[str]:
        ranks = np.minimum(rng.zipf(1.2, size=(count, words)), len(vocab)) - 1
        return [" ".join(vocab[i] for i in row) for row in ranks]

    titles, bodies = texts(n, 8), texts(n, 60)
    tickets = [
        Ticket(key=f"SYN-{i}", title=titles[i], description=bodies[i], type="Bug", status="Open")
        for i in range(n)
    ]
    store = SqlStore(url)
    t = time.perf_counter()
    # "default": the namespace of a bot without JIRA_PROJECT, which the replica below is.
    writer = LocalIndex(RandomEmbedder(OnnxEmbedder.model_id), store, "default")
    for start in range(0, n, 1000):
        writer.upsert(tickets[start : start + 1000])
    store.close()
    return time.perf_counter() - t


def child() -> None:
    """The replica: real composition root, empty disk; prints its figures as JSON."""
    from bot.bootstrap import bootstrap
    from bot.config import load_settings

    figures: dict[str, float] = {"imports_s": time.perf_counter() - START}
    bot = bootstrap(load_settings(llm_model=None, _env_file=None), llm=None)
    bot.startup()  # as `serve` does: the cache starts loading in the background
    figures["bootstrapped_s"] = time.perf_counter() - START
    while not bot.catalogue_ready():
        time.sleep(0.01)
    figures["ready_s"] = time.perf_counter() - START
    figures["tickets"] = bot.catalogue.count()
    figures["rss_ready_mb"] = rss_mb()
    t = time.perf_counter()
    bot.catalogue.similar(["export of the report times out for big workspaces"], top_k=5)
    figures["first_search_s"] = time.perf_counter() - t
    figures["rss_after_search_mb"] = rss_mb()
    times = []
    for i in range(50):
        t = time.perf_counter()
        bot.catalogue.similar([f"dashboard dark mode idea number {i}"], top_k=5)
        times.append(time.perf_counter() - t)
    figures["search_p50_ms"] = float(np.percentile(times, 50) * 1000)
    figures["rss_end_mb"] = rss_mb()
    print(json.dumps(figures))


def pg_schema(url: str) -> tuple[str, str]:
    """A fresh schema on the PostgreSQL server of *url*: (URL searching it, schema name)."""
    import psycopg
    from sqlalchemy.engine import make_url

    schema = f"bench_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    scoped = make_url(url).update_query_dict({"options": f"-csearch_path={schema}"})
    return scoped.render_as_string(hide_password=False), schema


def drop_schema(url: str, schema: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    libpq = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def main(argv: list[str] | None = None) -> None:
    """Prepares the catalogue, starts a replica on it, prints the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--database-url", help="PostgreSQL URL (default: a SQLite file in a temp dir)")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child()
        return
    from bot.adapters.store_sql import normalise_url

    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if args.database_url:
            url, schema = pg_schema(normalise_url(args.database_url))
        else:
            url = f"sqlite:///{Path(tmp) / 'catalogue.sqlite3'}"
        try:
            secs = prepare(url, args.n)
            backend = "PostgreSQL" if schema else "SQLite"
            print(f"{args.n} tickets with stored vectors prepared in {backend} in {secs:.1f} s")
            env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "JIRA_"))}
            empty = Path(tmp) / "empty-disk"
            env.update(
                BOT_DATA_DIR=str(empty),
                DATABASE_URL=url,
                PINECONE_API_KEY="",
                PYTHONPATH=str(ROOT),
            )
            t = time.perf_counter()
            done = subprocess.run(
                [sys.executable, __file__, "--child"],
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            wall = time.perf_counter() - t
            if done.returncode:
                sys.exit(f"the replica failed:\n{done.stderr}")
            out = done.stdout
            left = sorted(p.name for p in empty.rglob("*")) if empty.exists() else []
            f = json.loads(out.strip().splitlines()[-1])
            print(
                f"fresh replica, empty disk (files there afterwards: {left or 'none'}): "
                f"{int(f['tickets'])} tickets ready {f['ready_s']:.2f} s after the "
                f"process started (imports {f['imports_s']:.2f} s, bootstrap done at "
                f"{f['bootstrapped_s']:.2f} s); process wall time {wall:.1f} s"
            )
            print(
                f"  first search (loads the ONNX model) {f['first_search_s']:.2f} s; "
                f"later searches p50 {f['search_p50_ms']:.1f} ms (embedding included)"
            )
            print(
                f"  resident memory: {f['rss_ready_mb']:.0f} MB when ready, "
                f"{f['rss_after_search_mb']:.0f} MB with the model loaded, "
                f"{f['rss_end_mb']:.0f} MB at the end"
            )
        finally:
            if schema and args.database_url:
                drop_schema(normalise_url(args.database_url), schema)


if __name__ == "__main__":
    main()
