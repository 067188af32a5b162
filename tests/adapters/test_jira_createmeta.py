"""Create metadata through the real `jira` client against FakeJira: Cloud's and Data Center's
paged shapes and the older ``createmeta?expand=``; field values written as Jira wants them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.adapters.jira_createmeta import field_kind, jira_value
from bot.adapters.jira_tracker import JiraTracker
from bot.domain.issue_fields import FieldValue
from bot.domain.models import IssueText, NewIssue
from bot.domain.ports import TrackerRejected
from tests.fakes.jira_fields import TEAM, FakeField, team_field
from tests.fakes.jira_server import FakeJira, FakeUser

DUE = FakeField("duedate", "Due date", "date", required=True)
POINTS = FakeField("customfield_10020", "Story points", "number")
AREAS = FakeField(
    "customfield_10030", "Areas", "array:option", allowed=[("1", "Web"), ("2", "Mobile")]
)


def _tracker(fake: FakeJira) -> JiraTracker:
    if fake.cloud:
        return JiraTracker(fake.base_url, "PROJ", fake.token, email=fake.email, timeout=5.0)
    return JiraTracker(fake.base_url, "PROJ", fake.token, timeout=5.0, deployment="datacenter")


@pytest.fixture(params=["cloud", "datacenter", "legacy"])
def fake(request: pytest.FixtureRequest) -> Iterator[FakeJira]:
    # A page of 3 makes both listings (5 types, 13 fields) take several pages.
    with FakeJira(
        cloud=request.param == "cloud",
        legacy_createmeta=request.param == "legacy",
        createmeta_page=3,
        fields=[team_field(), DUE, POINTS, AREAS],
        users=[FakeUser("alice@example.com", "alice", "acc-alice", "Alice")],
    ) as f:
        yield f


def test_create_meta_reads_every_page_in_each_shape(fake: FakeJira) -> None:
    meta = _tracker(fake).create_meta("PROJ", "story")
    assert meta.issue_type == "Story"
    assert set(meta.issue_types) == {"Bug", "Story", "Task", "Epic"}
    team = meta.field("Team")
    assert team is not None and team.id == TEAM and team.kind == "option" and team.required
    assert [c.name for c in team.allowed] == ["Platform", "Mobile", "Web"]
    assert meta.field("duedate") is not None and meta.field("duedate").kind == "date"  # type: ignore[union-attr]
    assert meta.field("Areas").kind == "options"  # type: ignore[union-attr]
    assert meta.field("priority").has_default  # type: ignore[union-attr]
    # Required without a default, and not the bot's own: what the emoji path must ask for.
    assert [f.name for f in meta.missing({})] == ["Team", "Due date"]
    assert [f.id for f in meta.asked()] == [TEAM, "duedate", "priority", "components", "assignee"]
    if not fake.legacy_createmeta:
        assert len(fake.requests_to("/issuetypes/10002")) >= 5  # 13 fields, 3 a page


def test_an_issue_type_the_project_lacks_is_refused(fake: FakeJira) -> None:
    with pytest.raises(TrackerRejected) as err:
        _tracker(fake).create_meta("PROJ", "Incident")
    assert "issuetype" in err.value.fields


def test_field_values_reach_jira_in_its_format(fake: FakeJira) -> None:
    tracker = _tracker(fake)
    issue = NewIssue(
        project="PROJ",
        summary="Export as PDF",
        body=IssueText(summary="s", original="o"),
        issue_type="Story",
        fields={
            TEAM: FieldValue(kind="option", value="10101", label="Mobile"),
            "duedate": FieldValue(kind="date", value="2026-12-24"),
            POINTS.id: FieldValue(kind="number", value=3.0),
            AREAS.id: FieldValue(kind="options", value=("1", "2")),
        },
        assignee_email="alice@example.com",
    )
    key = tracker.create_issue(issue).key
    f = fake.issues[key]["fields"]
    assert f[TEAM] == {"id": "10101"}
    assert f["duedate"] == "2026-12-24"
    assert f[POINTS.id] == 3.0
    assert f[AREAS.id] == [{"id": "1"}, {"id": "2"}]
    who = "accountId" if fake.cloud else "name"
    assert f["assignee"][who] == ("acc-alice" if fake.cloud else "alice")


def test_a_refused_value_names_the_field(fake: FakeJira) -> None:
    issue = NewIssue(
        project="PROJ",
        summary="x",
        body=IssueText(),
        issue_type="Story",
        fields={
            TEAM: FieldValue(kind="option", value="99999"),
            "duedate": FieldValue(kind="date", value="2026-12-24"),
        },
    )
    with pytest.raises(TrackerRejected) as err:
        _tracker(fake).create_issue(issue)
    assert set(err.value.fields) == {TEAM}
    assert fake.issues == {}


def test_field_kinds_and_values() -> None:
    assert field_kind({"type": "array", "items": "component"}) == "options"
    assert field_kind({"type": "string", "custom": "x:textarea"}) == "paragraph"
    assert field_kind({"type": "option-with-child"}) == "unsupported"
    nobody = jira_value(FieldValue(kind="user", value="x@example.com"), lambda e: None)
    assert nobody is None  # never filed as a person without an account
    assert jira_value(FieldValue(kind="labels", value=("a", "b")), lambda e: None) == ["a", "b"]
