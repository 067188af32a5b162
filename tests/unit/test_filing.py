"""The filing engine (``Filer``) on the real SQLite store with a recording fake Tracker."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.jira_format import render_wiki
from bot.domain.filing import (
    TOPIC,
    Backoff,
    FilingJob,
    check_issue_types,
    marker_label,
    may_file,
)
from bot.domain.models import IssueText
from bot.domain.ports import TrackerRejected, TrackerRetryable
from bot.service.filing import Filer
from tests.fakes.memory_store import MemoryStore
from tests.fakes.notifier import RecordingNotifier
from tests.fakes.tracker import FakeTracker


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def _service(
    tmp_path: Path, tracker: FakeTracker, **kw: Any
) -> tuple[Filer, RecordingNotifier, Clock]:
    notes, clock = RecordingNotifier(), Clock()
    svc = Filer(
        store=MemoryStore(clock),
        tracker=tracker,
        project="PROJ",
        issue_types={"idea": "Story", "bug": "Bug"},
        notifier=notes,
        clock=clock,
        rng=lambda a, b: b,
        **kw,
    )
    return svc, notes, clock


def _req(ts: str = "1.1", **kw: Any) -> FilingJob:
    return FilingJob(channel="C1", ts=ts, reply_ts=ts, text="Add dark mode", requester="U1", **kw)


def test_files_once_and_reports(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, notes, _ = _service(tmp_path, tracker)
    first = svc.submit(_req())
    assert first.status == "filed" and first.key == "PROJ-1"
    again = svc.submit(_req())
    assert again.status == "already" and again.key == "PROJ-1"
    assert len(tracker.created) == 1 and notes.outcomes() == ["filed"]
    assert tracker.created[0].marker == marker_label("C1", "1.1")


def test_concurrent_requests_file_once(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, _, _ = _service(tmp_path, tracker)
    out: list[str] = []
    threads = [
        threading.Thread(target=lambda: out.append(svc.submit(_req()).status)) for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(tracker.created) == 1
    assert out.count("filed") == 1 and set(out) <= {"filed", "already", "in_progress"}


def test_crash_after_jira_created_finds_the_marker_instead_of_duplicating(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, _notes, clock = _service(tmp_path, tracker)
    tracker.crash_after_create = True
    assert svc.submit(_req()).status == "queued"  # the unexpected error counts as retryable
    tracker.crash_after_create = False
    clock.now += timedelta(minutes=10)
    assert svc.run_due() == 1
    assert len(tracker.created) == 1
    filing = svc.store.get_filing("C1", "1.1")
    assert filing is not None and filing.state == "filed" and filing.issue_key == "PROJ-1"


def test_backoff_is_exponential_capped_jittered_and_honours_retry_after() -> None:
    b = Backoff(base=2, cap=300, floor=1)
    top = [b.delay(n, None, lambda lo, hi: hi) for n in range(12)]
    assert top[:4] == [2, 4, 8, 16] and max(top) == 300
    assert b.delay(0, None, lambda lo, hi: lo) == 1  # floor: never a busy loop
    assert b.delay(0, 45, lambda lo, hi: hi) == 45
    assert b.delay(0, 10**6, lambda lo, hi: hi) == b.max_retry_after


def test_retryable_then_success(tmp_path: Path) -> None:
    tracker = FakeTracker()
    tracker.failures = [TrackerRetryable("503"), TrackerRetryable("429", retry_after=60)]
    svc, notes, clock = _service(tmp_path, tracker)
    assert svc.submit(_req()).status == "queued"
    clock.now += timedelta(seconds=2)
    assert svc.run_due() == 1  # second failure, Retry-After 60
    clock.now += timedelta(seconds=59)
    assert svc.run_due() == 0
    clock.now += timedelta(seconds=2)
    assert svc.run_due() == 1
    assert notes.outcomes() == ["queued", "filed"]
    assert svc.store.pending() == []


def test_ambiguous_failure_waits_for_search_to_catch_up(tmp_path: Path) -> None:
    # A timed-out create may have happened: the retry searches the marker, so it waits long
    # enough for Jira's search index, instead of the usual first retry within seconds.
    tracker = FakeTracker()
    tracker.failures = [TrackerRetryable("timed out", ambiguous=True)]
    svc, _notes, clock = _service(tmp_path, tracker)
    result = svc.submit(_req())
    assert result.status == "queued" and result.retry_at is not None
    assert result.retry_at - clock.now >= timedelta(seconds=30)
    clock.now += timedelta(seconds=29)
    assert svc.run_due() == 0
    clock.now += timedelta(seconds=2)
    assert svc.run_due() == 1 and len(tracker.created) == 1


def test_rejected_is_final_and_can_be_retried_by_a_new_request(tmp_path: Path) -> None:
    tracker = FakeTracker()
    tracker.failures = [TrackerRejected("bad", {"customfield_1": "Team is required."})]
    svc, _notes, clock = _service(tmp_path, tracker)
    res = svc.submit(_req())
    assert res.status == "rejected" and res.fields == {"customfield_1": "Team is required."}
    clock.now += timedelta(hours=1)
    assert svc.run_due() == 0
    assert svc.submit(_req()).status == "filed"  # after an admin fixed Jira


def test_comment_instead_adds_the_post_to_the_existing_issue_once(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, notes, _ = _service(tmp_path, tracker)
    result = svc.submit(_req(comment_on="PROJ-9", summary="Dark mode"))
    assert (result.status, result.key) == ("commented", "PROJ-9")
    assert [c.key for c in tracker.comments] == ["PROJ-9"] and tracker.created == []
    assert tracker.comments[0].body.original == "Add dark mode"
    assert svc.submit(_req(comment_on="PROJ-9")).status == "already"
    assert len(tracker.comments) == 1 and notes.outcomes() == ["commented"]


def test_no_tracker_is_unavailable(tmp_path: Path) -> None:
    svc, _, _ = _service(tmp_path, FakeTracker())
    svc.tracker = None
    assert svc.submit(_req()).status == "unavailable"


def test_item_without_claim_is_recovered(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, _, clock = _service(tmp_path, tracker)
    svc.store.enqueue(
        TOPIC, "C1:1.1", _req().model_dump(mode="json"), clock.now
    )  # died before claiming
    assert svc.run_due() == 1 and len(tracker.created) == 1


def test_description_keeps_within_jira_limit_and_is_verbatim() -> None:
    text = "{noformat} *bold* " + "y" * 40_000
    d = render_wiki(
        IssueText(summary="Sum", original=text, permalink="https://slack/x", author="Alice")
    )
    assert len(d) <= 32_767 and "https://slack/x" in d and "Alice" in d
    assert d.count("{noformat}") == 2 and "cut:" in d
    short = render_wiki(IssueText(summary="Sum", original="hello"))
    assert "hello" in short and "cut:" not in short


def test_may_file() -> None:
    groups = {"S1": ["U2"]}
    assert may_file("U9", [], [], groups.__getitem__)
    assert may_file("U1", ["U1"], ["S1"], groups.__getitem__)
    assert may_file("U2", ["U1"], ["S1"], groups.__getitem__)
    assert not may_file("U3", ["U1"], ["S1"], groups.__getitem__)
    assert not may_file("U3", [], ["SMISSING"], groups.__getitem__)


def test_check_issue_types() -> None:
    assert check_issue_types({"idea": "story"}, ["Story", "Bug"]) == []
    (problem,) = check_issue_types({"idea": "Feature"}, ["Story", "Bug"])
    assert "idea=Feature" in problem and "Story" in problem


@pytest.mark.parametrize("kind,expected", [("bug", "Bug"), ("idea", "Story"), ("other", "Story")])
def test_issue_type_from_kind(tmp_path: Path, kind: str, expected: str) -> None:
    tracker = FakeTracker()
    svc, _, _ = _service(tmp_path, tracker)
    svc.submit(_req(kind=kind, title="T"))
    assert tracker.created[0].issue_type == expected
