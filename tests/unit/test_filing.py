"""The filing engine (``Filer``) on the real SQLite store with a recording fake Tracker."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.adapters.jira_format import render_wiki
from bot.bootstrap import bootstrap
from bot.config import load_settings
from bot.domain.filing import (
    TOPIC,
    Backoff,
    FilingJob,
    LabelPolicy,
    RetryLimits,
    check_issue_types,
    marker_label,
    may_file,
)
from bot.domain.models import Analysis, IssueText, NewIssue
from bot.domain.ports import TrackerRejected, TrackerRetryable
from bot.service.filing import Filer
from tests.fakes.embedder import HashEmbedder
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
        **{"heartbeat": 0, **kw},
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
    assert tracker.created[0].marker == marker_label("C1", "1.1", svc.store.marker_secret())


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


def test_a_comment_whose_answer_was_lost_is_not_added_twice(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, notes, clock = _service(tmp_path, tracker)
    # Jira stored the comment, but the answer timed out
    tracker.fail_after_write = [TrackerRetryable("read timed out", ambiguous=True)]
    assert svc.submit(_req(comment_on="PROJ-9")).status == "queued"
    (comment,) = tracker.comments
    assert comment.marker == svc.marker("C1", "1.1")
    clock.now += timedelta(seconds=31)
    assert svc.run_due() == 1
    assert len(tracker.comments) == 1
    filing = svc.store.get_filing("C1", "1.1")
    assert filing is not None and (filing.state, filing.issue_key) == ("commented", "PROJ-9")
    assert notes.outcomes() == ["queued", "commented"]
    # a comment that never got there is added on the retry
    tracker.failures = [TrackerRetryable("HTTP 503")]
    assert svc.submit(_req("2.2", comment_on="PROJ-9")).status == "queued"
    clock.now += timedelta(seconds=31)
    assert svc.run_due() == 1
    assert [c.marker for c in tracker.comments] == [
        svc.marker(*k) for k in (("C1", "1.1"), ("C1", "2.2"))
    ]


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


# --------------------------------------------------------------------------- fenced leases


def _replica(svc: Filer) -> tuple[Filer, RecordingNotifier]:
    """A second bot process: the same store, Jira and clock, its own notifier."""
    notes = RecordingNotifier()
    return dataclasses.replace(svc, notifier=notes), notes


def test_a_slow_pass_leases_each_item_from_when_it_is_taken(tmp_path: Path) -> None:
    # Lease 4 s, every Jira create takes 3 s. Counted from the pass's start, the second item's
    # lease would end 1 s into its create, and a second replica polling then would file it again.
    tracker = FakeTracker()
    svc, _, clock = _service(tmp_path, tracker, lease=timedelta(seconds=4))
    other, _ = _replica(svc)
    tracker.failures = [TrackerRetryable("503"), TrackerRetryable("503")]
    assert svc.submit(_req("1.1")).status == "queued"
    assert svc.submit(_req("2.2")).status == "queued"
    clock.now += timedelta(seconds=10)
    polled: list[int] = []

    def slow_create(issue: NewIssue) -> None:
        clock.now += timedelta(seconds=3)
        if issue.marker == svc.marker("C1", "2.2") and not polled:
            polled.append(other.run_due())  # the other replica's worker runs meanwhile

    tracker.on_create = slow_create
    assert svc.run_due() == 2
    assert polled == [0]
    assert len(tracker.created) == 2
    assert [f.issue_key for f in (svc.store.get_filing("C1", t) for t in ("1.1", "2.2")) if f] == [
        "PROJ-1",
        "PROJ-2",
    ]


def test_a_worker_that_lost_its_lease_neither_records_nor_tells(tmp_path: Path) -> None:
    # Worker A stalls after Jira created the issue, past its lease; B takes the item over, finds
    # the issue by its marker and reports it. A's late outcome must change nothing.
    tracker = FakeTracker()
    svc, notes_a, clock = _service(tmp_path, tracker, lease=timedelta(seconds=4))
    other, notes_b = _replica(svc)

    def stall(issue: NewIssue) -> None:
        tracker.after_create = None
        clock.now += timedelta(seconds=10)
        assert other.run_due() == 1

    tracker.after_create = stall
    assert svc.submit(_req()).status == "in_progress"
    assert len(tracker.created) == 1
    assert notes_a.outcomes() == [] and notes_b.outcomes() == ["filed"]
    filing = svc.store.get_filing("C1", "1.1")
    assert filing is not None and (filing.state, filing.issue_key) == ("filed", "PROJ-1")
    assert svc.store.pending() == []


def test_a_late_failure_after_a_takeover_does_not_requeue_a_filed_message(
    tmp_path: Path,
) -> None:
    tracker = FakeTracker()
    svc, notes_a, clock = _service(tmp_path, tracker, lease=timedelta(seconds=4))
    other, notes_b = _replica(svc)

    def stall(issue: NewIssue) -> None:
        tracker.after_create = None
        clock.now += timedelta(seconds=10)
        other.run_due()

    tracker.after_create = stall
    tracker.fail_after_write = [TrackerRetryable("read timed out", ambiguous=True)]
    assert svc.submit(_req()).status == "in_progress"
    filing = svc.store.get_filing("C1", "1.1")
    assert filing is not None and (filing.state, filing.issue_key) == ("filed", "PROJ-1")
    assert filing.error is None and svc.store.pending() == []
    assert notes_a.outcomes() == [] and notes_b.outcomes() == ["filed"]


def test_a_worker_whose_lease_was_taken_over_does_not_start(tmp_path: Path) -> None:
    # A took the item, then stalled past its lease before starting; B holds the item now and
    # is searching Jira when A wakes up. A must not file next to B.
    tracker = FakeTracker()
    svc, notes_a, clock = _service(tmp_path, tracker, lease=timedelta(seconds=4))
    other, notes_b = _replica(svc)
    tracker.failures = [TrackerRetryable("503")]
    assert svc.submit(_req()).status == "queued"
    clock.now += timedelta(seconds=10)
    (item,) = svc.store.pending()
    token_a = svc.store.lease(item.id, clock.now + svc.lease, now=clock.now)
    assert token_a is not None
    clock.now += timedelta(seconds=10)
    real_search = tracker.find_by_marker
    woke: list[str] = []

    def search_while_a_wakes(project: str, marker: str) -> Any:
        if not woke:
            woke.append(svc.process(item, token_a).status)
        return real_search(project, marker)

    tracker.find_by_marker = search_while_a_wakes  # type: ignore[method-assign]
    assert other.run_due() == 1
    assert woke == ["in_progress"]
    assert len(tracker.created) == 1
    assert notes_a.outcomes() == ["queued"] and notes_b.outcomes() == ["filed"]


def test_a_worker_that_stalled_after_its_search_does_not_create(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, notes_a, clock = _service(tmp_path, tracker, lease=timedelta(seconds=4))
    other, notes_b = _replica(svc)
    tracker.failures = [TrackerRetryable("503")]
    assert svc.submit(_req()).status == "queued"
    clock.now += timedelta(seconds=10)
    real_search = tracker.find_by_marker
    stalled: list[bool] = []

    def search_then_stall(project: str, marker: str) -> Any:
        found = real_search(project, marker)
        if not stalled:  # A's search: nothing yet; then A stalls past its lease and B runs
            stalled.append(True)
            clock.now += timedelta(seconds=10)
            assert other.run_due() == 1
        return found

    tracker.find_by_marker = search_then_stall  # type: ignore[method-assign]
    assert svc.run_due() == 1
    assert len(tracker.created) == 1
    assert notes_a.outcomes() == ["queued"] and notes_b.outcomes() == ["filed"]


# --------------------------------------------------------------------------- poison work


def test_a_filing_that_keeps_failing_ends_failed_with_a_retry(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tracker = FakeTracker()
    svc, notes, clock = _service(tmp_path, tracker, limits=RetryLimits(max_attempts=3))
    tracker.failures = [TrackerRetryable("HTTP 503")] * 2 + [RuntimeError("bug in a field")]
    assert svc.submit(_req()).status == "queued"
    (item,) = svc.store.pending()
    clock.now += timedelta(minutes=5)
    assert svc.run_due() == 1
    clock.now += timedelta(minutes=5)
    with caplog.at_level(logging.ERROR, logger="bot.service.filing"):
        assert svc.run_due() == 1
    assert notes.outcomes() == ["queued", "failed"]
    filing = svc.store.get_filing("C1", "1.1")
    assert (
        filing is not None and filing.state == "failed" and "bug in a field" in (filing.error or "")
    )
    assert svc.store.pending() == []
    (record,) = [
        r for r in caplog.records if r.levelno == logging.ERROR and "giving up" in r.message
    ]
    assert f"outbox item {item.id}" in record.message and "bug in a field" in record.message
    assert tracker.created == []
    # a new request (a reaction, the Retry button) starts over
    assert svc.existing("C1", "1.1") is None
    assert svc.submit(_req()).status == "filed"
    assert notes.outcomes() == ["queued", "failed", "filed"]


def test_a_filing_is_given_up_once_it_is_too_old(tmp_path: Path) -> None:
    tracker = FakeTracker()
    limits = RetryLimits(max_attempts=1000, max_age=timedelta(hours=24))
    svc, notes, clock = _service(tmp_path, tracker, limits=limits)
    # Jira keeps asking to come back in an hour
    tracker.failures = [TrackerRetryable("429", retry_after=3600)] * 30
    assert svc.submit(_req()).status == "queued"
    runs = 0
    while svc.store.pending() and runs < 50:
        clock.now += timedelta(hours=1, seconds=1)
        runs += svc.run_due()
    assert runs == 24  # attempts at 1 h .. 24 h; the one at 24 h is the last
    filing = svc.store.get_filing("C1", "1.1")
    assert filing is not None and filing.state == "failed"
    assert notes.outcomes() == ["queued", "failed"]


# --------------------------------------------------------------------------- unforgeable markers


def test_a_post_cannot_plant_another_messages_marker(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, _, clock = _service(tmp_path, tracker)
    victim = svc.marker("C1", "1.1")
    # what anyone could compute from the victim's permalink before markers were keyed
    unkeyed = "ideabot-" + hashlib.sha256(b"C1:1.1").hexdigest()[:16]
    assert victim != unkeyed and victim.startswith("ideabot-")
    assert MemoryStore(clock).marker_secret() != svc.store.marker_secret()
    # The victim's create times out before Jira stored anything; its retry will search.
    tracker.failures = [TrackerRetryable("read timed out", ambiguous=True)]
    assert svc.submit(_req("1.1")).status == "queued"
    # Meanwhile a post repeats both markers, and a model turned them into labels.
    attack = FilingJob(
        channel="C1",
        ts="6.6",
        reply_ts="6.6",
        requester="U6",
        text=f"nice idea {victim} {unkeyed}",
        labels=(victim, unkeyed, "IdeaBot-" + victim[8:], "UI"),
    )
    assert svc.submit(attack).status == "filed"
    assert tracker.created[0].labels == ("ui", "ideabot")
    assert tracker.created[0].marker == svc.marker("C1", "6.6")
    clock.now += timedelta(seconds=31)
    assert svc.run_due() == 1
    filing = svc.store.get_filing("C1", "1.1")
    assert filing is not None and (filing.state, filing.issue_key) == ("filed", "PROJ-2")
    assert tracker.created[1].marker == victim


def test_label_policy_normalises_caps_and_filters() -> None:
    raw = [
        "Dark Mode",
        "ideabot",
        "IDEABOT-123",
        "ideabot-ffff",
        "ui",
        "ui",
        "Team A",
        "x",
        "y",
        "z",
    ]
    assert LabelPolicy().filter(raw) == ("dark-mode", "ui", "team-a", "x", "y")
    assert LabelPolicy(deny=("team-*", "X")).filter(raw) == ("dark-mode", "ui", "y", "z")
    assert LabelPolicy(allow=("ui", "Dark Mode", "ideabot*")).filter(raw) == ("dark-mode", "ui")
    # deny wins over allow, and the reserved prefix cannot be allowed back
    assert LabelPolicy(allow=("ui", "ideabot"), deny=("ui",)).filter(raw) == ()


def test_analyzers_cannot_produce_reserved_labels() -> None:
    analysis = Analysis(
        kind="idea",
        confidence=0.5,
        title="T",
        summary="S",
        labels=("ideabot-0123", "IdeaBot", "ui"),
        analyzer="llm",
    )
    assert analysis.labels == ("ui",)


def test_the_limits_and_label_lists_come_from_the_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings(
        bot_data_dir=tmp_path / "data",
        label_allow="ui, Team *, secret-plans",
        label_deny="secret-*",
        filing_max_attempts="3",
        filing_max_age_hours="1.5",
    )
    bot = bootstrap(settings, embedder=HashEmbedder(), llm=None, store=MemoryStore())
    assert bot.filer.limits == RetryLimits(3, timedelta(hours=1.5))
    labels = ["UI", "team a", "secret-plans", "other", "ideabot-1"]
    assert bot.filer.labels.filter(labels) == ("ui", "team-a")


def test_an_unreadable_work_item_is_dropped_without_holding_up_the_rest(tmp_path: Path) -> None:
    tracker = FakeTracker()
    svc, _, clock = _service(tmp_path, tracker)
    bad = svc.store.enqueue(
        TOPIC, "C1:0.0", {"channel": "C1", "from": "a future version"}, clock.now
    )
    svc.store.enqueue(TOPIC, "C1:1.1", _req().model_dump(mode="json"), clock.now)
    assert svc.run_due() == 2
    assert svc.store.pending() == [] and len(tracker.created) == 1
    item = svc.store.get_item(bad or 0)
    assert item is not None and item.attempts == 0
