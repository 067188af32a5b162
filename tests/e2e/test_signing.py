"""Slack request signing through the real Bolt check: what is refused, what is accepted.

Slack signs ``v0:<timestamp>:<body>`` with the app's signing secret and Bolt refuses a timestamp
more than five minutes off, so a captured request cannot be replayed later. A refused request is
answered 401 before any listener runs: no Web API call, nothing stored.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fakes.slack_signing import event_body, signed_request
from tests.fakes.wiring import SECRET, Rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path)
    yield r
    r.close()


Headers = dict[str, str]


def _stale(body: str) -> Headers:  # a captured request replayed six minutes later
    return signed_request(SECRET, body, timestamp=int(time.time()) - 360)


def _future(body: str) -> Headers:
    return signed_request(SECRET, body, timestamp=int(time.time()) + 360)


def _other_secret(body: str) -> Headers:
    return signed_request("another-apps-secret", body)


def _tampered(body: str) -> Headers:  # signed, then the body changed on the way
    return signed_request(SECRET, body.replace("Add dark mode", "Add dark mode <!channel>"))


def _unsigned(body: str) -> Headers:
    h = signed_request(SECRET, body)
    del h["X-Slack-Signature"]
    return h


def _no_timestamp(body: str) -> Headers:
    h = signed_request(SECRET, body)
    del h["X-Slack-Request-Timestamp"]
    return h


@pytest.mark.parametrize(
    "sign", [_stale, _future, _other_secret, _tampered, _unsigned, _no_timestamp]
)
def test_badly_signed_requests_get_401_before_any_work(
    rig: Rig, sign: Callable[[str], Headers]
) -> None:
    ev = rig.message("Add dark mode")
    rig.slack.reset_calls()
    body = event_body(ev, event_id="EvBAD1")
    status, _ = rig.send(body, sign(body))
    assert status == 401
    rig.wait_idle()
    assert rig.slack.calls == []
    assert rig.store.get_post("CIDEAS01", ev["ts"]) is None


def test_a_request_inside_the_window_is_served_and_its_replay_is_not_served_twice(
    rig: Rig,
) -> None:
    """Four minutes old is inside Bolt's window (so the refusals above are about the window,
    not about the rig); resending the very same request inside the window is answered but the
    event id makes it a no-op."""
    ev = rig.message("Add dark mode")
    body = event_body(ev, event_id="EvGOOD1")
    headers = signed_request(SECRET, body, timestamp=int(time.time()) - 240)
    assert rig.send(body, headers)[0] == 200
    rig.wait_idle()
    assert rig.send(body, headers)[0] == 200
    rig.wait_idle()
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1
