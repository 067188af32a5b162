"""Jira -> Slack end to end: a status change made in the fake Jira is announced once in the
post's thread, through the sync, through the signed webhook, and with both at once. Real Bolt on
waitress, real WebClient against FakeSlack, real `jira` client against FakeJira (``Rig``)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.wiring import Rig

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hook-secret-0123456789"
C = "CIDEAS01"


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, jira_webhook_secret=SECRET)
    yield r
    r.close()


def _text(call: dict[str, Any]) -> str:
    return str(call.get("text", "")) + str(call.get("blocks", ""))


def _filed(rig: Rig) -> tuple[str, str]:
    ev = rig.message("Add dark mode to the dashboard")
    rig.send_event(ev)
    rig.wait_idle()
    rig.send_event(rig.reaction(C, ev["ts"]))
    rig.wait_idle()
    (key,) = rig.jira.issues
    filing = rig.store.get_filing(C, ev["ts"])
    assert filing is not None and filing.state == "filed"
    return ev["ts"], key


def _announced(rig: Rig, ts: str, key: str) -> list[str]:
    return [
        str(r["text"])
        for r in rig.slack.thread_replies(C, ts)
        if str(r.get("text", "")).startswith(f"{key} ")
        and any(w in str(r["text"]) for w in ("moved to", "assigned to", "resolved as", "reopened"))
    ]


def _hook(rig: Rig, key: str, **kw: Any) -> tuple[int, str]:
    assert rig.server is not None
    return rig.jira.send_webhook(f"{rig.server.url}/jira/webhook", key, **kw)


def test_a_status_change_is_announced_once_by_the_sync(rig: Rig) -> None:
    assert rig.bot.sync is not None
    ts, key = _filed(rig)
    rig.bot.sync.sync()  # the new issue as filed: nothing to say
    assert _announced(rig, ts, key) == []
    rig.jira.transition(key, "In Progress", assignee="Dana")
    rig.bot.sync.sync()
    rig.bot.sync.sync()  # again (and the margin re-reads it): still once
    assert _announced(rig, ts, key) == [f"{key} moved to *In Progress* · assigned to Dana"]
    post = rig.store.get_post(C, ts)
    assert post is not None and post.reply_ts
    last = [u for u in rig.slack.calls_to("chat.update") if u["ts"] == post.reply_ts][-1]
    assert "*In Progress*" in _text(last) and key in _text(last)


def test_the_webhook_announces_at_once_and_the_sync_then_says_nothing(rig: Rig) -> None:
    assert rig.bot.sync is not None
    ts, key = _filed(rig)
    rig.jira.transition(key, "In Progress")
    assert _hook(rig, key, secret=SECRET) == (202, "announced\n")
    assert _hook(rig, key, secret=SECRET) == (202, "unchanged\n")  # Jira retried it
    rig.bot.sync.sync()
    assert _announced(rig, ts, key) == [f"{key} moved to *In Progress*"]
    # Resolved: told, and the post gets the resolved reaction.
    rig.jira.transition(key, "Done", resolution="Done")
    assert _hook(rig, key, header_secret=SECRET)[0] == 202
    assert _announced(rig, ts, key)[-1] == f"{key} moved to *Done* · resolved as *Done*"
    assert {"channel": C, "timestamp": ts, "name": "checkered_flag"} in rig.slack.calls_to(
        "reactions.add"
    )


def test_a_burst_with_the_webhook_and_the_sync_both_on_is_one_message(rig: Rig) -> None:
    assert rig.bot.sync is not None
    sync = rig.bot.sync
    ts, key = _filed(rig)
    rig.jira.transition(key, "In Progress")
    rig.jira.transition(key, "In Review", assignee="Dana")
    rig.jira.transition(key, "In Review", assignee="Erin")
    answers: list[int] = []
    barrier = threading.Barrier(5)

    def hook() -> None:
        barrier.wait()
        answers.append(_hook(rig, key, secret=SECRET)[0])

    def sync_now() -> None:
        barrier.wait()
        sync.sync()

    threads = [threading.Thread(target=hook) for _ in range(4)]
    threads.append(threading.Thread(target=sync_now))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert answers == [202] * 4
    assert _announced(rig, ts, key) == [f"{key} moved to *In Review* · assigned to Erin"]


@pytest.mark.parametrize(
    ("kw", "status"),
    [
        ({}, 401),
        ({"secret": "wrong"}, 401),
        ({"header_secret": "wrong"}, 401),
        ({"secret": SECRET, "body": b"not json"}, 400),
        ({"secret": SECRET, "body": b'{"issue": {"key": "x y"}}'}, 400),
    ],
    ids=["unsigned", "bad-signature", "bad-secret", "not-json", "bad-key"],
)
def test_the_webhook_refuses_what_is_not_jira(rig: Rig, kw: dict[str, Any], status: int) -> None:
    ts, key = _filed(rig)
    rig.jira.transition(key, "In Progress")
    assert _hook(rig, key, **kw)[0] == status
    assert _announced(rig, ts, key) == []


def test_an_issue_not_filed_from_slack_is_left_alone(rig: Rig) -> None:
    other = rig.jira.add_issue("Made in Jira")
    rig.jira.transition(other, "Done", resolution="Done")
    assert _hook(rig, other, secret=SECRET) == (202, "not_ours\n")
    assert rig.slack.calls_to("chat.postMessage") == []


def test_sync_jira_run_by_hand_announces_too(rig: Rig, tmp_path: Path) -> None:
    ts, key = _filed(rig)
    rig.jira.transition(key, "In Progress", assignee="Dana")
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "JIRA_", "PINECONE_"))
    }
    env.update(
        PYTHONPATH=str(ROOT),
        BOT_DATA_DIR=str(tmp_path / "cli-data"),
        DATABASE_URL=rig.db_url,
        LLM_MODEL="",
        SLACK_BOT_TOKEN=rig.slack.token,
        SLACK_API_URL=rig.slack.base_url,
        JIRA_URL=rig.jira.base_url,
        JIRA_PROJECT="PROJ",
        JIRA_API_TOKEN=rig.jira.token,
        JIRA_EMAIL=rig.jira.email,
    )

    def sync_jira(**extra: str) -> None:
        run = subprocess.run(
            [sys.executable, "-m", "bot", "sync-jira", "--full"],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=180,
        )
        assert run.returncode == 0, run.stderr

    # Without Slack there is nowhere to say it: nothing is recorded as said, so it is not lost.
    sync_jira(SLACK_BOT_TOKEN="")
    assert _announced(rig, ts, key) == []
    sync_jira()
    assert _announced(rig, ts, key) == [f"{key} moved to *In Progress* · assigned to Dana"]
    # The serving bot, told by the webhook afterwards, knows it was said.
    assert _hook(rig, key, secret=SECRET) == (202, "unchanged\n")
