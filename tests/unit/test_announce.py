"""Jira -> Slack on in-memory fakes: one look per change, coalesced, announced once."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.issue_changes import IssueState, diff, parse_fields
from bot.domain.models import Analysis
from bot.domain.ports import StoredPost
from bot.service.announce import AnnounceChanges
from tests.fakes.flags import SwitchedFlags
from tests.fakes.memory_store import ManualClock, MemoryStore
from tests.fakes.metrics import RecordingMetrics
from tests.fakes.notifier import RecordingNotifier

C, TS, KEY = "CIDEAS01", "1700000000.000100", "IDEA-21"
T0 = datetime(2026, 11, 30, 9, tzinfo=UTC)
TRIAGE = Analysis(kind="idea", confidence=0.9, title="Dark mode", summary="", analyzer="t")


@dataclass
class FakeIssues:
    """The IssueReader port: issue states set by the test, votes written recorded."""

    states: dict[str, IssueState] = field(default_factory=dict)
    votes: list[tuple[str, int]] = field(default_factory=list)
    reads: int = 0
    on_read: object = None  # called during a read (to change the issue meanwhile)

    def issue_state(self, key: str) -> IssueState | None:
        self.reads += 1
        state = self.states.get(key)
        if callable(self.on_read):
            self.on_read()  # after the read: the issue changes again while it is looked at
        return state

    def write_votes(self, key: str, votes: int) -> bool:
        self.votes.append((key, votes))
        return True


def _store(clock: ManualClock, filed_at: datetime | None = None) -> MemoryStore:
    store = MemoryStore(clock)
    store.save_post(
        StoredPost(
            channel=C,
            ts=TS,
            user="UALICE",
            text="Add dark mode",
            created=T0,
            triage_json=TRIAGE.model_dump_json(),
            reply_ts="1800000000.000001",
        )
    )
    if filed_at is not None:
        clock.now = filed_at
    store.claim_filing(C, TS, "w")
    store.update_filing(C, TS, state="filed", issue_key=KEY, issue_url="https://j/browse/IDEA-21")
    return store


def _use_case(**kw: object) -> tuple[AnnounceChanges, RecordingNotifier, FakeIssues, MemoryStore]:
    clock = ManualClock(T0)
    store = _store(clock, T0 + timedelta(minutes=1))
    notes, issues = RecordingNotifier(), FakeIssues()
    issues.states[KEY] = IssueState(KEY, "To Do", "new")
    clock.now = T0  # the feature "started" before the filing
    uc = AnnounceChanges(store=store, issues=issues, notifier=notes, clock=clock, **kw)  # type: ignore[arg-type]
    clock.now = T0 + timedelta(minutes=2)
    return uc, notes, issues, store


def said(notes: RecordingNotifier, what: str = "issue_changed") -> list[dict[str, object]]:
    return [d for k, d in notes.said if k == what]


def test_a_change_is_announced_once_with_the_reply_kept_current() -> None:
    uc, notes, issues, store = _use_case(resolved_emoji="checkered_flag")
    assert uc.look(KEY) == "unchanged"  # as filed: nothing to say
    assert notes.said == []
    issues.states[KEY] = IssueState(KEY, "In Progress", "indeterminate", "Dana")
    assert uc.look(KEY, "webhook") == "announced"
    assert uc.changed([KEY, "OTHER-1"], "sync") == {KEY: "unchanged"}  # the sync: once
    ((change,),) = [[d["change"] for d in said(notes)]]
    assert change.fields == ("status", "assignee")  # type: ignore[attr-defined]
    (reply,) = said(notes, "update_triage_reply")
    assert reply["issue"].status == "In Progress" and reply["filed"].key == KEY  # type: ignore[union-attr]
    assert said(notes, "react") == []
    issues.states[KEY] = IssueState(KEY, "Done", "done", "Dana", "Done")
    assert uc.look(KEY) == "announced"
    assert [d["emoji"] for d in said(notes, "react")] == ["checkered_flag"]
    assert store.announced_state(KEY) == IssueState(KEY, "Done", "done", "Dana", "Done")


def test_only_the_configured_fields_announce() -> None:
    uc, notes, issues, _ = _use_case(fields=parse_fields("status"))
    issues.states[KEY] = IssueState(KEY, "To Do", "new", "Dana")  # assigned only
    assert uc.look(KEY) == "unchanged" and notes.said == []
    issues.states[KEY] = IssueState(KEY, "In Progress", "indeterminate", "Erin")
    assert uc.look(KEY) == "announced"
    assert [d["change"].fields for d in said(notes)] == [("status",)]  # type: ignore[attr-defined]


def test_a_change_made_while_looking_is_looked_at_again_by_the_holder() -> None:
    uc, notes, issues, _store = _use_case()
    issues.states[KEY] = IssueState(KEY, "In Progress", "indeterminate")
    answers: list[str] = []

    def meanwhile() -> None:
        if issues.reads == 1:  # a webhook arrives while the sync holds the claim
            issues.states[KEY] = IssueState(KEY, "In Review", "indeterminate", "Dana")
            answers.append(uc.look(KEY, "webhook"))

    issues.on_read = meanwhile
    assert uc.look(KEY, "sync") == "announced"
    assert answers == ["busy"]
    assert issues.reads == 2  # the holder looked again and saw the later state
    assert [d["change"].after.status for d in said(notes)] == ["In Progress", "In Review"]


def test_racing_looks_announce_a_change_once() -> None:
    uc, notes, issues, _ = _use_case()
    issues.states[KEY] = IssueState(KEY, "In Progress", "indeterminate", "Dana")
    barrier = threading.Barrier(8)

    def run() -> None:
        barrier.wait()
        uc.look(KEY, "webhook")

    threads = [threading.Thread(target=run) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(said(notes)) == 1


def test_issues_filed_before_the_feature_started_are_recorded_silently() -> None:
    clock = ManualClock(T0)
    store = _store(clock, T0)  # filed at T0
    clock.now = T0 + timedelta(days=30)  # the feature arrives a month later
    issues = FakeIssues({KEY: IssueState(KEY, "Done", "done", "Dana", "Done")})
    notes = RecordingNotifier()
    uc = AnnounceChanges(store=store, issues=issues, notifier=notes, clock=clock)
    assert uc.look(KEY) == "baseline" and notes.said == []
    issues.states[KEY] = IssueState(KEY, "Reopened", "indeterminate", "Dana")
    assert uc.look(KEY) == "announced"
    assert said(notes)[0]["change"].fields == ("status", "resolution")  # type: ignore[attr-defined]


def test_the_flag_and_a_deleted_post_silence_it_but_the_state_is_recorded() -> None:
    uc, notes, issues, store = _use_case(flags=SwitchedFlags(off={("jira-announcements", None)}))
    issues.states[KEY] = IssueState(KEY, "In Progress", "indeterminate")
    assert uc.look(KEY) == "skipped" and notes.said == []
    assert store.announced_state(KEY) == IssueState(KEY, "In Progress", "indeterminate")


def test_votes_are_written_when_they_change_and_not_otherwise() -> None:
    metrics = RecordingMetrics()
    uc, _notes, issues, store = _use_case(metrics=metrics)
    post = store.get_post(C, TS)
    assert post is not None
    assert uc.votes_changed(post) == "unchanged" and issues.votes == []  # no votes yet
    store.add_engagement(C, TS, "reaction", "UBOB", "+1", vote=True)
    post = store.get_post(C, TS)
    assert post is not None and post.votes == 1
    uc.votes_changed(post)
    uc.votes_changed(post)  # told again: nothing new to write
    assert issues.votes == [(KEY, 1)]
    assert issues.reads == 0  # a vote needs no read of the issue's state
    uc.look(KEY, "sync")  # a later look writes nothing either
    assert issues.votes == [(KEY, 1)]
    assert metrics.count("ideabot_vote_writes_total", outcome="written") == 1
    assert metrics.count("ideabot_issue_changes_total", source="sync", outcome="unchanged") == 1
    other = replace(post, ts="1700000009.000100")
    assert uc.votes_changed(other) == "not_filed"


def test_a_gone_issue_is_not_announced() -> None:
    uc, notes, issues, _ = _use_case()
    del issues.states[KEY]
    assert uc.look(KEY) == "gone" and notes.said == []
    assert uc.look("NOPE-1") == "not_ours"


@pytest.mark.parametrize(
    ("before", "after", "fields"),
    [
        (IssueState(KEY, "To Do"), IssueState(KEY, "to  do"), ()),  # case and spaces
        (
            IssueState(KEY, "To Do"),
            IssueState(KEY, "Done", resolution="Fixed"),
            ("status", "resolution"),
        ),
        (IssueState(KEY, assignee="Dana"), IssueState(KEY), ("assignee",)),
    ],
)
def test_diff(before: IssueState, after: IssueState, fields: tuple[str, ...]) -> None:
    change = diff(before, after, ("status", "assignee", "resolution"))
    assert (change.fields if change else ()) == fields


def test_parse_fields_names_an_unknown_field() -> None:
    assert parse_fields("Status, assignee,status") == ("status", "assignee")
    with pytest.raises(ValueError, match="priority"):
        parse_fields("status,priority")
