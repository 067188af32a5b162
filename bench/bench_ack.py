"""Ack latency of the HTTP endpoint and time from post to thread reply (prints figures only).

Runs the production wiring (bootstrap: ONNX embedder, local index, offline analyzer, SQLite
store) with the Bolt app on waitress in-process and FakeSlack as the Web API, then sends N signed
``message`` events at concurrency C over keep-alive connections.

    .venv/bin/python -m bench.bench_ack [--events 500] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bot.bootstrap import bootstrap
from bot.config import Settings
from bot.slack.app import create_bot
from bot.slack.server import HttpServer
from tests.fakes.slack_server import FakeSlack
from tests.fakes.slack_signing import event_body, signed_request

SECRET = "bench-secret"
IDEAS = [
    "Add dark mode to the dashboard so the night shift can read it",
    "The export to CSV crashes when a column has a comma in it",
    "Could we get SSO login with Okta for the admin console?",
    "Let managers bulk-approve timesheets from the weekly view",
    "Search should remember my last filters between sessions",
]


class TimedSlack(FakeSlack):
    """FakeSlack that notes when each thread first received a reply."""

    def __init__(self) -> None:
        super().__init__()
        self.reply_at: dict[str, float] = {}

    def _post_message(self, p: dict[str, Any]) -> dict[str, Any]:
        thread = p.get("thread_ts")
        if thread and thread not in self.reply_at:
            self.reply_at[str(thread)] = time.perf_counter()
        return super()._post_message(p)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--workers", type=int, default=4, help="Bolt listener threads")
    args = ap.parse_args()

    slack = TimedSlack()
    slack.start()
    tmp = Path(tempfile.mkdtemp(prefix="ideabot-bench-"))
    values: dict[str, Any] = {
        "bot_data_dir": tmp,
        "slack_bot_token": slack.token,
        "slack_signing_secret": SECRET,
        "slack_api_url": slack.base_url,
        "idea_channels": "CBENCH01",
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    services = bootstrap(settings, tracker=None, calendar=None, llm=None)
    bot = create_bot(services, workers=args.workers)
    server = HttpServer(bot, host="127.0.0.1", port=0, threads=32).start()
    # warm-up: load the model and the classifier outside the measurement
    services.triage.triage_many([])
    services.analyzer.analyze(
        __import__("bot.domain.models", fromlist=["Post"]).Post(id="w", text=IDEAS[0])
    )

    sent_at: dict[str, float] = {}
    acks: list[float] = []
    lock = threading.Lock()
    counter = iter(range(args.events))

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            ts = f"{1700000000 + i}.{i:06d}"
            ev = {
                "type": "message",
                "channel": "CBENCH01",
                "channel_type": "channel",
                "user": f"U{i % 50}",
                "text": f"{IDEAS[i % len(IDEAS)]} (#{i})",
                "ts": ts,
            }
            body = event_body(ev, event_id=f"EvB{i:06d}")
            headers = signed_request(SECRET, body)
            data = body.encode()
            t0 = time.perf_counter()
            conn.request("POST", "/slack/events", body=data, headers=headers)
            resp = conn.getresponse()
            resp.read()
            t1 = time.perf_counter()
            assert resp.status == 200, resp.status
            with lock:
                sent_at[ts] = t0
                acks.append((t1 - t0) * 1000)
        conn.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    send_s = time.perf_counter() - start
    deadline = time.time() + 300
    while len(slack.reply_at) < args.events and time.time() < deadline:
        time.sleep(0.05)
        if len(slack.reply_at) and all(ts in slack.reply_at for ts in list(sent_at)[-5:]):
            break
    time.sleep(0.5)
    done_s = time.perf_counter() - start
    reply = [(slack.reply_at[ts] - t0) * 1000 for ts, t0 in sent_at.items() if ts in slack.reply_at]

    print(f"events={args.events} concurrency={args.concurrency} listener_threads={args.workers}")
    print(f"ack ms: p50={pct(acks, 0.5):.1f} p99={pct(acks, 0.99):.1f} max={max(acks):.1f}")
    print(
        f"sent in {send_s:.2f}s ({args.events / send_s:.0f} events/s); all replies by {done_s:.2f}s"
    )
    if reply:
        print(
            f"post->thread reply ms ({len(reply)} replies): p50={pct(reply, 0.5):.0f} "
            f"p99={pct(reply, 0.99):.0f} mean={statistics.mean(reply):.0f}"
        )
    server.stop()
    bot.app.listener_runner.listener_executor.shutdown(wait=False)
    slack.stop()


if __name__ == "__main__":
    main()
