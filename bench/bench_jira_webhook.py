"""Jira webhook -> thread message: how long a signed ``POST /jira/webhook`` takes from sending to
its answer (the issue read from Jira, the thread message, the triage reply updated, all before
the answer), one issue at a time, and what a burst of webhooks for one issue costs and says.
Real Bolt on waitress, real WebClient and `jira` client against the local fakes (prints figures).

    .venv/bin/python -m bench.bench_jira_webhook [--issues 30] [--burst 10]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench.bench_ack import pct
from tests.fakes.wiring import Rig

SECRET = "bench-webhook-secret"
C = "CIDEAS01"


def run(issues: int, burst: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        rig = Rig(Path(tmp), jira_webhook_secret=SECRET)
        try:
            assert rig.server is not None
            url = f"{rig.server.url}/jira/webhook"
            keys: list[tuple[str, str]] = []
            for _ in range(issues + 1):
                # Words of their own: alike posts would be offered as duplicates, not filed.
                words = " ".join(uuid.uuid4().hex[:8] for _ in range(4))
                ev = rig.message(f"Add {words}")
                rig.send_event(ev)
                rig.wait_idle()
                rig.send_event(rig.reaction(C, ev["ts"]))
                rig.wait_idle()
                keys.append((ev["ts"], list(rig.jira.issues)[-1]))
            took: list[float] = []
            for _, key in keys[:issues]:
                rig.jira.transition(key, "In Progress", assignee="Dana")
                t0 = time.perf_counter()
                status, _ = rig.jira.send_webhook(url, key, secret=SECRET)
                took.append((time.perf_counter() - t0) * 1000)
                assert status == 202
            said = [
                r
                for ts, key in keys[:issues]
                for r in rig.slack.thread_replies(C, ts)
                if str(r.get("text", "")).startswith(f"{key} moved to")
            ]
            print(
                f"webhook -> announced, {issues} issues one at a time: "
                f"p50 {pct(took, 0.5):.0f} ms, p99 {pct(took, 0.99):.0f} ms; "
                f"thread messages {len(said)} (expected {issues})"
            )
            ts, key = keys[-1]
            for status in ("In Progress", "In Review", "Done"):
                rig.jira.transition(key, status)
            barrier = threading.Barrier(burst)

            def hook() -> None:
                barrier.wait()
                rig.jira.send_webhook(url, key, secret=SECRET)

            threads = [threading.Thread(target=hook) for _ in range(burst)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = (time.perf_counter() - t0) * 1000
            told = [
                r
                for r in rig.slack.thread_replies(C, ts)
                if str(r.get("text", "")).startswith(f"{key} moved to")
            ]
            print(
                f"burst of {burst} webhooks for one issue: {wall:.0f} ms, "
                f"{len(told)} thread message(s), Jira reads {len(rig.jira.requests_to(key, 'GET'))}"
            )
        finally:
            rig.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--issues", type=int, default=30)
    parser.add_argument("--burst", type=int, default=10)
    args = parser.parse_args()
    run(args.issues, args.burst)


if __name__ == "__main__":
    main()
