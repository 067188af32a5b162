"""Runs every benchmark and evaluation in turn and prints their figures (`make bench`).

Benchmarks on synthetic data always run; the evaluations need the labelled data sets, found under
``--data`` (default ``../shared/data`` beside the checkout) and skipped with a note when absent.
Nothing here asserts a time: these commands measure, the figures go into notes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    args = ap.parse_args()
    py = sys.executable
    runs: list[tuple[str, list[str]]] = [
        ("similar latency at 100k", [py, "bench/bench_similar.py"]),
        ("offline triage throughput", [py, "bench/bench_triage.py"]),
        ("HTTP ack latency", [py, "-m", "bench.bench_ack"]),
    ]
    dup, kinds = args.data / "duplicates", args.data / "issue-kinds" / "dev.jsonl"
    if dup.is_dir():
        runs.append(("duplicate retrieval", [py, "bench/eval_duplicates.py", "--data", str(dup)]))
        runs.append(("indexing throughput", [py, "bench/bench_index.py", "--data", str(dup)]))
    else:
        print(f"(skipping the duplicate evaluations: no {dup})")
    if kinds.is_file():
        runs.append(("kind classification", [py, "bench/eval_kinds.py", "--data", str(kinds)]))
    else:
        print(f"(skipping the kinds evaluation: no {kinds})")
    failed = 0
    for title, cmd in runs:
        print(f"\n=== {title}: {' '.join(cmd[1:])}", flush=True)
        failed += subprocess.run(cmd, cwd=ROOT).returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
