"""One envelope for everything the bot stores or produces: outbox items, digest claims, Slack
message metadata on its own posts, the audit trail; rows of the previous release still read."""

from __future__ import annotations

import io
import json
import logging
from datetime import UTC, date, datetime
from typing import Any

import pytest

from bot.adapters.slack_chat import slack_metadata
from bot.domain import audit, events
from bot.domain.envelope import derived_id, read
from bot.domain.filing import TOPIC, FilingJob
from bot.domain.models import Triage
from bot.domain.ports import StoredPost, TrackerRetryable
from bot.observability.context import log_context
from bot.observability.logs import make_handler
from bot.service.filing import Filer
from bot.slack.notifier import SlackNotifier
from tests.fakes.chat import RecordingChat
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.slack_server import _metadata_ok
from tests.fakes.tracker import FakeTracker

T0 = datetime(2026, 4, 15, 9, 30, tzinfo=UTC)
DAY = date(2026, 4, 15)
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


def _job(ts: str = "1.1", **kw: Any) -> FilingJob:
    return FilingJob(channel="C1", ts=ts, reply_ts=ts, text="Add dark mode", requester="U1", **kw)


def _filer(tracker: FakeTracker | None = None) -> tuple[Filer, MemoryStore]:
    clock = Clock()
    store = MemoryStore(clock)
    filer = Filer(
        store=store,
        tracker=tracker or FakeTracker(),
        project="PROJ",
        issue_types={"idea": "Story"},
        notifier=RecordingNotifier(),
        clock=clock,
        rng=lambda a, b: b,
        owner="replica-a",
    )
    return filer, store


# --------------------------------------------------------------------------- outbox items


def test_an_outbox_item_is_stored_as_the_envelope() -> None:
    tracker = FakeTracker()
    filer, store = _filer(tracker)
    # Jira down: the item stays in the outbox, so its stored payload can be looked at.
    tracker.failures.append(TrackerRetryable("down"))
    assert filer.submit(_job(trace_id=TRACE)).status == "queued"
    (item,) = store.pending()
    assert set(item.payload) == {"metadata", "data"}
    meta = item.payload["metadata"]
    assert meta == {
        "version": 1,
        "event_id": derived_id(TOPIC, "C1:1.1"),
        "trace_id": TRACE,
        "type": "jira.file",
        "published_by": "replica-a",
        "published_at": "2026-04-15T09:30:00Z",
    }
    assert FilingJob.model_validate(item.payload["data"]) == _job(trace_id=TRACE)
    # The retry reads it back and files it under the same trace.
    store_clock = filer.clock
    assert isinstance(store_clock, Clock)
    store_clock.now = T0.replace(hour=12)
    assert filer.run_due() == 1
    assert [i.body.trace_id for i in tracker.created] == [TRACE]


def test_the_same_work_asked_twice_is_one_event_id() -> None:
    a = events.filing_event(_job(trace_id="a" * 32), now=T0, by="x")
    b = events.filing_event(_job(trace_id="b" * 32, title="other"), now=T0, by="y")
    assert a.event_id == b.event_id and a.trace_id != b.trace_id
    assert events.filing_event(_job("2.2"), now=T0, by="x").event_id != a.event_id


def test_an_outbox_item_of_the_previous_release_is_filed() -> None:
    """Migration-free: a bare FilingJob row (version 0) reads, with its own trace id."""
    tracker = FakeTracker()
    filer, store = _filer(tracker)
    bare = _job(trace_id=TRACE).model_dump(mode="json")
    assert store.enqueue(TOPIC, "C1:1.1", bare, T0) is not None
    env, job = events.read_filing(bare, TOPIC)
    assert env.metadata.version == 0 and env.trace_id == TRACE and job == _job(trace_id=TRACE)
    assert filer.run_due() == 1
    assert [(i.marker is not None, i.body.trace_id) for i in tracker.created] == [(True, TRACE)]
    # Without a trace id of its own, a bare row still gets a stable one (the same every read).
    untraced = _job().model_dump(mode="json")
    first, job = events.read_filing(untraced, TOPIC)
    assert job.trace_id == first.trace_id == events.read_filing(untraced, TOPIC)[0].trace_id


def test_an_unreadable_outbox_item_is_dropped_not_retried_forever() -> None:
    filer, store = _filer()
    item_id = store.enqueue(TOPIC, "C1:9.9", {"metadata": {"version": 7}, "data": {}}, T0)
    assert item_id is not None
    assert filer.run_due() == 1
    assert store.pending() == []


# --------------------------------------------------------------------------- digest claims


def test_a_digest_claim_holds_its_envelope_and_old_claims_still_read() -> None:
    store = MemoryStore(Clock())
    claim = events.digest_claim_event("meetings", "CD", DAY, now=T0, by="r1", trace_id=TRACE)
    assert store.claim_digest("meetings", "CD", DAY, token="t", extra=claim.to_dict())
    record = store.get_digest("meetings", "CD", DAY)
    assert record is not None
    env = events.read_digest_claim(record.extra, "meetings", "CD", DAY)
    assert env == claim and env.metadata.version == 1 and env.type == "digest.claim"
    assert env.event_id == derived_id("digest.claim", "meetings:CD:2026-04-15")
    # The previous release stored "{}": it reads from the row's columns, same event id.
    old = events.read_digest_claim({}, "meetings", "CD", DAY, message_ts="5.5")
    assert old.metadata.version == 0 and old.event_id == env.event_id
    assert old.data == {
        "key": "meetings:CD:2026-04-15",
        "digest": "meetings",
        "channel": "CD",
        "day": "2026-04-15",
        "message_ts": "5.5",
    }


# --------------------------------------------------------------------------- Slack metadata


def test_message_metadata_is_the_envelope_in_a_shape_slack_accepts() -> None:
    env = events.message_event(
        "ideabot_triage_reply", {"channel": "C1", "ts": "1.1", "key": None}, trace_id=TRACE
    )
    meta = slack_metadata({"event_type": "ideabot_triage_reply", "event_payload": env.to_dict()})
    assert _metadata_ok(meta)
    assert meta["event_payload"]["data"] == {"channel": "C1", "ts": "1.1"}
    assert read(meta["event_payload"]) == env
    # Anything Slack would refuse is made acceptable: nulls dropped, deeper values as JSON text.
    odd = slack_metadata(
        {"event_type": "x", "event_payload": {"a": None, "b": {"c": [1, 2], "d": None}}}
    )
    assert _metadata_ok(odd) and odd["event_payload"] == {"b": {"c": "[1, 2]"}}
    assert not _metadata_ok({"event_type": "x", "event_payload": {"b": {"c": None}}})


def test_message_key_reads_both_shapes() -> None:
    env = events.message_event("ideabot_digest", {"key": "k1"}, trace_id=None)
    assert events.message_key(env.to_dict()) == "k1"
    assert events.message_key({"key": "k0"}) == "k0"  # a digest the previous release posted
    assert events.message_key({"metadata": {"version": 99}, "data": {"key": "k"}}) is None


def test_the_bots_replies_carry_the_envelope_with_the_flow_trace() -> None:
    chat = RecordingChat()
    notifier = SlackNotifier(chat, "ticket", "white_check_mark")
    post = StoredPost(channel="C1", ts="1.1", user="U1", text="x", created=T0)
    with log_context(trace_id=TRACE):
        notifier.triage_reply(
            post, Triage(kind="idea", confidence=0.9, title="t", summary="s", analyzer="x")
        )
    meta = chat.posts[0]["metadata"]
    env = read(meta["event_payload"])
    assert meta["event_type"] == "ideabot_triage_reply" == env.type
    assert env.trace_id == TRACE
    assert env.data == {"channel": "C1", "ts": "1.1", "kind": "idea", "key": "C1:1.1"}
    assert env.event_id == derived_id("ideabot_triage_reply", "C1", "1.1")


# --------------------------------------------------------------------------- audit trail


def test_a_filing_leaves_one_audit_record_with_the_envelope(
    caplog: pytest.LogCaptureFixture,
) -> None:
    filer, _ = _filer()
    with caplog.at_level(logging.INFO, logger=audit.AUDIT_LOGGER):
        assert filer.submit(_job(trace_id=TRACE)).status == "filed"
    (record,) = [r for r in caplog.records if r.name == audit.AUDIT_LOGGER]
    env = read(record.__dict__["event"])
    assert env.type == "audit.filing" and env.trace_id == TRACE
    assert env.data == {
        "channel": "C1",
        "ts": "1.1",
        "status": "filed",
        "key": "PROJ-1",
        "kind": "idea",
    }
    assert "Add dark mode" not in json.dumps(record.__dict__["event"])  # no message text
    # As a JSON log line, the envelope is the line's "event".
    out = io.StringIO()
    handler = make_handler("json", out)
    handler.handle(record)
    line = json.loads(out.getvalue())
    assert line["logger"] == "ideabot.audit" and line["event"]["metadata"]["type"] == "audit.filing"
