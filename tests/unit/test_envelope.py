"""The event envelope: one shape, a reader per version, and today's bare rows still read."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from bot.domain import envelope
from bot.domain.envelope import Envelope, UnsupportedVersion, read, read_json, wrap
from bot.domain.filing import TOPIC, FilingJob

T0 = datetime(2026, 4, 15, 9, 30, 0, 123000, tzinfo=UTC)
HEX32 = re.compile(r"^[0-9a-f]{32}$")

JOB = FilingJob(
    channel="CIDEAS01",
    ts="1776245400.000100",
    reply_ts="1776245400.000100",
    requester="UBOB",
    text="Add dark mode to the dashboard",
    title="Add dark mode",
    labels=("ui",),
)


def test_wrap_makes_the_documented_shape() -> None:
    env = wrap(TOPIC, JOB.model_dump(mode="json"), trace_id="t" * 32, now=T0)
    d = env.to_dict()
    assert set(d) == {"metadata", "data"}
    assert d["metadata"] == {
        "version": 1,
        "event_id": env.event_id,
        "trace_id": "t" * 32,
        "type": "jira.file",
        "published_by": "ideabot",
        "published_at": "2026-04-15T09:30:00.123000Z",
    }
    assert HEX32.match(env.event_id)
    assert FilingJob.model_validate(env.data) == JOB
    assert HEX32.match(wrap("x", {}).trace_id)  # new ids are W3C trace ids


def test_version_1_round_trips_through_json() -> None:
    env = wrap(TOPIC, JOB.model_dump(mode="json"), event_id="Ev0123", now=T0)
    again = read_json(json.dumps(env.to_dict()))
    assert again == env
    assert again.metadata.published_at == T0


def test_version_0_bare_rows_read_with_stable_ids() -> None:
    row = JOB.model_dump(mode="json")  # what the outbox stores today
    first = read(row, type=TOPIC)
    second = read(json.loads(json.dumps(row)), type=TOPIC)
    assert first.metadata.version == 0
    assert first.type == "jira.file"
    assert first.data == row and FilingJob.model_validate(first.data) == JOB
    assert first.metadata.published_at is None
    assert first.event_id == second.event_id and first.trace_id == second.trace_id
    assert first.event_id != first.trace_id
    assert HEX32.match(first.event_id) and HEX32.match(first.trace_id)
    other = read({**row, "ts": "1776245400.000200"}, type=TOPIC)
    assert other.event_id != first.event_id
    assert read(row).type == "unknown"


def test_a_payload_that_merely_has_a_metadata_key_is_version_0() -> None:
    raw = {"metadata": {"version": 1}, "data": {}, "extra": 1}
    assert read(raw, type="t").metadata.version == 0
    assert read({"metadata": "x", "data": {}}).metadata.version == 0
    assert not envelope.is_envelope({"metadata": {"version": 1}, "data": []})


def test_unknown_and_malformed_versions_are_refused_clearly() -> None:
    good = wrap("t", {"a": 1}, now=T0).to_dict()
    future = {**good, "metadata": {**good["metadata"], "version": 2}}
    with pytest.raises(UnsupportedVersion, match="version 2"):
        read(future)
    for bad in (0, -1, "1", True):
        with pytest.raises(ValueError):
            read({**good, "metadata": {**good["metadata"], "version": bad}})
    without_time = {**good, "metadata": {**good["metadata"], "published_at": None}}
    with pytest.raises(ValueError, match="published_at"):
        read(without_time)
    missing = {**good, "metadata": {k: v for k, v in good["metadata"].items() if k != "trace_id"}}
    with pytest.raises(ValidationError):
        read(missing)
    extra = {**good, "metadata": {**good["metadata"], "user": "U1"}}
    with pytest.raises(ValidationError):
        read(extra)
    naive = {**good, "metadata": {**good["metadata"], "published_at": "2026-04-15T09:30:00"}}
    with pytest.raises(ValidationError):
        read(naive)
    with pytest.raises(ValueError):
        read_json("[1, 2]")


def test_every_version_has_a_reader_and_the_current_one_is_the_newest() -> None:
    assert set(envelope.READERS) == set(range(envelope.VERSION + 1))
    assert isinstance(read(wrap("t", {}).to_dict()), Envelope)
