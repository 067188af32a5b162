"""Memory of reading a big Slack export: resident memory stays flat while the posts stream by.

    .venv/bin/python -m bench.bench_backfill_memory --mb 1024       # a 1 GB export (stored zip)
    .venv/bin/python -m bench.bench_backfill_memory --mb 100 --keep /tmp/export.zip

Writes a synthetic export in Slack's layout (channels.json, users.json, <channel>/<day>.json:
a few channels, one file per day, posts with reactions and threads whose replies land on later
days), then, in a fresh process, reads it with ``bot.adapters.slack_export.SlackExport`` (the
reader ``backfill`` uses) and samples VmRSS at every tenth of the posts. Triage is left out: its
memory is the embedding model's and does not grow with the export. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

WORDS = (
    "dashboard export dark mode shortcut report search filter invoice customer onboarding "
    "latency cache retry deploy release review budget roadmap sprint feature bug crash login "
    "android iphone sync calendar reminder notification webhook api token metric alert"
).split()


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def write_export(path: Path, mb: int, channels: int = 4, seed: int = 7) -> int:
    """A stored (uncompressed) export of about *mb* megabytes; returns the number of posts."""
    rng = random.Random(seed)
    target = mb * 1024 * 1024
    users = [f"U{i:05d}" for i in range(200)]
    t0 = 1_500_000_000
    posts = 0
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(
            "channels.json",
            json.dumps([{"id": f"C{i:07d}", "name": f"chan-{i}"} for i in range(channels)]),
        )
        z.writestr(
            "users.json",
            json.dumps([{"id": u, "name": u.lower(), "profile": {"real_name": u}} for u in users]),
        )
        day = 0
        # Replies due on later days, per channel: (day, message).
        later: dict[int, dict[int, list[dict[str, object]]]] = {c: {} for c in range(channels)}
        while True:
            for c in range(channels):
                msgs: list[dict[str, object]] = list(later[c].pop(day, []))
                for n in range(60):
                    ts = f"{t0 + day * 86400 + c * 1000 + n * 10}.000100"
                    author = rng.choice(users)
                    msg: dict[str, object] = {
                        "type": "message",
                        "user": author,
                        "text": _text(rng, rng.randint(20, 120)),
                        "ts": ts,
                        "reactions": [{"name": "+1", "users": rng.sample(users, 3), "count": 3}],
                    }
                    repliers = rng.sample(users, rng.randint(0, 4))
                    if repliers:
                        msg.update(thread_ts=ts, reply_users=repliers)
                        for k, r in enumerate(repliers):
                            when = day + rng.randint(0, 5)
                            later[c].setdefault(when, []).append(
                                {
                                    "type": "message",
                                    "user": r,
                                    "text": _text(rng, 30),
                                    "ts": f"{t0 + when * 86400 + c * 1000 + 700 + n * 2 + k}.0",
                                    "thread_ts": ts,
                                }
                            )
                    msgs.append(msg)
                    posts += 1
                stamp = time.strftime("%Y-%m-%d", time.gmtime(t0 + day * 86400))
                z.writestr(f"chan-{c}/{stamp}.json", json.dumps(msgs, indent=4))
            day += 1
            if z.fp is not None and z.fp.tell() >= target:
                break
    return posts


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def read_export(path: str, posts: int) -> dict[str, object]:
    """Streams every post of the export; VmRSS at each tenth (this process only)."""
    from bot.adapters.slack_export import SlackExport

    samples: list[float] = []
    started = time.perf_counter()
    before = _rss_mb()
    n = 0
    with SlackExport(path) as export:
        opened = _rss_mb()
        step = max(1, posts // 10)
        for _ in export.posts(export.select(None)):
            n += 1
            if n % step == 0:
                samples.append(round(_rss_mb(), 1))
        stats = export.stats
    return {
        "posts": n,
        "days": stats.days,
        "max_pending_posts": stats.max_pending,
        "rss_before_mb": round(before, 1),
        "rss_after_open_mb": round(opened, 1),
        "rss_samples_mb": samples,
        "rss_growth_first_to_last_tenth_mb": round(samples[-1] - samples[0], 1) if samples else 0,
        "seconds": round(time.perf_counter() - started, 1),
        "posts_per_second": round(n / (time.perf_counter() - started)),
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mb", type=int, default=200, help="export size in MB (default 200)")
    p.add_argument("--keep", help="write the export here and keep it")
    p.add_argument("--read", help=argparse.SUPPRESS)  # the child process: read this export
    p.add_argument("--posts", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.read:
        print(json.dumps(read_export(args.read, args.posts)))
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.keep or Path(tmp) / "export.zip")
        t = time.perf_counter()
        posts = write_export(path, args.mb)
        wrote = time.perf_counter() - t
        child = subprocess.run(
            [sys.executable, "-m", "bench.bench_backfill_memory", "--read", str(path),
             "--posts", str(posts)],
            capture_output=True, text=True, check=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
        )  # fmt: skip
        result = json.loads(child.stdout)
        result.update(export_mb=round(path.stat().st_size / 2**20), write_seconds=round(wrote, 1))
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
