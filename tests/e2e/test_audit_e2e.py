"""Audit of the non-negotiables end to end: secrets never logged (at DEBUG, every library logger,
tracebacks included), hostile or malformed events never crash or misfire, and the exactly-once
machinery survives a lease that runs out while Jira is still answering.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from bot.config import load_settings
from bot.domain.filing import TOPIC
from bot.service.filing import LEASE
from tests.fakes.wiring import SECRET, Rig

PINECONE_KEY = "pcsk_AUDIT_pinecone_secret_42"
ICS_SECRET = "private-feedsecret-77aa99"


class _IcsServer:
    """Serves one broken (500) and one malformed secret feed on 127.0.0.1."""

    def __init__(self) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if "broken" in self.path:
                    self.send_response(500)
                    self.end_headers()
                    return
                body = b"BEGIN:VCALENDAR\r\nthis is not ical" + self.path.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/calendar")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        port = self.httpd.server_address[1]
        self.urls = [
            f"http://127.0.0.1:{port}/calendar/{ICS_SECRET}/broken.ics?token={ICS_SECRET}",
            f"http://127.0.0.1:{port}/calendar/{ICS_SECRET}/basic.ics",
        ]

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


def _texts(rig: Rig) -> str:
    calls = rig.slack.calls_to("chat.postMessage") + rig.slack.calls_to("chat.postEphemeral")
    return json.dumps(calls)


# ---------------------------------------------------------------- 2. never logs a secret


def test_no_secret_reaches_any_log_record_at_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ics = _IcsServer()
    r = Rig(
        tmp_path,
        pinecone_api_key=PINECONE_KEY,
        pinecone_index="ideas",
        meetings_ics=",".join(ics.urls),
        digest_channel="CIDEAS01",
    )
    secrets = [
        r.slack.token,
        SECRET,
        r.jira.token,
        PINECONE_KEY,
        ICS_SECRET,
        *ics.urls,
    ]
    try:
        caplog.set_level(logging.DEBUG)
        for name in ("slack_sdk", "slack_bolt", "urllib3", "jira", "requests", "waitress"):
            logging.getLogger(name).setLevel(logging.DEBUG)
        ev = r.message("Add dark mode to the dashboard")
        r.send_event(ev)
        r.wait_idle()
        r.jira.fail_next("/rest/api/2/issue", 503, times=1, method="POST")
        r.send_event(r.reaction("CIDEAS01", ev["ts"]))
        r.wait_idle()
        r.worker.run_once(r.clock.advance(600))
        assert len(r.jira.issues) == 1
        r.slack.fail_next("chat.postMessage", "channel_not_found")  # a listener traceback
        r.send_event(r.message("Add light mode"))
        r.slack.rate_limit_next("chat.postMessage", times=1, retry_after=0)
        r.send_event(r.message("Add a CSV export"))
        r.send_event(r.message("Add SSO"), secret="wrong-secret")  # rejected request
        r.wait_idle()
        result = r.bot.digests.run("meetings", "CIDEAS01", date(2026, 4, 15))
        assert result.status == "posted"
        assert caplog.records, "nothing was logged: the test would prove nothing"
        assert any(rec.name.startswith("slack_sdk") for rec in caplog.records)
        fmt = logging.Formatter("%(name)s %(message)s")
        for rec in caplog.records:
            line = fmt.format(rec)  # message, args and any formatted traceback
            for secret in secrets:
                assert secret not in line, f"{rec.name} logged a secret: {line[:300]}"
        assert ICS_SECRET not in _texts(r)
    finally:
        for name in ("slack_sdk", "slack_bolt", "urllib3", "jira", "requests", "waitress"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        r.close()
        ics.stop()


# ---------------------------------------------------------------- 3 and 5. bad input


MALFORMED: list[dict[str, Any]] = [
    {"type": "message", "channel": "CIDEAS01"},  # no ts, no user, no text
    {
        "type": "message",
        "channel": "CIDEAS01",
        "user": "UALICE",
        "ts": "not-a-number",
        "text": "x",
    },
    {"type": "message", "channel": "CIDEAS01", "user": "UALICE", "ts": "1.1", "text": None},
    {"type": "message", "subtype": "weird_new_subtype", "channel": "CIDEAS01", "ts": "1.2"},
    {"type": "message", "channel": "CIDEAS01", "user": "UALICE", "ts": "1.3", "text": 12},
    {
        "type": "reaction_added",
        "user": "UBOB",
        "reaction": "ticket",
        "item": {"type": "message"},
    },
    {"type": "reaction_added", "user": "UBOB", "reaction": "ticket", "item": None},
    {"type": "reaction_added", "reaction": "ticket"},
    {
        "type": "reaction_removed",
        "user": "UBOB",
        "reaction": "ticket",
        "item": {"type": "message", "channel": "CIDEAS01", "ts": "1.4"},
    },
]


def test_malformed_events_are_acked_and_ignored(rig: Rig) -> None:
    for event in MALFORMED:
        status, _ = rig.send_event(event)
        assert status == 200, event
    rig.wait_idle()
    assert rig.jira.issues == {}
    # The app still works afterwards.
    ev = rig.message("Add dark mode")
    rig.send_event(ev)
    rig.wait_idle()
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1


def test_non_utf8_body_is_rejected_without_crashing(rig: Rig) -> None:
    from tests.fakes.slack_signing import post, signed_request

    body = b'{"type":"event_callback","event":{"type":"message","text":"\xff\xfe"}}'
    headers = signed_request(SECRET, body.decode("latin-1"))
    status, _ = post(rig.url, body.decode("latin-1"), headers)
    assert status in (200, 400, 401)
    ev = rig.message("Add dark mode")
    rig.send_event(ev)
    rig.wait_idle()
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1


ODD_POSTS = [
    ":tada: :rocket: :100:",
    "\n" * 3000 + "Add dark mode" + "\n" * 3000,
    "Add bulk import " + "word " * 4000,
]


def test_odd_posts_get_a_bounded_reply_or_none(rig: Rig) -> None:
    for text in ODD_POSTS:
        ev = rig.message(text)
        assert rig.send_event(ev)[0] == 200
    rig.wait_idle()
    for reply in rig.slack.calls_to("chat.postMessage"):
        assert len(reply["blocks"]) <= 50
        assert all(
            len(b["text"]["text"]) <= 3000 for b in reply["blocks"] if b["type"] == "section"
        )
        assert len(str(reply["text"])) <= 3000


def test_file_share_is_triaged_and_unlisted_channel_and_threads_are_not(rig: Rig) -> None:
    share = rig.message("Screenshot: add dark mode", subtype="file_share", files=[{"id": "F1"}])
    other = rig.message("Add dark mode", channel="COTHER01")
    top = rig.message("Add dark mode")
    reply = rig.message("Add light mode too", thread_ts=top["ts"])
    for ev in (share, other, reply):
        rig.send_event(ev)
    rig.wait_idle()
    assert len(rig.slack.thread_replies("CIDEAS01", share["ts"])) == 1
    assert rig.slack.thread_replies("COTHER01", other["ts"]) == []
    assert all(
        "Add light mode" not in json.dumps(c) for c in rig.slack.calls_to("chat.postMessage")
    )


def test_reactions_by_the_bot_or_on_the_bots_own_messages_file_nothing(rig: Rig) -> None:
    bot_user = rig.slack.bot_user_id
    ev = rig.message("Add dark mode")
    rig.send_event(ev)
    rig.wait_idle()
    reply_ts = rig.store.get_post("CIDEAS01", ev["ts"]).reply_ts  # type: ignore[union-attr]
    assert reply_ts
    # The bot reacting (its own "filed" mark, or FILE_EMOJI by mistake) files nothing.
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"], user=bot_user))
    # Someone reacting to the bot's triage reply files nothing either.
    rig.send_event(rig.reaction("CIDEAS01", reply_ts, user="UBOB", item_user=bot_user))
    rig.wait_idle()
    assert rig.jira.issues == {}


def test_private_shortcut_duplicate_offer_stays_in_the_private_channel(tmp_path: Path) -> None:
    from bot.domain.models import Ticket

    ticket = Ticket(
        key="PROJ-7",
        title="Add SSO login",
        description="Add SSO login",
        url="https://jira.example/browse/PROJ-7",
    )
    r = Rig(tmp_path, tickets=[ticket])
    try:
        r.slack.add_channel("GSECRET1", is_private=True)
        r.slack.add_message("GSECRET1", "1700000700.000100", "Add SSO login", "UALICE")
        r.send_shortcut("GSECRET1", "1700000700.000100", "Add SSO login", "UALICE")
        r.wait_idle()
        calls = r.slack.calls_to("chat.postMessage") + r.slack.calls_to("chat.postEphemeral")
        assert calls and all(c["channel"] == "GSECRET1" for c in calls)
    finally:
        r.close()


# ---------------------------------------------------------------- 3. the outbox worker survives


def test_outbox_worker_survives_a_store_outage(rig: Rig) -> None:
    ev = rig.message("Add dark mode")
    job = rig.filing_job(ev)
    store = rig.store
    assert store.enqueue(TOPIC, job.key, job.model_dump(mode="json"), rig.clock())
    store.claim_filing("CIDEAS01", ev["ts"], "dead-process")
    calls = {"n": 0}
    real_due = store.due

    def broken_due(*a: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("database is locked")
        return real_due(*a, **kw)

    store.due = broken_due  # type: ignore[method-assign]
    worker = rig.worker
    worker.poll_interval = 0.01
    worker.clock = lambda: rig.clock.advance(600)
    worker.start()
    try:
        rig.slack.wait_for("reactions.add", 1, timeout=10)
    finally:
        worker.stop()
    assert calls["n"] >= 2 and len(rig.jira.issues) == 1


# ---------------------------------------------------------------- 4. never files twice


def test_lease_outlives_a_worst_case_jira_write() -> None:
    # The lease is renewed right before each write to Jira (bot.service.lease_keeper); from there
    # the write is at most JIRA_REQUESTS_PER_WRITE requests (tests/adapters/test_jira_deadlines.py),
    # each ended by its total deadline, which the composition root sizes from the lease.
    from bot.adapters.jira_tracker import JIRA_REQUESTS_PER_WRITE
    from bot.bootstrap import jira_request_deadline

    settings = load_settings(_env_file=None)
    assert LEASE.total_seconds() == settings.filing_lease_seconds
    assert JIRA_REQUESTS_PER_WRITE * jira_request_deadline(settings) < LEASE.total_seconds()


def test_a_second_worker_after_lease_expiry_neither_files_nor_reports_again(rig: Rig) -> None:
    """Worker A's create landed in Jira but A is still busy (indexing) when its lease runs out;
    worker B must not file again or tell the thread a second time."""
    ev = rig.message("Add dark mode")
    job = rig.filing_job(ev)
    filer = rig.bot.filer
    second = rig.replica()
    hold, entered = threading.Event(), threading.Event()
    real_upsert = rig.index.upsert

    def slow_upsert(tickets: Any) -> int:
        entered.set()
        hold.wait(10)
        return real_upsert(tickets)

    rig.index.upsert = slow_upsert  # type: ignore[method-assign]
    # A's clock is behind by more than a lease, so its lease is already over in real time.
    rig.clock.advance(-(LEASE.total_seconds() + 60))
    t = threading.Thread(target=filer.submit, args=(job,))
    t.start()
    try:
        assert entered.wait(10)
        second.worker.run_once(rig.clock.advance(LEASE.total_seconds() + 61))
    finally:
        hold.set()
        t.join(10)
    assert len(rig.jira.issues) == 1
    state = rig.store.get_filing("CIDEAS01", ev["ts"])
    assert state is not None and state.state == "filed"
    assert state.issue_key == next(iter(rig.jira.issues))
    filed = [m for m in rig.slack.thread_replies("CIDEAS01", ev["ts"]) if "Filed as" in str(m)]
    assert len(filed) == 1


def test_worker_taking_the_item_between_enqueue_and_claim_does_not_lose_it(rig: Rig) -> None:
    """The outbox worker leases the fresh item before the listener claims; Jira then fails. The
    listener must not finish (drop) the item the worker just queued for retry."""
    ev = rig.message("Add dark mode")
    job = rig.filing_job(ev)
    store = rig.store
    real_enqueue = store.enqueue
    rig.jira.fail_next("/rest/api/2/issue", 503, times=1, method="POST")

    def racing_enqueue(*a: Any, **kw: Any) -> int | None:
        ok = real_enqueue(*a, **kw)
        rig.worker.run_once(rig.clock())  # the worker wins the race; Jira answers 503
        return ok

    store.enqueue = racing_enqueue  # type: ignore[method-assign]
    rig.bot.filer.submit(job)
    store.enqueue = real_enqueue  # type: ignore[method-assign]
    rig.worker.run_once(rig.clock.advance(600))
    assert len(rig.jira.issues) == 1
    state = store.get_filing("CIDEAS01", ev["ts"])
    assert state is not None and state.state == "filed"
    assert store.pending() == []
