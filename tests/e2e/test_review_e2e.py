"""End to end: required fields and the review form, through the real Bolt app (signed
``block_actions`` and ``view_submission``), FakeSlack's views and FakeJira's create metadata."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.slack import blocks
from bot.slack import review_blocks as rb
from tests.fakes.jira_fields import TEAM, team_field
from tests.fakes.jira_server import FakeJira, FakeUser
from tests.fakes.wiring import Rig

ALICE = FakeUser("alice@example.com", "alice", "acc-alice", "Alice")


def _rig(tmp_path: Path, **settings: Any) -> Rig:
    jira = FakeJira(project="PROJ", fields=[team_field()], users=[ALICE])
    r = Rig(tmp_path, jira=jira, **settings)
    r.slack.add_user("UALICE", email="alice@example.com", name="Alice")
    r.slack.add_user("UBOB", email="bob@elsewhere.example", name="Bob")
    # A loaded test machine must not turn a prompt Jira into a "slow" one (tested on its own).
    assert r.bot.review is not None
    r.bot.review.budget = 60.0
    return r


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    r = _rig(tmp_path)
    yield r
    r.close()


def _text(call: dict[str, Any]) -> str:
    return json.dumps(call.get("blocks") or []) + str(call.get("text", ""))


def _post(rig: Rig, text: str = "Let people export the dashboard as a PDF") -> dict[str, Any]:
    ev = rig.message(text)
    rig.send_event(ev)
    rig.wait_idle()
    return ev


def _open_form(rig: Rig, action_id: str, ev: dict[str, Any]) -> dict[str, Any]:
    """Clicks *action_id* for the post; returns the form as FakeSlack holds it."""
    before = len(rig.slack.calls_to("views.update"))
    status, _ = rig.send_interactive(rig.button(action_id, {"c": ev["channel"], "ts": ev["ts"]}))
    assert status == 200
    updates = rig.slack.calls_to("views.update")
    assert len(updates) == before + 1
    view_id = updates[-1]["view_id"]
    return rig.slack.views[view_id]


def _block(view: dict[str, Any], block_id: str) -> dict[str, Any]:
    return next(b for b in view["blocks"] if b.get("block_id") == block_id)


def _submit(
    rig: Rig, view: dict[str, Any], title: str, team: str | None, user: str = "UBOB"
) -> dict[str, Any]:
    """Submits *view* with *title* and the Team option *team*; returns the JSON answer."""
    values: dict[str, Any] = {
        "title": {rb.ACTION_FIELD: {"type": "plain_text_input", "value": title}},
        "issuetype": {
            rb.ACTION_RETARGET: {"type": "static_select", "selected_option": {"value": "Story"}}
        },
        "description": {rb.ACTION_FIELD: {"type": "plain_text_input", "value": "As reviewed"}},
        "labels": {rb.ACTION_FIELD: {"type": "plain_text_input", "value": "export, pdf"}},
        f"f:{TEAM}": {
            rb.ACTION_FIELD: {
                "type": "static_select",
                "selected_option": {"value": team} if team else None,
            }
        },
    }
    payload = {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": user},
        "api_app_id": "A1",
        "trigger_id": f"{len(rig.slack.calls)}.9.9",
        "view": {**view, "state": {"values": values}},
    }
    status, body = rig.send_interactive(payload)
    assert status == 200
    return json.loads(body) if body else {}


def test_ticket_reaction_asks_for_team_and_the_form_files_once(rig: Rig) -> None:
    ev = _post(rig)
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"]))
    rig.wait_idle()
    assert rig.jira.issues == {}
    asks = [
        r for r in rig.slack.thread_replies("CIDEAS01", ev["ts"]) if "needs" in r.get("text", "")
    ]
    assert len(asks) == 1
    assert "PROJ needs *Team* before it can be filed" in asks[0]["text"]
    assert rb.ACTION_COMPLETE in _text(asks[0])

    view = _open_form(rig, rb.ACTION_COMPLETE, ev)
    team = _block(view, f"f:{TEAM}")
    assert team["optional"] is False
    assert [o["text"]["text"] for o in team["element"]["options"]] == [
        "Platform",
        "Mobile",
        "Web",
    ]
    assert _block(view, "title")["element"]["initial_value"].startswith("Let people export")

    answer = _submit(rig, view, "Export dashboards as PDF", "10101")
    assert answer.get("response_action") == "update"
    issues = list(rig.jira.issues.values())
    assert len(issues) == 1
    fields = issues[0]["fields"]
    assert fields["summary"] == "Export dashboards as PDF"
    assert fields[TEAM] == {"id": "10101"}
    assert {"export", "pdf"} <= set(fields["labels"])
    assert "As reviewed" in fields["description"]
    assert fields["reporter"]["name"] == "alice"  # the author's account, by e-mail
    filed = [r for r in rig.slack.thread_replies("CIDEAS01", ev["ts"]) if "Filed as" in r["text"]]
    assert len(filed) == 1 and "PROJ-1" in filed[0]["text"]

    again = _submit(rig, view, "Export dashboards as PDF", "10101")
    assert "Already filed" in json.dumps(again)
    rig.send_event(rig.reaction("CIDEAS01", ev["ts"], user="UCAROL"))
    rig.wait_idle()
    assert len(rig.jira.issues) == 1


def test_a_value_jira_refuses_shows_on_the_field_and_nothing_is_filed(rig: Rig) -> None:
    ev = _post(rig)
    reply = rig.slack.thread_replies("CIDEAS01", ev["ts"])[0]
    assert blocks.ACTION_REVIEW in _text(reply)  # "Review & file" beside the file button
    rig.jira.refused_values[(TEAM, "10102")] = "Option 'Web' is not valid for Team"
    view = _open_form(rig, rb.ACTION_REVIEW, ev)

    answer = _submit(rig, view, "Export as PDF", "10102")
    assert answer == {
        "response_action": "errors",
        "errors": {f"f:{TEAM}": "Option 'Web' is not valid for Team"},
    }
    assert rig.jira.issues == {}
    assert not any(
        "refused" in r.get("text", "") for r in rig.slack.thread_replies("CIDEAS01", ev["ts"])
    )
    # The create metadata was read again after the refusal: the next form asks Jira anew.
    metas = len(rig.jira.requests_to("/createmeta/PROJ/issuetypes/"))
    view = _open_form(rig, rb.ACTION_REVIEW, ev)
    assert len(rig.jira.requests_to("/createmeta/PROJ/issuetypes/")) > metas

    answer = _submit(rig, view, "Export as PDF", "10100")
    assert answer.get("response_action") == "update"
    assert [i["fields"][TEAM] for i in rig.jira.issues.values()] == [{"id": "10100"}]


def test_a_missing_required_field_is_an_inline_error(rig: Rig) -> None:
    ev = _post(rig)
    view = _open_form(rig, rb.ACTION_REVIEW, ev)
    answer = _submit(rig, view, "   ", None)
    assert answer["response_action"] == "errors"
    assert set(answer["errors"]) == {"title", f"f:{TEAM}"}
    assert rig.jira.issues == {}


def test_a_configured_default_files_straight_from_the_emoji(tmp_path: Path) -> None:
    r = _rig(tmp_path, jira_field_defaults="Team=Platform")
    try:
        ev = _post(r)
        r.send_event(r.reaction("CIDEAS01", ev["ts"]))
        r.wait_idle()
        issues = list(r.jira.issues.values())
        assert len(issues) == 1 and issues[0]["fields"][TEAM] == {"id": "10100"}
        view = _open_form(r, rb.ACTION_REVIEW, ev)
        assert "Already filed" in json.dumps(view["blocks"])
    finally:
        r.close()


def test_assignee_is_the_persons_account_or_named_in_the_description(rig: Rig) -> None:
    ev = _post(rig)
    view = _open_form(rig, rb.ACTION_REVIEW, ev)
    assert _block(view, "f:assignee")["element"]["type"] == "users_select"
    view = {**view}
    answer = _submit_with(
        rig, view, {"f:assignee": {"type": "users_select", "selected_user": "UBOB"}}
    )
    assert answer.get("response_action") == "update"
    fields = next(iter(rig.jira.issues.values()))["fields"]
    assert "assignee" not in fields or fields["assignee"] is None
    assert "Assignee asked for: Bob, who has no Jira account" in fields["description"]

    ev2 = _post(rig, "Show the export progress in the dashboard header")
    view = _open_form(rig, rb.ACTION_REVIEW, ev2)
    _submit_with(rig, view, {"f:assignee": {"type": "users_select", "selected_user": "UALICE"}})
    second = list(rig.jira.issues.values())[1]["fields"]
    assert second["assignee"]["name"] == "alice"


def _submit_with(rig: Rig, view: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    values = {
        "title": {rb.ACTION_FIELD: {"type": "plain_text_input", "value": "A title"}},
        f"f:{TEAM}": {
            rb.ACTION_FIELD: {"type": "static_select", "selected_option": {"value": "10100"}}
        },
        **{k: {rb.ACTION_FIELD: v} for k, v in extra.items()},
    }
    payload = {
        "type": "view_submission",
        "team": {"id": "T1"},
        "user": {"id": "UBOB"},
        "api_app_id": "A1",
        "view": {**view, "state": {"values": values}},
    }
    status, body = rig.send_interactive(payload)
    assert status == 200
    return json.loads(body) if body else {}


def test_changing_the_issue_type_rebuilds_the_form_keeping_the_typed_title(rig: Rig) -> None:
    ev = _post(rig)
    view = _open_form(rig, rb.ACTION_REVIEW, ev)
    state = {
        "title": {rb.ACTION_FIELD: {"type": "plain_text_input", "value": "Typed title"}},
        "issuetype": {
            rb.ACTION_RETARGET: {"type": "static_select", "selected_option": {"value": "Bug"}}
        },
    }
    payload = {
        "type": "block_actions",
        "user": {"id": "UBOB"},
        "team": {"id": "T1"},
        "api_app_id": "A1",
        "trigger_id": "77.7.7",
        "container": {"type": "view", "view_id": view["id"]},
        "view": {**view, "state": {"values": state}},
        "actions": [
            {
                "action_id": rb.ACTION_RETARGET,
                "block_id": "issuetype",
                "type": "static_select",
                "selected_option": {"value": "Bug"},
                "action_ts": "1",
            }
        ],
    }
    status, _ = rig.send_interactive(payload)
    assert status == 200
    rebuilt = rig.slack.views[view["id"]]
    assert _block(rebuilt, "issuetype")["element"]["initial_option"]["value"] == "Bug"
    assert _block(rebuilt, "title")["element"]["initial_value"] == "Typed title"
    assert json.loads(rebuilt["private_metadata"])["t"] == "Bug"


def test_a_reaction_racing_the_form_still_files_one_issue(tmp_path: Path) -> None:
    import threading

    r = _rig(tmp_path, jira_field_defaults="Team=Platform")
    try:
        ev = _post(r)
        view = _open_form(r, rb.ACTION_REVIEW, ev)
        r.jira.delay_next("/rest/api/2/issue", 0.5, method="POST")  # both inside the create
        answers: list[dict[str, Any]] = []
        submit = threading.Thread(
            target=lambda: answers.append(_submit(r, view, "From the form", "10101"))
        )
        submit.start()
        r.send_event(r.reaction("CIDEAS01", ev["ts"]))
        submit.join(30)
        r.wait_idle()
        assert len(r.jira.issues) == 1
        creates = [q for q in r.jira.requests_to("/issue", "POST") if q.path.endswith("/issue")]
        assert len(creates) == 1
        assert answers and answers[0].get("response_action") == "update"
    finally:
        r.close()


def test_a_jira_slower_than_the_budget_leaves_the_filing_to_the_thread(rig: Rig) -> None:
    assert rig.bot.review is not None
    rig.bot.review.budget = 0.05
    ev = _post(rig)
    view = _open_form(rig, rb.ACTION_REVIEW, ev)
    rig.jira.delay_next("/rest/api/2/issue", 1.0, method="POST")
    answer = _submit(rig, view, "Slow but filed", "10100")
    assert answer["response_action"] == "update"
    assert "Filing it now" in json.dumps(answer["view"])
    filed = rig.slack.wait_for("reactions.add", timeout=30)  # the mark follows "Filed as"
    assert filed and len(rig.jira.issues) == 1
    assert any("Filed as" in r["text"] for r in rig.slack.thread_replies("CIDEAS01", ev["ts"]))
