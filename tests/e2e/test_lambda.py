"""The AWS Lambda handler in process: signed function-URL events through Bolt's Lambda adapter,
lazy listeners run as the asynchronous invocations Lambda would make, the real WebClient against
FakeSlack, the real jira client against FakeJira; and the scheduled jobs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import bot.lambda_handler as lh
from bot.config import ConfigError, Settings
from tests.fakes.aws_lambda import (
    FUNCTION_ARN,
    InProcessLambda,
    LambdaContext,
    function_url_event,
    scheduled_event,
    signed_event,
    signed_interactive,
)
from tests.fakes.slack_signing import signed_request
from tests.fakes.wiring import SECRET, Rig


class LambdaRig:
    """A Rig's fakes and use cases behind the Lambda handler, with an in-process Lambda client."""

    def __init__(self, rig: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rig = rig
        self.lambda_client = InProcessLambda()
        self.runtime = lh.LambdaRuntime.for_bot(rig.bot, lambda_client=self.lambda_client)
        monkeypatch.setattr(lh, "_runtime", self.runtime)
        self.lambda_client.handler = lh.handler
        self.context = LambdaContext()

    def invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        """One invocation of the function, as the function URL or the scheduler makes it."""
        return lh.handler(event, self.context)

    def drain(self) -> list[Any]:
        return self.lambda_client.drain(self.context)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = Rig(tmp_path, start_server=False, digest_channel="CDIGEST")
    yield r
    r.close()


@pytest.fixture
def aws(rig: Rig, monkeypatch: pytest.MonkeyPatch) -> LambdaRig:
    return LambdaRig(rig, monkeypatch)


def test_url_verification_answers_the_challenge(aws: LambdaRig) -> None:
    body = json.dumps({"type": "url_verification", "challenge": "c-123", "token": "x"})
    resp = aws.invoke(function_url_event(body, signed_request(SECRET, body)))
    assert resp["statusCode"] == 200 and "c-123" in resp["body"]
    assert aws.lambda_client.invocations == []


def test_a_new_container_acks_before_building_the_use_cases(rig: Rig) -> None:
    built: list[int] = []

    def build_bot() -> Any:
        built.append(1)
        return rig.bot

    client = InProcessLambda()
    runtime = lh.LambdaRuntime(
        rig.settings, build_bot, slack_client=rig.bot.adapters.slack_client, lambda_client=client
    )
    client.handler = runtime.handle
    ev = rig.message("Add dark mode to the dashboard")
    assert runtime.handle(signed_event(ev, SECRET), LambdaContext())["statusCode"] == 200
    assert built == [] and not runtime.bot_built  # the ack needed no database, index or model
    client.drain()
    assert built == [1] and len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1
    ev2 = rig.message("Export the report to CSV")
    runtime.handle(signed_event(ev2, SECRET, event_id="Ev2"), LambdaContext())
    client.drain()
    assert built == [1]  # built once per container


def test_a_bad_signature_is_refused_and_nothing_runs(aws: LambdaRig) -> None:
    ev = aws.rig.message("Add dark mode")
    resp = aws.invoke(signed_event(ev, "not-the-secret"))
    assert resp["statusCode"] == 401
    assert aws.lambda_client.invocations == []
    assert aws.rig.slack.calls_to("chat.postMessage") == []


def test_a_message_is_acked_first_and_triaged_in_the_lazy_invocation(aws: LambdaRig) -> None:
    rig = aws.rig
    ev = rig.message("Add dark mode to the dashboard so night shifts can read it")
    resp = aws.invoke(signed_event(ev, SECRET, event_id="Ev100"))
    assert resp["statusCode"] == 200
    # The ack did no work: only Bolt's auth.test reached Slack, one lazy invocation is queued.
    assert rig.slack.thread_replies("CIDEAS01", ev["ts"]) == []
    assert [(i.function_name, i.invocation_type) for i in aws.lambda_client.invocations] == [
        (FUNCTION_ARN, "Event")
    ]
    lazy = aws.lambda_client.invocations[0].event["headers"]
    assert lazy["x-slack-bolt-lazy-only"] == "1"
    assert lazy["x-slack-bolt-lazy-function-name"] == "on_message"
    assert [r["statusCode"] for r in aws.drain()] == [200]
    replies = rig.slack.thread_replies("CIDEAS01", ev["ts"])
    assert len(replies) == 1 and "Add dark mode to the dashboard" in json.dumps(replies[0])
    stored = rig.store.get_post("CIDEAS01", ev["ts"])
    assert stored is not None and stored.kind == "idea"


def test_a_base64_body_from_the_function_url_is_read(aws: LambdaRig) -> None:
    ev = aws.rig.message("Export to CSV from the report page")
    resp = aws.invoke(signed_event(ev, SECRET, base64_body=True))
    assert resp["statusCode"] == 200
    aws.drain()
    assert len(aws.rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1


def test_a_reaction_files_one_issue_through_jira_and_a_retry_files_none(aws: LambdaRig) -> None:
    rig = aws.rig
    ev = rig.message("Add dark mode to the dashboard")
    aws.invoke(signed_event(ev, SECRET, event_id="Ev1"))
    aws.drain()
    reaction = signed_event(rig.reaction("CIDEAS01", ev["ts"]), SECRET, event_id="Ev2")
    assert aws.invoke(reaction)["statusCode"] == 200
    assert rig.jira.issues == {}  # nothing filed inside the ack
    aws.drain()
    assert len(rig.jira.issues) == 1
    key = next(iter(rig.jira.issues))
    filing = rig.store.get_filing("CIDEAS01", ev["ts"])
    assert filing is not None and filing.state == "filed" and filing.issue_key == key
    assert rig.slack.calls_to("reactions.add") == [
        {"channel": "CIDEAS01", "timestamp": ev["ts"], "name": "white_check_mark"}
    ]
    # Slack retries the event (its ack was slow): acked, run again, and still one issue.
    retry = signed_event(rig.reaction("CIDEAS01", ev["ts"]), SECRET, event_id="Ev2")
    retry["headers"]["x-slack-retry-num"] = "1"
    assert aws.invoke(retry)["statusCode"] == 200
    aws.drain()
    assert len(rig.jira.issues) == 1


def test_the_message_shortcut_acks_empty_and_files_lazily(aws: LambdaRig) -> None:
    rig = aws.rig
    from bot.slack import blocks

    rig.slack.add_message("CIDEAS01", "1700000777.000100", "Bug: export crashes", "UALICE")
    payload = {
        "type": "message_action",
        "callback_id": blocks.SHORTCUT_FILE,
        "trigger_id": "1.2",
        "user": {"id": "UBOB"},
        "team": {"id": "T1"},
        "channel": {"id": "CIDEAS01"},
        "message_ts": "1700000777.000100",
        "response_url": "http://127.0.0.1:9/x",
        "message": {"ts": "1700000777.000100", "text": "Bug: export crashes", "user": "UALICE"},
    }
    resp = aws.invoke(signed_interactive(payload, SECRET))
    assert resp["statusCode"] == 200 and not resp["body"]
    assert rig.jira.issues == {}
    aws.drain()
    assert len(rig.jira.issues) == 1


def test_an_edit_updates_the_reply_in_place_in_the_lazy_invocation(aws: LambdaRig) -> None:
    rig = aws.rig
    ev = rig.message("Add dark mode")
    aws.invoke(signed_event(ev, SECRET, event_id="Ev1"))
    aws.drain()
    stored = rig.store.get_post("CIDEAS01", ev["ts"])
    assert stored is not None and stored.reply_ts
    edit = {
        "type": "message",
        "subtype": "message_changed",
        "hidden": True,
        "channel": "CIDEAS01",
        "channel_type": "channel",
        "ts": "1700009000.000200",
        "event_ts": "1700009000.000200",
        "message": {
            "type": "message",
            "user": "UALICE",
            "text": "Add dark mode and a light theme",
            "ts": ev["ts"],
            "edited": {"user": "UALICE", "ts": "1700009000.000000"},
        },
        "previous_message": {
            "type": "message",
            "user": "UALICE",
            "text": ev["text"],
            "ts": ev["ts"],
        },
    }
    assert aws.invoke(signed_event(edit, SECRET, event_id="Ev2"))["statusCode"] == 200
    assert rig.slack.calls_to("chat.update") == []  # nothing done inside the ack
    assert [r["statusCode"] for r in aws.drain()] == [200]
    (update,) = rig.slack.calls_to("chat.update")
    assert update["ts"] == stored.reply_ts and "light theme" in json.dumps(update)
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1  # edited, not answered again
    after = rig.store.get_post("CIDEAS01", ev["ts"])
    assert after is not None and after.text == "Add dark mode and a light theme"


def test_a_malformed_payload_is_answered_200_and_runs_nothing(aws: LambdaRig) -> None:
    # An interactive_message without actions: Bolt itself would raise (see listeners.guard).
    payload = {"type": "interactive_message", "user": {"id": "UBOB"}, "team": {"id": "T1"}}
    resp = aws.invoke(signed_interactive(payload, SECRET))
    assert resp["statusCode"] == 200
    assert aws.lambda_client.invocations == []


def test_a_failing_lazy_part_fails_its_invocation_so_lambda_retries(aws: LambdaRig) -> None:
    from bot.service.receive_post import ReceivePost

    rig = aws.rig
    ev = rig.message("Add dark mode to the dashboard")
    assert aws.invoke(signed_event(ev, SECRET))["statusCode"] == 200

    def broken(self: ReceivePost, post: Any) -> Any:
        raise RuntimeError("database went away")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ReceivePost, "__call__", broken)
        with pytest.raises(lh.LazyListenerFailed):
            aws.drain()
    assert rig.slack.thread_replies("CIDEAS01", ev["ts"]) == []
    # Lambda retries the same asynchronous invocation; now the work is done.
    aws.lambda_client.pending.append(aws.lambda_client.invocations[-1])
    aws.drain()
    assert len(rig.slack.thread_replies("CIDEAS01", ev["ts"])) == 1


def test_the_scheduled_takeaway_digest_posts_once(aws: LambdaRig) -> None:
    first = aws.invoke(scheduled_event("takeaways"))
    assert first["status"] == "posted"
    posts = [c for c in aws.rig.slack.calls_to("chat.postMessage") if c["channel"] == "CDIGEST"]
    assert len(posts) == 1
    # EventBridge delivers at least once: a second delivery posts nothing.
    assert aws.invoke(scheduled_event("takeaways"))["status"] == "already_posted"
    posts = [c for c in aws.rig.slack.calls_to("chat.postMessage") if c["channel"] == "CDIGEST"]
    assert len(posts) == 1


def test_a_digest_for_a_given_day_and_the_meeting_digest_without_a_calendar(
    aws: LambdaRig,
) -> None:
    result = aws.invoke(scheduled_event("takeaways", date="2030-01-02"))
    assert result == {"job": "takeaways", "status": "posted", "day": "2030-01-02"}
    assert aws.invoke(scheduled_event("meetings"))["status"] == "skipped"


def test_a_failed_digest_fails_the_invocation(aws: LambdaRig) -> None:
    aws.rig.slack.fail_next("chat.postMessage", "channel_not_found", times=5)
    with pytest.raises(lh.JobFailed):
        aws.invoke(scheduled_event("takeaways"))


def test_the_scheduled_jira_sync_indexes_the_project(aws: LambdaRig) -> None:
    aws.rig.jira.add_issue("Dark mode for the dashboard", issue_type="Story")
    result = aws.invoke(scheduled_event("sync-jira"))
    assert result["status"] == "done" and result["seen"] >= 1
    assert aws.rig.index.upserted


def test_the_outbox_job_retries_a_filing_jira_refused_for_a_while(aws: LambdaRig) -> None:
    rig = aws.rig
    ev = rig.message("Add dark mode to the dashboard")
    aws.invoke(signed_event(ev, SECRET))
    aws.drain()
    rig.jira.fail_next("/issue", status=503, times=1, method="POST")
    aws.invoke(signed_event(rig.reaction("CIDEAS01", ev["ts"]), SECRET, event_id="Ev9"))
    aws.drain()
    assert rig.jira.issues == {}
    assert aws.invoke(scheduled_event("outbox"))["attempted"] == 0  # not due yet
    rig.clock.advance(3600)
    assert aws.invoke(scheduled_event("outbox"))["attempted"] == 1
    assert len(rig.jira.issues) == 1


def test_unknown_scheduled_jobs_and_other_events(aws: LambdaRig) -> None:
    with pytest.raises(ValueError, match=r"detail\.job 'reindex'"):
        aws.invoke(scheduled_event("reindex"))
    assert aws.invoke({"foo": "bar"})["statusCode"] == 404


def test_lambda_settings_must_keep_state_outside_the_function(tmp_path: Path) -> None:
    base = {
        "slack_bot_token": "xoxb-1",
        "slack_signing_secret": "s",
        "pinecone_api_key": "pk",
        "pinecone_index": "ideas",
        "database_url": "postgresql://u@db/ideabot",
    }
    lh.check_lambda_settings(Settings(_env_file=None, **base))  # type: ignore[call-arg]
    for drop, var in (
        ("database_url", "DATABASE_URL"),
        ("pinecone_api_key", "PINECONE_API_KEY"),
        ("slack_signing_secret", "SLACK_SIGNING_SECRET"),
    ):
        values = {k: v for k, v in base.items() if k != drop}
        if drop == "pinecone_api_key":
            values.pop("pinecone_index")
        with pytest.raises(ConfigError, match=f"^{var}: required on AWS Lambda"):
            lh.check_lambda_settings(Settings(_env_file=None, **values))  # type: ignore[call-arg]
    sqlite = {**base, "database_url": f"sqlite:///{tmp_path}/x.db"}
    with pytest.raises(ConfigError, match=r"^DATABASE_URL"):
        lh.check_lambda_settings(Settings(_env_file=None, **sqlite))  # type: ignore[call-arg]


def test_the_handler_builds_its_runtime_once_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(lh, "_runtime", None)
    for k in ("DATABASE_URL", "PINECONE_API_KEY", "PINECONE_INDEX"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s")
    with pytest.raises(ConfigError, match=r"^DATABASE_URL"):
        lh.handler(scheduled_event("outbox"), LambdaContext())
    assert lh._runtime is None
