"""Markers on Jira: a comment carries its filing's marker as its own last line, and an issue
carries no label in the marker namespace but its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.adapters.jira_tracker import COMMENT_MARKER_LINE, JiraTracker
from bot.domain.models import IssueText, NewComment, NewIssue
from tests.fakes.jira_server import FakeJira

MARKER = "ideabot-0123456789abcdef0123456789abcdef"
OTHER = "ideabot-ffffffffffffffffffffffffffffffff"


@pytest.fixture
def fake() -> Iterator[FakeJira]:
    with FakeJira(project="PROJ") as server:
        yield server


def _tracker(fake: FakeJira) -> JiraTracker:
    return JiraTracker(fake.base_url, "PROJ", fake.token, timeout=5.0, deployment="datacenter")


def test_a_comment_is_found_by_its_marker_line_only(fake: FakeJira) -> None:
    tracker = _tracker(fake)
    key = fake.add_issue("Dark mode")
    assert tracker.find_comment_marker(key, MARKER) is False
    # someone quotes the marker line in their post: it sits inside the post, not last
    forged = f"look: {COMMENT_MARKER_LINE.format(marker=MARKER)}"
    tracker.add_comment(NewComment(key=key, body=IssueText(original=forged), marker=OTHER))
    assert tracker.find_comment_marker(key, MARKER) is False
    assert tracker.find_comment_marker(key, OTHER) is True
    tracker.add_comment(
        NewComment(key=key, body=IssueText(original="x" * 40_000, author="Bob"), marker=MARKER)
    )
    body = fake.comments(key)[-1]["body"]
    assert body.endswith(COMMENT_MARKER_LINE.format(marker=MARKER)) and "cut:" in body
    assert tracker.find_comment_marker(key, MARKER) is True
    assert fake.requests_to(f"/issue/{key}/comment", "GET")[-1].param("orderBy") == "-created"


def test_an_issue_carries_no_marker_but_its_own(fake: FakeJira) -> None:
    tracker = _tracker(fake)
    issue = NewIssue(
        project="PROJ",
        summary="Dark mode",
        body=IssueText(original="Add dark mode"),
        issue_type="Story",
        labels=("ui", OTHER, OTHER.upper(), "ideabot"),
        marker=MARKER,
    )
    key = tracker.create_issue(issue).key
    assert fake.issues[key]["fields"]["labels"] == ["ui", "ideabot", MARKER]
    assert tracker.find_by_marker("PROJ", OTHER) is None
    found = tracker.find_by_marker("PROJ", MARKER)
    assert found is not None and found.key == key
