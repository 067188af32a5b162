"""Ack latency of the HTTP endpoint (each delivery recorded in the inbox first) and the time from
post to thread reply (prints figures only).

Runs the production wiring (bootstrap: ONNX embedder, local index, offline analyzer, SQLite store
or ``--database-url``) with the runtime (inbox workers, Bolt app) on waitress in-process and
FakeSlack as the Web API, then sends N signed ``message`` events at concurrency C over keep-alive
connections from a separate client process (``--same-process``: threads of the server's process,
competing with it for the GIL, as the figures before the inbox were taken).

    .venv/bin/python -m bench.bench_ack [--events 500] [--concurrency 20] [--database-url URL]
        [--metrics-format prometheus|emf|none]
"""

from __future__ import annotations

import argparse
import http.client
import io
import multiprocessing as mp
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bot.bootstrap import bootstrap
from bot.config import Settings
from bot.domain.models import Post
from bot.observability.setup import make_metrics
from bot.slack.server import HttpServer, Runtime
from bot.workers import FILING, TRIAGE, PoolSpec
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


def send_all(
    port: int, events: int, concurrency: int, run: str, first: int = 0
) -> tuple[dict[str, float], list[float]]:
    """Sends *events* signed message events over *concurrency* keep-alive connections; returns
    when each was sent (by ts) and each ack's latency in ms."""
    sent_at: dict[str, float] = {}
    acks: list[float] = []
    connects: list[float] = []
    lock = threading.Lock()
    counter = iter(range(first, first + events))
    base = 1_700_000_000 + int(run) * 1000

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        t0 = time.perf_counter()
        conn.connect()  # connection set-up is not the ack: timed apart
        with lock:
            connects.append((time.perf_counter() - t0) * 1000)
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            # Unique per run: a database kept between runs (--database-url) has the last run's
            # posts, which would be skipped as already triaged.
            ts = f"{base + i}.{i:06d}"
            ev = {
                "type": "message",
                "channel": "CBENCH01",
                "channel_type": "channel",
                "user": f"U{i % 50}",
                "text": f"{IDEAS[i % len(IDEAS)]} (#{i})",
                "ts": ts,
            }
            body = event_body(ev, event_id=f"EvB{run}{i:06d}")
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

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(f"connect ms: max={max(connects):.1f}")
    return sent_at, acks


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=500)
    ap.add_argument("--concurrency", type=int, default=20)
    ap.add_argument("--database-url", default=None, help="default: SQLite in a temp folder")
    ap.add_argument("--triage-threads", type=int, default=TRIAGE.threads)
    ap.add_argument(
        "--client-processes",
        type=int,
        default=1,
        help="spread the concurrent clients over N processes (Slack's deliveries come from many "
        "machines: one Python process's 20 threads add their own GIL waits to the ack)",
    )
    ap.add_argument(
        "--same-process", action="store_true", help="run the client threads in the server's process"
    )
    ap.add_argument(
        "--metrics-format",
        default="prometheus",
        choices=("prometheus", "emf", "none"),
        help="METRICS_FORMAT (emf flushes to a discarded stream): the metrics' cost on the ack",
    )
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
        "database_url": args.database_url,
        "metrics_format": args.metrics_format,
    }
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    overrides: dict[str, Any] = {}
    if args.metrics_format == "emf":
        overrides["metrics"] = make_metrics(settings, stream=io.StringIO()).start()  # type: ignore[attr-defined]
    bot = bootstrap(settings, tracker=None, calendar=None, llm=None, **overrides)
    record_ms: list[float] = []
    store = bot.adapters.store
    inner_record = store.record_event

    def timed_record(*a: Any, **k: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner_record(*a, **k)
        finally:
            record_ms.append((time.perf_counter() - t0) * 1000)

    store.record_event = timed_record  # type: ignore[method-assign]
    pools = (PoolSpec(TRIAGE.name, args.triage_threads, TRIAGE.queue_size), FILING)
    # As `serve` does: the token is checked once at start-up, not on the first deliveries.
    runtime = Runtime(bot, pools=pools, token_verification_enabled=True).start(outbox=False)
    server = HttpServer(
        runtime.app,
        host="127.0.0.1",
        port=0,
        readiness=runtime.readiness,
        metrics=bot.adapters.metrics,
    ).start()
    # Server-side ack time (the WSGI call for POST /slack/events): what the client measures,
    # less the client's own scheduling on this shared machine.
    server_acks: list[float] = []
    inner = server.server.application

    def timed_app(environ: dict[str, Any], start_response: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return inner(environ, start_response)
        finally:
            if environ.get("REQUEST_METHOD") == "POST":
                server_acks.append((time.perf_counter() - t0) * 1000)

    server.server.application = timed_app
    # warm-up: load the model and the classifier outside the measurement
    bot.adapters.analyzer.analyze(Post(id="w", text=IDEAS[0]))

    run = time.strftime("%H%M%S")
    start = time.perf_counter()
    if args.same_process:
        sent_at, acks = send_all(server.port, args.events, args.concurrency, run)
    else:
        # The client in its own process, so that its threads do not compete with the server's
        # for the GIL (perf_counter is CLOCK_MONOTONIC: comparable across processes on Linux).
        ctx = mp.get_context("spawn")
        n = max(1, args.client_processes)
        share = [args.events // n + (p < args.events % n) for p in range(n)]
        firsts = [sum(share[:p]) for p in range(n)]
        conc = [args.concurrency // n + (p < args.concurrency % n) for p in range(n)]
        with ctx.Pool(n) as pool:
            parts = pool.starmap(
                send_all,
                [(server.port, share[p], conc[p], run, firsts[p]) for p in range(n)],
            )
        sent_at, acks = {}, []
        for part_sent, part_acks in parts:
            sent_at.update(part_sent)
            acks.extend(part_acks)
    send_s = time.perf_counter() - start
    # Events that found a queue full wait in the inbox for the poller: wait for all replies.
    deadline = time.monotonic() + 600
    while len(slack.reply_at) < args.events and time.monotonic() < deadline:
        time.sleep(0.05)
    runtime.inbox.wait_idle(timeout=60)
    done_s = time.perf_counter() - start
    reply = [(slack.reply_at[ts] - t0) * 1000 for ts, t0 in sent_at.items() if ts in slack.reply_at]

    threads = ", ".join(f"{p.spec.name}={p.spec.threads}" for p in runtime.inbox.pools.values())
    print(
        f"events={args.events} concurrency={args.concurrency} store={bot.adapters.store.backend}"  # type: ignore[attr-defined]
        f" pools: {threads}"
    )
    print(
        f"ack ms (client): p50={pct(acks, 0.5):.1f} p99={pct(acks, 0.99):.1f} max={max(acks):.1f}"
    )
    print(
        f"ack ms (server): p50={pct(server_acks, 0.5):.1f} p99={pct(server_acks, 0.99):.1f} "
        f"max={max(server_acks):.1f}"
    )
    print(
        f"inbox insert ms: p50={pct(record_ms, 0.5):.1f} p99={pct(record_ms, 0.99):.1f} "
        f"max={max(record_ms):.1f}"
    )
    print(
        f"sent in {send_s:.2f}s ({args.events / send_s:.0f} events/s); all replies by {done_s:.2f}s"
    )
    if reply:
        print(
            f"post->thread reply ms ({len(reply)} replies): p50={pct(reply, 0.5):.0f} "
            f"p99={pct(reply, 0.99):.0f} mean={statistics.mean(reply):.0f}"
        )
    server.stop()
    runtime.shutdown(time.monotonic() + 5)
    slack.stop()


if __name__ == "__main__":
    main()
