"""Every Jira request ends by its total deadline, however slowly the server answers.

A local server trickles its answer a byte at a time, each byte well inside the socket timeout:
only a total deadline ends such a request. Deadlines here are fractions of a second.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from bot.adapters.jira_http import DeadlineAdapter, DeadlineExceeded
from bot.adapters.jira_tracker import (
    JIRA_REQUESTS_PER_ATTEMPT,
    JIRA_REQUESTS_PER_WRITE,
    JiraTracker,
)
from bot.bootstrap import jira_request_deadline
from bot.config import load_settings
from bot.domain.filing import FilingJob
from bot.domain.models import IssueText, NewIssue
from bot.domain.ports import TrackerRetryable
from bot.service.filing import LEASE, Filer
from tests.fakes.jira_server import FakeJira
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier

DEADLINE = 0.3
SOCKET_TIMEOUT = 5.0  # far longer than the whole test: only the deadline can end a request
BYTE_EVERY = 0.05
# The trickled answer (~500 bytes) would take ~25 s in full. A request ended well before that was
# ended by the deadline; the bound leaves a busy CI machine seconds of scheduling slack, so the
# test checks the behaviour, not the machine's speed.
ENDED_BY_DEADLINE = 8.0


class _Trickler:
    """Answers every request one byte per BYTE_EVERY s: the status line and headers (``head``)
    or a long JSON body (``body``); stops when the client hangs up or the test ends."""

    def __init__(self, where: str) -> None:
        stop = self.stop_event = threading.Event()
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _trickle(self, data: bytes) -> None:
                for i in range(len(data)):
                    if stop.wait(BYTE_EVERY):
                        return
                    self.wfile.write(data[i : i + 1])
                    self.wfile.flush()

            def _answer(self) -> None:
                owner.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                body = b'{"id": "10001", "key": "PROJ-1", "pad": "' + b"x" * 400 + b'"}'
                head = (
                    b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                )
                try:
                    if where == "head":
                        self._trickle(head + body)
                    else:
                        self.wfile.write(head)
                        self.wfile.flush()
                        self._trickle(body)
                except OSError:
                    pass  # the client gave up, as it should

            do_GET = do_POST = _answer

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.stop_event.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(params=["head", "body"])
def trickler(request: pytest.FixtureRequest) -> Iterator[_Trickler]:
    server = _Trickler(request.param)
    try:
        yield server
    finally:
        server.close()


def test_the_transport_ends_a_trickling_answer_at_the_deadline(trickler: _Trickler) -> None:
    session = requests.Session()
    session.mount("http://", DeadlineAdapter(DEADLINE))
    started = time.monotonic()
    with pytest.raises(DeadlineExceeded):
        session.get(trickler.url + "/slow", timeout=SOCKET_TIMEOUT)
    assert time.monotonic() - started < ENDED_BY_DEADLINE


def test_a_trickled_create_is_an_ambiguous_retryable_failure(trickler: _Trickler) -> None:
    tracker = JiraTracker(
        trickler.url, "PROJ", "token", timeout=SOCKET_TIMEOUT, deadline=DEADLINE,
        deployment="datacenter",
    )  # fmt: skip
    issue = NewIssue(project="PROJ", summary="Dark mode", body=IssueText(), issue_type="Story")
    started = time.monotonic()
    with pytest.raises(TrackerRetryable, match="timed out") as err:
        tracker.create_issue(issue)
    elapsed = time.monotonic() - started
    assert err.value.ambiguous  # the POST was sent: the issue may exist
    assert elapsed < ENDED_BY_DEADLINE, elapsed
    assert trickler.requests == ["POST /rest/api/2/issue"]


def test_fast_answers_are_unaffected_and_connections_are_reused() -> None:
    with FakeJira(project="PROJ") as fake:
        tracker = JiraTracker(fake.base_url, "PROJ", fake.token, timeout=5.0, deadline=2.0)
        for _ in range(3):
            tracker.search("project = PROJ")
        assert len(fake.requests_to("/search")) == 3


# --------------------------------------------------------------------------- the lease's bound


class _RenewalsSeen(MemoryStore):
    """Notes how many requests Jira had seen at each renewal of an outbox lease."""

    def __init__(self, fake: FakeJira) -> None:
        super().__init__()
        self.fake = fake
        self.seen_at: list[int] = []

    def renew_lease(self, item_id: int, token: int, until: datetime) -> bool:
        self.seen_at.append(len(self.fake.requests))
        return super().renew_lease(item_id, token, until)


def _worst_case_filer(fake: FakeJira, tracker: JiraTracker) -> tuple[Filer, _RenewalsSeen]:
    store = _RenewalsSeen(fake)
    filer = Filer(
        store=store,
        tracker=tracker,
        project="PROJ",
        issue_types={"idea": "Story"},
        notifier=RecordingNotifier(),
        rng=lambda a, b: b,
        heartbeat=0,
    )
    return filer, store


def _writes_after_renewal(fake: FakeJira, store: _RenewalsSeen, since: int = 0) -> int:
    """The requests from the last lease renewal before the last create or comment, to it."""
    writes = [
        i + 1
        for i, r in enumerate(fake.requests)
        if i >= since
        and r.method == "POST"
        and (r.path.endswith("/issue") or r.path.endswith("/comment"))
    ]
    last = writes[-1]
    renewed = max(n for n in store.seen_at if n < last)
    return last - renewed


def test_one_attempt_makes_at_most_the_requests_the_lease_allows_for() -> None:
    # The worst case: a retry (so the marker is searched first) through Cloud's API gateway
    # while serverInfo keeps failing, a reporter Jira will not take (so "create" runs twice),
    # and the remote link.
    with FakeJira(project="PROJ", reporter_settable=False) as fake:
        # serverInfo failing, the flavour goes by the URL: not *.atlassian.net, so Data Center
        gateway = f"{fake.base_url}/ex/jira/11111111-2222-3333-4444-555555555555"
        tracker = JiraTracker(gateway, "PROJ", fake.token, timeout=5.0)
        filer, store = _worst_case_filer(fake, tracker)
        fake.fail_next("/serverInfo", 503, times=100)
        job = FilingJob(
            channel="C1",
            ts="1.1",
            reply_ts="1.1",
            requester="U1",
            text="Dark mode",
            author_email="alice@example.com",
            permalink="https://example.slack.com/archives/C1/p11",
        )
        store.claim_filing("C1", "1.1", "test")
        store.update_filing("C1", "1.1", state="failed", attempts=1)  # an answer was lost
        assert filer.submit(job).status == "filed"
        creates = [r for r in fake.requests if r.method == "POST" and r.path.endswith("/issue")]
        assert len(creates) == 2  # the reporter refused, then without it
        assert len(fake.requests_to("/serverInfo")) == 4  # asked again on every need
        assert len(fake.requests) == JIRA_REQUESTS_PER_ATTEMPT, [r.path for r in fake.requests]
        # the lease is renewed right before the write, and what the write can take from there
        # is what the lease is sized against (bot.bootstrap.jira_request_deadline)
        assert _writes_after_renewal(fake, store) == JIRA_REQUESTS_PER_WRITE

        # and a comment on the issue after a lost answer: comments, comment, link, serverInfo
        before = len(fake.requests)
        key = next(iter(fake.issues))
        store.claim_filing("C1", "2.2", "test")
        store.update_filing("C1", "2.2", state="failed", attempts=1)
        comment = job.model_copy(update={"ts": "2.2", "reply_ts": "2.2", "comment_on": key})
        assert filer.submit(comment).status == "commented"
        assert len(fake.requests) - before <= JIRA_REQUESTS_PER_ATTEMPT
        assert _writes_after_renewal(fake, store, before) <= JIRA_REQUESTS_PER_WRITE


def test_the_lease_outlives_the_write_that_follows_its_renewal() -> None:
    for lease in (10.0, 60.0, 600.0):
        settings = load_settings(_env_file=None, filing_lease_seconds=lease)
        deadline = jira_request_deadline(settings)
        assert JIRA_REQUESTS_PER_WRITE * deadline < lease
    assert LEASE.total_seconds() == load_settings(_env_file=None).filing_lease_seconds
