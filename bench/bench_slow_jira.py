"""Triage reply latency while Jira is slow (prints figures only).

Production wiring (bootstrap: ONNX embedder, local index, offline analyzer, SQLite store) with the
runtime on waitress in-process, FakeSlack and a FakeJira that takes ``--jira-seconds`` to answer
every write to an issue (create, remote link). First ``--filings`` reactions arrive (each files a
message, so every filing thread waits on Jira), then ``--posts`` new posts, one every
``--interval`` seconds; the figure is post -> thread reply while the filings are still waiting.

    .venv/bin/python -m bench.bench_slow_jira [--jira-seconds 10] [--filings 8] [--posts 20]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.bench_ack import IDEAS, TimedSlack, pct
from bot.bootstrap import bootstrap
from bot.config import Settings
from bot.domain.models import Post
from bot.slack.server import HttpServer, Runtime
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_signing import event_body, post, signed_request

SECRET = "bench-secret"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jira-seconds", type=float, default=10.0)
    ap.add_argument("--filings", type=int, default=8)
    ap.add_argument("--posts", type=int, default=20)
    ap.add_argument("--interval", type=float, default=0.25)
    args = ap.parse_args()

    slack = TimedSlack()
    slack.start()
    jira = FakeJira(project="PROJ")
    jira.start()
    tmp = Path(tempfile.mkdtemp(prefix="ideabot-bench-"))
    values: dict[str, Any] = {
        "bot_data_dir": tmp,
        "slack_bot_token": slack.token,
        "slack_signing_secret": SECRET,
        "slack_api_url": slack.base_url,
        "idea_channels": "CBENCH01",
        "jira_url": jira.base_url,
        "jira_email": jira.email,
        "jira_api_token": jira.token,
        "jira_project": "PROJ",
        "jira_issue_types": "idea=Story,bug=Bug,question=Task,other=Task",
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    bot = bootstrap(settings, calendar=None, llm=None)
    bot.startup()
    runtime = Runtime(bot).start(outbox=False)
    server = HttpServer(runtime.app, host="127.0.0.1", port=0).start()
    url = server.url + "/slack/events"
    bot.adapters.analyzer.analyze(Post(id="w", text=IDEAS[0]))  # warm-up outside the figures

    def send(event: dict[str, Any], event_id: str) -> None:
        body = event_body(event, event_id=event_id)
        status, _ = post(url, body, signed_request(SECRET, body))
        assert status == 200, status

    # Jira is slow from now on: every write to an issue waits.
    jira.delay_next("/rest/api/2/issue", args.jira_seconds, times=10_000)
    for i in range(args.filings):
        ts = f"1600000000.{i:06d}"
        slack.add_message("CBENCH01", ts, f"{IDEAS[i % len(IDEAS)]} (filed #{i})", "UALICE")
        reaction = {
            "type": "reaction_added",
            "user": "UBOB",
            "reaction": "ticket",
            "item_user": "UALICE",
            "item": {"type": "message", "channel": "CBENCH01", "ts": ts},
            "event_ts": ts,
        }
        send(reaction, f"EvF{i:04d}")
    start = time.perf_counter()
    sent_at: dict[str, float] = {}
    for i in range(args.posts):
        ts = f"1700000000.{i:06d}"
        message = {
            "type": "message",
            "channel": "CBENCH01",
            "channel_type": "channel",
            "user": "UALICE",
            "text": f"{IDEAS[i % len(IDEAS)]} (post #{i})",
            "ts": ts,
        }
        sent_at[ts] = time.perf_counter()
        send(message, f"EvP{i:04d}")
        time.sleep(args.interval)
    deadline = time.monotonic() + 120
    while any(ts not in slack.reply_at for ts in sent_at) and time.monotonic() < deadline:
        time.sleep(0.02)
    replies = [
        (slack.reply_at[ts] - t0) * 1000 for ts, t0 in sent_at.items() if ts in slack.reply_at
    ]
    filed_during = len(jira.issues)
    elapsed = time.perf_counter() - start

    print(
        f"jira {args.jira_seconds:g}s per issue write, {args.filings} filings waiting on it, "
        f"{args.posts} posts every {args.interval:g}s"
    )
    print(
        f"post->triage reply ms ({len(replies)}/{args.posts}): p50={pct(replies, 0.5):.0f} "
        f"p99={pct(replies, 0.99):.0f} max={max(replies):.0f}"
    )
    print(f"issues filed by then ({elapsed:.1f}s in): {filed_during}/{args.filings}")
    runtime.request_stop()
    jira.stop()  # answers the held requests, so the filings can end
    runtime.shutdown(time.monotonic() + 30)
    server.stop()
    slack.stop()


if __name__ == "__main__":
    main()
