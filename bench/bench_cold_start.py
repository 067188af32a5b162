"""Cold start of the AWS Lambda handler in fresh processes, as in new containers (prints figures).

Each run starts a new Python process that does what a cold container does: import the handler's
code, build the runtime outside the handler (``bot.lambda_handler.build_runtime``: settings,
``bootstrap``, the Bolt app, the boto3 Lambda client), then handle the first Slack event (a
signed function-URL ``message`` event) up to its acknowledgement. The phases:

* imports      the modules set-up needs (boto3 included, as in the Lambda runtime)
* set-up       all of ``build_runtime`` after the imports (settings, Bolt, boto3's client)
* Slack auth   Bolt's ``auth.test`` on the first request (inside the first ack)
* first ack    the handler call for the first event, from the request to the response
* use cases    ``bootstrap`` on first use, in the lazy part: imports of SQLAlchemy, numpy, the
               Jira and Pinecone clients, and the database (below) included
* database     connecting to PostgreSQL and checking the schema (inside "use cases")
* model        loading the embedding model (inside the lazy part)
* lazy part    the asynchronous invocation that triages the post (all of the above after the
               ack, plus training the offline classifier and the reply)

"set-up total" and "first ack total" count from the start of the process.

Slack, Jira and Pinecone are local fakes, so network times are loopback times; add the real
round trips (auth.test, the Lambda Invoke call, the database) for a production estimate. The
first run compiles bytecode into a temporary cache and is not counted (an installed bundle ships
its .pyc files). Wall and CPU seconds are both printed: on a machine others are using, CPU time
is the steadier figure. PostgreSQL at 127.0.0.1:5432 is used (a throw-away database).

    .venv/bin/python -m bench.bench_cold_start [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret"
PG = "postgresql://postgres@127.0.0.1:5432/"

CHILD = r"""
import json, os, sys, time
T0, C0 = time.perf_counter(), time.process_time()
marks = {}
def mark(name, t, c):
    marks[name] = [time.perf_counter() - t, time.process_time() - c]

t, c = time.perf_counter(), time.process_time()
import bot.lambda_handler as lh
import boto3
import slack_bolt.adapter.aws_lambda
mark("imports", t, c)

import bot.bootstrap as bs
from slack_sdk import WebClient

def timed(name, fn):
    def wrapper(*a, **k):
        t, c = time.perf_counter(), time.process_time()
        try:
            return fn(*a, **k)
        finally:
            mark(name, t, c)
    return wrapper

bs.build_store = timed("database", bs.build_store)
bs.bootstrap = timed("use cases", bs.bootstrap)
WebClient.auth_test = timed("slack auth", WebClient.auth_test)

t, c = time.perf_counter(), time.process_time()
rt = lh.build_runtime()
mark("set-up", t, c)
queued = []
rt.app.listener_runner.lazy_listener_runner.lambda_client.invoke = (
    lambda FunctionName, InvocationType, Payload: queued.append(json.loads(Payload))
)
lh._runtime = rt
marks["set-up total"] = [time.perf_counter() - T0, time.process_time() - C0]

class Ctx:
    function_name = "ideabot"
    invoked_function_arn = "arn:aws:lambda:eu-west-1:123456789012:function:ideabot"
    def get_remaining_time_in_millis(self):
        return 60000

event = json.loads(sys.stdin.read())
t, c = time.perf_counter(), time.process_time()
resp = lh.handler(event, Ctx())
mark("first ack", t, c)
marks["first ack total"] = [time.perf_counter() - T0, time.process_time() - C0]
assert resp["statusCode"] == 200, resp
assert len(queued) == 1, queued
t, c = time.perf_counter(), time.process_time()
import bot.adapters.embedder_onnx
from bot.adapters.embedder_onnx import OnnxEmbedder
OnnxEmbedder._load = timed("model", OnnxEmbedder._load)
lazy = lh.handler(queued[0], Ctx())
mark("lazy part", t, c)
assert lazy["statusCode"] == 200
print(json.dumps(marks))
"""

ORDER = [
    "imports",
    "set-up",
    "set-up total",
    "slack auth",
    "first ack",
    "first ack total",
    "use cases",
    "database",
    "model",
    "lazy part",
]


def _database() -> tuple[str, str]:
    import psycopg

    name = f"ideabot_cold_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return name, PG + name


def _drop(name: str) -> None:
    import psycopg

    with psycopg.connect(PG + "postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _event(channel: str, n: int) -> str:
    from tests.fakes.aws_lambda import signed_event

    ts = f"1700000{n:03d}.000100"
    ev = {
        "type": "message",
        "channel": channel,
        "user": "UALICE",
        "text": "Add dark mode to the dashboard so the night shift can read it",
        "ts": ts,
        "channel_type": "channel",
        "event_ts": ts,
    }
    return json.dumps(signed_event(ev, SECRET, event_id=f"EvCold{n}"))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    from tests.fakes.jira_server import FakeJira
    from tests.fakes.pinecone_server import FakePinecone
    from tests.fakes.slack_server import FakeSlack

    slack = FakeSlack()
    slack.start()
    jira = FakeJira(project="PROJ")
    jira.start()
    pinecone = FakePinecone(api_key="pc-key").start()
    dbname, url = _database()
    results: list[dict[str, list[float]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "JIRA_", "PINECONE_", "AWS_", "PYTHONDONTWRITE"))
        }
        env.update(
            PYTHONPATH=str(ROOT),
            PYTHONPYCACHEPREFIX=str(Path(tmp) / "pyc"),
            BOT_DATA_DIR=str(Path(tmp) / "data"),
            DATABASE_URL=url,
            PINECONE_API_KEY="pc-key",
            PINECONE_HOST=pinecone.url,
            SLACK_BOT_TOKEN=slack.token,
            SLACK_SIGNING_SECRET=SECRET,
            SLACK_API_URL=slack.base_url,
            IDEA_CHANNELS="CIDEAS01",
            JIRA_URL=jira.base_url,
            JIRA_PROJECT="PROJ",
            JIRA_API_TOKEN=jira.token,
            JIRA_EMAIL=jira.email,
            LLM_MODEL="",
            LOG_LEVEL="WARNING",
            AWS_REGION="eu-west-1",
            AWS_DEFAULT_REGION="eu-west-1",
            AWS_ACCESS_KEY_ID="AKIDEXAMPLE",
            AWS_SECRET_ACCESS_KEY="bench",
        )
        try:
            for n in range(args.runs + 1):
                child = subprocess.run(
                    [sys.executable, "-c", CHILD],
                    input=_event("CIDEAS01", n),
                    env=env,
                    cwd=tmp,
                    capture_output=True,
                    text=True,
                    timeout=300,
                )
                if child.returncode != 0:
                    print(child.stderr[-3000:], file=sys.stderr)
                    return 1
                if n > 0:  # the first run compiles bytecode
                    results.append(json.loads(child.stdout.strip().splitlines()[-1]))
        finally:
            slack.stop()
            jira.stop()
            pinecone.stop()
            _drop(dbname)
    load = os.getloadavg()
    print(
        f"cold start over {len(results)} fresh processes (load average {load[0]:.1f} on "
        f"{os.cpu_count()} cores); seconds, median [min]"
    )
    print(f"{'phase':18s} {'wall':>15s} {'cpu':>15s}")
    for name in ORDER:
        wall = [r[name][0] for r in results if name in r]
        cpu = [r[name][1] for r in results if name in r]
        if not wall:
            continue
        print(
            f"{name:18s} {statistics.median(wall):7.3f} [{min(wall):5.3f}] "
            f"{statistics.median(cpu):7.3f} [{min(cpu):5.3f}]"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
