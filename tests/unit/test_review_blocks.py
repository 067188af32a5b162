"""The review form's Block Kit: Slack's modal limits, inputs per field kind, payload parsing."""

from __future__ import annotations

import json

from bot.domain.issue_fields import Choice, CreateMeta, FieldSpec, FieldValue
from bot.domain.models import MessageRef
from bot.service.review import ReviewForm
from bot.slack import review_blocks as rb

REF = MessageRef(channel="C1", ts="1700000000.000100")


def _form(*fields: FieldSpec, values: dict[str, FieldValue] | None = None) -> ReviewForm:
    meta = CreateMeta(project="IDEA", issue_type="Story", fields=fields, issue_types=("Story",))
    return ReviewForm(
        ref=REF,
        project="IDEA",
        projects=("IDEA", "OPS"),
        issue_type="Story",
        title="t" * 400,
        description="d",
        labels=("a",),
        meta=meta,
        values=values or {},
    )


def _block(view: dict[str, object], block_id: str) -> dict[str, object]:
    blocks = view["blocks"]
    assert isinstance(blocks, list)
    return next(b for b in blocks if b.get("block_id") == block_id)


def test_each_kind_gets_its_input_and_limits_hold() -> None:
    many = tuple(Choice(id=str(i), name=f"Option {i} " + "x" * 90) for i in range(150))
    fields = (
        FieldSpec(id="cf_team", name="T" * 2500, kind="option", required=True, allowed=many),
        FieldSpec(id="cf_areas", name="Areas", kind="options", required=True, allowed=many[:3]),
        FieldSpec(id="duedate", name="Due", kind="date", required=True),
        FieldSpec(id="cf_points", name="Points", kind="number", required=True),
        FieldSpec(id="cf_notes", name="Notes", kind="paragraph", required=True),
        FieldSpec(id="assignee", name="Assignee", kind="user"),
        FieldSpec(id="cf_casc", name="Cascade", kind="unsupported", required=True),
    )
    values = {
        "cf_areas": FieldValue(kind="options", value=("1",)),
        "cf_points": FieldValue(kind="number", value=3.0),
    }
    view = rb.build_review_view(_form(*fields, values=values))
    assert len(view["blocks"]) <= rb.MAX_BLOCKS and len(view["title"]["text"]) <= 24
    team = _block(view, "f:cf_team")
    assert team["element"]["type"] == "external_select"  # 150 options: type-ahead
    assert len(team["label"]["text"]) <= 2000 and team["optional"] is False
    areas = _block(view, "f:cf_areas")["element"]
    assert areas["type"] == "multi_static_select"
    assert all(len(o["text"]["text"]) <= 75 for o in areas["options"])
    assert [o["value"] for o in areas["initial_options"]] == ["1"]
    assert _block(view, "f:duedate")["element"]["type"] == "datepicker"
    assert _block(view, "f:cf_points")["element"]["initial_value"] == "3"
    assert _block(view, "f:cf_notes")["element"]["multiline"] is True
    assert _block(view, "f:assignee")["element"]["type"] == "users_select"
    assert len(_block(view, "title")["element"]["initial_value"]) <= 255
    assert _block(view, "project")["element"]["initial_option"]["value"] == "IDEA"
    assert "Cascade" in json.dumps(view["blocks"])  # named, with how to give it a default
    assert json.loads(view["private_metadata"]) == {
        "c": "C1",
        "ts": "1700000000.000100",
        "p": "IDEA",
        "t": "Story",
    }


def test_a_huge_screen_stays_within_100_blocks() -> None:
    fields = tuple(
        FieldSpec(id=f"cf_{i}", name=f"F{i}", kind="text", required=True) for i in range(300)
    )
    view = rb.build_review_view(_form(*fields))
    assert len(view["blocks"]) == rb.MAX_BLOCKS


def test_submission_parsing_and_error_mapping() -> None:
    view = rb.build_review_view(_form(FieldSpec(id="cf_1", name="N", kind="number", required=True)))
    state = {
        "title": {rb.ACTION_FIELD: {"type": "plain_text_input", "value": "New"}},
        "project": {
            rb.ACTION_RETARGET: {"type": "static_select", "selected_option": {"value": "OPS"}}
        },
        "labels": {rb.ACTION_FIELD: {"type": "plain_text_input", "value": " a, ,b "}},
        "f:cf_1": {rb.ACTION_FIELD: {"type": "number_input", "value": "2.5"}},
        "f:cf_d": {rb.ACTION_FIELD: {"type": "datetimepicker", "selected_date_time": 0}},
    }
    inp = rb.parse_submission({"view": {**view, "state": {"values": state}}}, "U1")
    assert inp is not None
    assert (inp.project, inp.issue_type, inp.title) == ("OPS", "Story", "New")
    assert inp.labels == ("a", "b")
    assert inp.raw == {"cf_1": 2.5, "cf_d": "1970-01-01T00:00:00.000+0000"}
    errors = rb.errors_for({"cf_1": "bad", "summary": "empty", "customfield_9": "gone"}, view)
    assert errors == {"f:cf_1": "bad", "title": "empty; customfield_9: gone"}
    assert rb.parse_submission({"view": {"private_metadata": "{"}}, "U1") is None
