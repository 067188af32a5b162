"""Every Slack Web API call ends within its total deadline (bot.adapters.slack_deadline): a Slack
edge that trickles its answer, or a 429 whose Retry-After does not fit, no longer holds a worker
past the lease of the work it is doing. Real slack_sdk client against FakeSlack."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from slack_sdk.errors import SlackApiError

from bot.adapters.slack_deadline import (
    DeadlineConnectionRetry,
    DeadlineRateLimitRetry,
    DeadlineWebClient,
    SlackDeadlineError,
    time_left,
)
from bot.bootstrap import SLACK_CALL_DEADLINE, build_slack_client
from bot.config import Settings
from tests.fakes.slack_server import FakeSlack


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    fake.start()
    yield fake
    fake.stop()


def client(slack: FakeSlack, deadline: float) -> DeadlineWebClient:
    return DeadlineWebClient(
        deadline=deadline,
        token=slack.token,
        base_url=slack.base_url.rstrip("/") + "/",
        timeout=30,  # per read: never reached by a trickle
        retry_handlers=[
            DeadlineConnectionRetry(max_retry_count=2),
            DeadlineRateLimitRetry(max_retry_count=3),
        ],
    )


def test_a_call_answers_as_the_plain_client_does(slack: FakeSlack) -> None:
    c = client(slack, 5)
    got = c.chat_postMessage(channel="C1", text="hello")
    assert got["ok"] and slack.calls_to("chat.postMessage")[0]["text"] == "hello"
    with pytest.raises(SlackApiError) as err:
        c.chat_postMessage(channel="C1", text="x", token="xoxb-wrong")
    assert err.value.response["error"] == "invalid_auth"
    assert time_left() is None  # the call's deadline does not leak into the thread


def test_a_trickling_answer_ends_at_the_deadline_not_at_the_per_read_timeout(
    slack: FakeSlack,
) -> None:
    slack.trickle_next("chat.postMessage", interval=0.2)  # ~100 bytes: 20 s, a byte every read
    c = client(slack, 0.5)
    t0 = time.monotonic()
    with pytest.raises(SlackDeadlineError, match=r"within 0\.5 s"):
        c.chat_postMessage(channel="C1", text="slow")
    assert time.monotonic() - t0 < 5
    assert len(slack.calls_to("chat.postMessage")) == 1  # not retried after its own deadline
    assert c.chat_postMessage(channel="C1", text="next")["ok"]  # the client still works


def test_a_rate_limit_is_waited_for_when_the_wait_fits(slack: FakeSlack) -> None:
    slack.rate_limit_next("chat.postMessage", times=1, retry_after=0)
    assert client(slack, 5).chat_postMessage(channel="C1", text="x")["ok"]
    assert len(slack.calls_to("chat.postMessage")) == 2


def test_a_rate_limit_longer_than_the_deadline_is_answered_at_once(slack: FakeSlack) -> None:
    slack.rate_limit_next("chat.postMessage", times=3, retry_after=30)
    t0 = time.monotonic()
    with pytest.raises(SlackApiError) as err:
        client(slack, 5).chat_postMessage(channel="C1", text="x")
    assert err.value.response.status_code == 429
    assert time.monotonic() - t0 < 2  # the SDK's handler would have slept 31 s, three times
    assert len(slack.calls_to("chat.postMessage")) == 1


def test_the_bot_builds_its_slack_client_with_the_deadline(slack: FakeSlack) -> None:
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, slack_bot_token=slack.token, slack_api_url=slack.base_url
    )
    built = build_slack_client(settings)
    assert isinstance(built, DeadlineWebClient) and built.deadline == SLACK_CALL_DEADLINE
    assert built.auth_test()["ok"]


def test_a_deadline_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        DeadlineWebClient(deadline=0, token="xoxb-x")
