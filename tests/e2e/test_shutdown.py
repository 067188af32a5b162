"""SIGTERM to a real ``python -m bot serve --http`` process, against FakeSlack and FakeJira.

The process must stop taking work at once (``/readyz`` 503), finish what it acknowledged (a
triage reply, a filing whose Jira create is in flight) within SHUTDOWN_GRACE_SECONDS, and exit 0.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from bot.adapters.store_sql import SqlStore
from bot.workers import HANDOFF
from tests.fakes.jira_server import FakeJira
from tests.fakes.slack_server import FakeSlack
from tests.fakes.slack_signing import event_body, post, signed_request
from tests.fakes.socket_mode_server import FakeSocketMode

ROOT = Path(__file__).resolve().parents[2]
SECRET = "shutdown-test-secret"
GRACE = 10


class BotProcess:
    """``python -m bot serve`` (``--http --port 0`` by default) with its standard error read
    in a thread; ``port`` is the HTTP port it logged (the health port in Socket Mode)."""

    def __init__(
        self,
        tmp_path: Path,
        slack: FakeSlack,
        jira: FakeJira,
        args: tuple[str, ...] = ("--http", "--port", "0", "--host", "127.0.0.1"),
        port_line: str = r"HTTP mode on port (\d+)",
        **env: str,
    ) -> None:
        full_env = {
            "PATH": os.environ["PATH"],
            "PYTHONPATH": str(ROOT),
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "SLACK_BOT_TOKEN": slack.token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
            "IDEA_CHANNELS": "CIDEAS01",
            "JIRA_URL": jira.base_url,
            "JIRA_EMAIL": jira.email,
            "JIRA_API_TOKEN": jira.token,
            "JIRA_PROJECT": "PROJ",
            "JIRA_ISSUE_TYPES": "idea=Story,bug=Bug,question=Task,other=Task",
            "JIRA_SYNC_MINUTES": "0",
            "SHUTDOWN_GRACE_SECONDS": str(GRACE),
            "LOG_LEVEL": "INFO",
        }
        full_env.update(env)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "serve", *args],
            cwd=tmp_path,
            env=full_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()
        self.port = int(self.wait_for(port_line, 120).group(1))

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30) -> re.Match[str]:
        """The first stderr line matching *pattern* (fails the test if none comes)."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for line in self.lines:
                    m = rx.search(line)
                    if m:
                        return m
                left = end - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise AssertionError(f"no {pattern!r} in:\n" + "\n".join(self.lines[-40:]))
                self._cond.wait(min(left, 0.2))

    def get(self, path: str) -> tuple[int, str]:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def send_event(self, event: dict[str, object], event_id: str) -> int:
        body = event_body(event, event_id=event_id)
        status, _ = post(
            f"http://127.0.0.1:{self.port}/slack/events", body, signed_request(SECRET, body)
        )
        return status

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeSlack, FakeJira]]:
    slack, jira = FakeSlack(), FakeJira(project="PROJ")
    slack.start()
    jira.start()
    try:
        yield slack, jira
    finally:
        jira.stop()
        slack.stop()


def _until(predicate: Callable[[], object], timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def _message(slack: FakeSlack, ts: str, text: str) -> dict[str, object]:
    slack.add_message("CIDEAS01", ts, text, "UALICE")
    return {
        "type": "message",
        "channel": "CIDEAS01",
        "channel_type": "channel",
        "user": "UALICE",
        "text": text,
        "ts": ts,
        "event_ts": ts,
    }


def test_sigterm_finishes_acknowledged_work_and_exits_0(
    tmp_path: Path, fakes: tuple[FakeSlack, FakeJira]
) -> None:
    slack, jira = fakes
    bot = BotProcess(tmp_path, slack, jira)
    try:
        _until(lambda: bot.get("/readyz")[0] == 200, 60, "readiness")
        bot.wait_for("offline classifier trained", 120)  # trained at start-up, not by the post
        jira.delay_next("/rest/api/2/issue", 3.0, method="POST")  # the create takes 3 s
        _message(slack, "1700000001.000100", "Export the report to CSV please")
        reaction = {
            "type": "reaction_added",
            "user": "UBOB",
            "reaction": "ticket",
            "item_user": "UALICE",
            "item": {"type": "message", "channel": "CIDEAS01", "ts": "1700000001.000100"},
            "event_ts": "1700000002.000100",
        }
        assert bot.send_event(reaction, "EvFILE") == 200
        _until(lambda: jira.requests_to("/rest/api/2/issue", "POST"), 30, "the Jira create")
        post_ev = _message(slack, "1700000003.000100", "Add dark mode to the dashboard")
        assert bot.send_event(post_ev, "EvPOST") == 200

        sent = time.monotonic()
        bot.proc.send_signal(signal.SIGTERM)
        _until(lambda: bot.get("/readyz")[0] == 503, 1.0, "/readyz to turn 503")
        assert time.monotonic() - sent < 1.0
        assert bot.get("/readyz") == (503, "draining\n")
        assert bot.get("/healthz") == (200, "ok\n")

        code = bot.proc.wait(GRACE + 5)
        took = time.monotonic() - sent
        assert code == 0, "\n".join(bot.lines[-30:])
        assert took < GRACE
    finally:
        bot.stop()
    log = "\n".join(bot.lines)
    assert "SIGTERM received: draining" in log and "stopped" in log
    assert "Traceback" not in log
    # Both acknowledged events were finished: the triage reply and the filing with its reply.
    assert len(slack.thread_replies("CIDEAS01", "1700000003.000100")) == 1, log
    assert len(jira.issues) == 1
    key = next(iter(jira.issues))
    filed = slack.thread_replies("CIDEAS01", "1700000001.000100")
    assert any(key in json.dumps(m) for m in filed)
    store = SqlStore(f"sqlite:///{tmp_path / 'data' / 'ideabot.sqlite3'}")
    try:
        assert store.pending_events() == []
        filing = store.get_filing("CIDEAS01", "1700000001.000100")
        assert filing is not None and filing.state == "filed" and filing.issue_key == key
        assert store.pending() == []
    finally:
        store.close()


def test_work_beyond_the_grace_is_handed_back_and_the_exit_is_still_on_time(
    tmp_path: Path, fakes: tuple[FakeSlack, FakeJira]
) -> None:
    slack, jira = fakes
    bot = BotProcess(tmp_path, slack, jira, SHUTDOWN_GRACE_SECONDS="1")
    try:
        _until(lambda: bot.get("/readyz")[0] == 200, 60, "readiness")
        jira.delay_next("/rest/api/2/issue", 30.0, method="POST")  # far longer than the grace
        _message(slack, "1700000001.000100", "Export the report to CSV please")
        reaction = {
            "type": "reaction_added",
            "user": "UBOB",
            "reaction": "ticket",
            "item_user": "UALICE",
            "item": {"type": "message", "channel": "CIDEAS01", "ts": "1700000001.000100"},
            "event_ts": "1700000002.000100",
        }
        assert bot.send_event(reaction, "EvSLOW") == 200
        _until(lambda: jira.requests_to("/rest/api/2/issue", "POST"), 30, "the Jira create")
        sent = time.monotonic()
        bot.proc.send_signal(signal.SIGTERM)
        code = bot.proc.wait(15)
        assert code == 0 and time.monotonic() - sent < 5
    finally:
        bot.stop()
    assert "handing them back" in "\n".join(bot.lines)
    store = SqlStore(f"sqlite:///{tmp_path / 'data' / 'ideabot.sqlite3'}")
    try:
        (left,) = store.pending_events()
        # Any replica takes it within HANDOFF (time for a Slack post under way to land), not
        # a lease later.
        assert left.event_id == "EvSLOW" and left.lease_until is not None
        assert left.lease_until <= datetime.now(UTC) + HANDOFF
    finally:
        store.close()


def test_sigterm_in_socket_mode_closes_the_connection_and_exits_0(
    tmp_path: Path, fakes: tuple[FakeSlack, FakeJira]
) -> None:
    slack, jira = fakes
    sm = FakeSocketMode().start()
    slack.socket_mode_url = sm.url
    with socket.socket() as s:  # a free port for the health server
        s.bind(("127.0.0.1", 0))
        health_port = s.getsockname()[1]
    bot = BotProcess(
        tmp_path,
        slack,
        jira,
        args=("--host", "127.0.0.1"),
        port_line=r"Socket Mode, health on port (\d+)",
        SLACK_APP_TOKEN="xapp-test-token",
        HEALTH_PORT=str(health_port),
    )
    try:
        sm.wait_connected(timeout=30)
        _until(lambda: bot.get("/readyz")[0] == 200, 60, "readiness")
        # The reply asserted below needs the classifier, trained in the background at start-up;
        # on a busy machine that took longer than the grace when the post paid for it.
        bot.wait_for("offline classifier trained", 120)
        post_ev = _message(slack, "1700000003.000100", "Add dark mode to the dashboard")
        payload = json.loads(event_body(post_ev, event_id="EvSM1"))
        env = sm.send_envelope("events_api", payload)
        assert sm.wait_for_ack(env, timeout=10) == {"envelope_id": env}
        bot.proc.send_signal(signal.SIGTERM)
        _until(lambda: bot.get("/readyz")[0] == 503, 1.0, "/readyz to turn 503")
        assert bot.proc.wait(GRACE + 5) == 0, "\n".join(bot.lines[-30:])
    finally:
        bot.stop()
        sm.stop()
    assert sm.closes_received == 1  # a WebSocket close frame, not a dropped socket
    assert sm.errors == []
    assert len(slack.thread_replies("CIDEAS01", "1700000003.000100")) == 1
    assert "Traceback" not in "\n".join(bot.lines)
