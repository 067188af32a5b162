"""The loop's Block Kit: a Jira change told in the thread, the ticket's state on the reply, the
votes; whatever Jira or people named things, nothing can notify anyone or inject a link."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.domain.filing import FilingResult
from bot.domain.issue_changes import IssueChange, IssueState
from bot.domain.models import Triage
from bot.slack import blocks, loop_blocks
from tests.unit.test_audit_broadcast import _check, hostile

URL = "https://jira.example/browse/PROJ-1"
names = st.one_of(st.none(), hostile)


def test_a_change_reads_as_one_line() -> None:
    change = IssueChange(
        IssueState("IDEA-21", "To Do", "new"),
        IssueState("IDEA-21", "In Progress", "indeterminate", "Dana"),
        ("status", "assignee"),
    )
    text, blks = loop_blocks.build_issue_change(change, URL)
    assert text == "IDEA-21 moved to *In Progress* · assigned to Dana"
    assert blks[0]["text"]["text"] == f"<{URL}|IDEA-21> moved to *In Progress* · assigned to Dana"
    back = IssueChange(change.after, IssueState("IDEA-21", "To Do"), ("assignee", "resolution"))
    assert loop_blocks.build_issue_change(back, None)[0] == "IDEA-21 unassigned · reopened"


def test_the_reply_shows_votes_and_the_tickets_state() -> None:
    triage = Triage(kind="idea", confidence=0.9, title="Dark mode", summary="", analyzer="t")
    filed = FilingResult("already", key="PROJ-1", url=URL)
    state = IssueState("PROJ-1", "Done", "done", "Dana", "Fixed")
    _, blks = blocks.build_triage_reply(
        triage, "C1", "1.0", "ticket", votes=5, filed=filed, issue=state
    )
    texts = [e["text"] for b in blks if b["type"] == "context" for e in b["elements"]]
    assert "👍 5" in texts
    assert f"Filed as <{URL}|PROJ-1> · *Done* · resolved as Fixed · assigned to Dana" in texts
    _, blks = blocks.build_triage_reply(triage, "C1", "1.0", "ticket", votes=2, vote_emoji="fire")
    assert ":fire: 2" in str(blks)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(status=names, assignee=names, resolution=names, key=hostile)
def test_nothing_jira_says_can_notify_or_link(
    status: str | None, assignee: str | None, resolution: str | None, key: str
) -> None:
    after = IssueState(key, status, None, assignee, resolution)
    change = IssueChange(IssueState(key), after, ("status", "assignee", "resolution"))
    text, blks = loop_blocks.build_issue_change(change, URL)
    _check(text, blks, {URL})
    triage = Triage(kind="idea", confidence=0.9, title="t", summary="", analyzer="t")
    filed = FilingResult("already", key="PROJ-1", url=URL)
    text, blks = blocks.build_triage_reply(triage, "C1", "1.0", "ticket", filed=filed, issue=after)
    _check(text, blks, {URL})
