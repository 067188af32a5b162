"""Socket Mode end to end: the real ``SocketModeHandler`` (slack_sdk's builtin WebSocket client)
connects over a loopback socket to FakeSocketMode, found through FakeSlack's
``apps.connections.open``; envelopes go in, acks come back, the bot answers on FakeSlack and
files on FakeJira. Waits are on conditions with timeouts, never fixed sleeps."""

from __future__ import annotations

import http.client
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from slack_bolt.adapter.socket_mode import SocketModeHandler

from bot.slack.server import HealthServer, close_socket_mode
from tests.fakes.slack_signing import event_body
from tests.fakes.socket_mode_server import FakeSocketMode, accept_key
from tests.fakes.wiring import Rig

APP_TOKEN = "xapp-test-token"


class SocketRig:
    """Rig without an HTTP server, plus FakeSocketMode and a connected SocketModeHandler."""

    def __init__(self, tmp_path: Path) -> None:
        self.sm = FakeSocketMode().start()
        self.rig = Rig(tmp_path, start_server=False, slack_app_token=APP_TOKEN)
        self.rig.slack.socket_mode_url = self.sm.url
        token = self.rig.settings.slack_app_token
        assert token is not None
        self.handler = SocketModeHandler(self.rig.app, token.get_secret_value())
        self.handler.connect()  # non-blocking: the client runs in its own threads
        self.sm.wait_connected()

    def event(self, event: dict[str, Any], event_id: str, retry_attempt: int = 0) -> str:
        payload = json.loads(event_body(event, event_id=event_id))
        return self.sm.send_envelope("events_api", payload, retry_attempt=retry_attempt)

    def close(self) -> None:
        self.handler.close()  # first, or the client would reconnect to a stopped server
        self.sm.stop()
        self.rig.close()


@pytest.fixture
def srig(tmp_path: Path) -> Iterator[SocketRig]:
    r = SocketRig(tmp_path)
    yield r
    r.close()


def test_accept_key_matches_rfc_6455_example() -> None:
    assert accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


def test_message_then_reaction_over_socket_mode(srig: SocketRig) -> None:
    rig, sm = srig.rig, srig.sm
    (opened,) = rig.slack.calls_to("apps.connections.open")
    assert opened.get("token", APP_TOKEN) == APP_TOKEN
    assert sm.pings >= 1 and sm.pongs == 0  # the client pinged first; we answered with a pong

    ev = rig.message("Add dark mode to the dashboard so night shifts can read it")
    env = srig.event(ev, "EvSM0001")
    assert sm.wait_for_ack(env) == {"envelope_id": env}
    rig.slack.wait_for("chat.postMessage", 1)
    rig.wait_idle()
    replies = rig.slack.thread_replies("CIDEAS01", ev["ts"])
    assert len(replies) == 1
    assert "Add dark mode to the dashboard" in json.dumps(replies[0]["blocks"])
    assert len(rig.slack.calls_to("chat.postMessage")) == 1

    # Slack redelivers the same event (retry_attempt 1): acked again, answered once only.
    again = srig.event(ev, "EvSM0001", retry_attempt=1)
    assert sm.wait_for_ack(again) == {"envelope_id": again}
    rig.wait_idle()
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1

    env2 = srig.event(rig.reaction("CIDEAS01", ev["ts"]), "EvSM0002")
    assert sm.wait_for_ack(env2) == {"envelope_id": env2}
    rig.wait_idle()
    assert len(rig.jira.issues) == 1
    key, issue = next(iter(rig.jira.issues.items()))
    assert issue["fields"]["summary"].startswith("Add dark mode to the dashboard")
    filing = rig.store.get_filing("CIDEAS01", ev["ts"])
    assert filing is not None and filing.state == "filed" and filing.issue_key == key
    assert sm.acks(env) == [{"envelope_id": env}]  # exactly one ack per envelope
    assert sm.errors == []


def test_slash_command_envelope_is_acked_and_files(srig: SocketRig) -> None:
    rig, sm = srig.rig, srig.sm
    env = sm.send_envelope(
        "slash_commands",
        {
            "token": "legacy",
            "team_id": "T1",
            "api_app_id": "A1",
            "command": "/idea",
            "text": "Add SSO login",
            "user_id": "UALICE",
            "channel_id": "CIDEAS01",
            "trigger_id": "1.2",
            "response_url": "http://127.0.0.1:9/x",
        },
        accepts_response_payload=True,
    )
    assert sm.wait_for_ack(env) == {"envelope_id": env}
    rig.wait_idle()
    assert [i["fields"]["summary"] for i in rig.jira.issues.values()] == ["Add SSO login"]
    (shared,) = [p for p in rig.slack.calls_to("chat.postMessage") if not p.get("thread_ts")]
    assert shared["channel"] == "CIDEAS01" and "Add SSO login" in str(shared["text"])
    assert sm.errors == []


def test_an_event_the_database_cannot_record_is_not_acked(srig: SocketRig) -> None:
    """Not recorded means not acknowledged: Slack sends the envelope again, and that one is
    answered (once)."""
    rig, sm = srig.rig, srig.sm
    ev = rig.message("Add dark mode to the dashboard")
    path = rig.db_url.removeprefix("sqlite:///")
    lock = sqlite3.connect(path, isolation_level=None)
    try:
        lock.execute("BEGIN EXCLUSIVE")  # another writer holds the database
        env = srig.event(ev, "EvSMDOWN")
        with pytest.raises(TimeoutError):
            sm.wait_for_ack(env, timeout=3)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert sm.acks(env) == []
    assert rig.store.get_event("EvSMDOWN") is None
    again = srig.event(ev, "EvSMDOWN", retry_attempt=1)
    assert sm.wait_for_ack(again) == {"envelope_id": again}
    rig.wait_idle()
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1


def test_health_port_serves_liveness_and_readiness(srig: SocketRig) -> None:
    rig = srig.rig
    health = HealthServer(rig.runtime.readiness, "127.0.0.1", 0).start()
    try:

        def get(path: str) -> tuple[int, str]:
            c = http.client.HTTPConnection("127.0.0.1", health.port, timeout=5)
            try:
                c.request("GET", path)
                r = c.getresponse()
                return r.status, r.read().decode()
            finally:
                c.close()

        assert get("/healthz") == (200, "ok\n")
        assert get("/readyz") == (200, "ready\n")
        assert get("/nope")[0] == 404
        rig.runtime.request_stop()
        assert get("/readyz") == (503, "draining\n")
        assert get("/healthz") == (200, "ok\n")
    finally:
        health.stop()


def test_closing_sends_a_close_frame(srig: SocketRig) -> None:
    sm = srig.sm
    close_socket_mode(srig.handler)
    sm._wait(lambda: sm.closes_received >= 1, 5)  # a WebSocket close, not just a dropped socket
    assert sm.errors == []
