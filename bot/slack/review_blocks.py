"""Block Kit for "Review & file": the modal, its answers, and the thread's "needs *Team*" note.

Pure builders and parsers. Modal limits kept here: 100 blocks, a title of 24 characters,
input labels of 2,000, option texts of 75, 100 options per static select (a field with more
uses an external select fed by ``block_suggestion``), 3,000 characters of private metadata.
Each field's input block is ``f:<field id>``, so Jira's ``errors`` map straight onto them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from bot.domain.filing import FilingResult
from bot.domain.issue_fields import Choice, FieldRaw, FieldSpec, FieldValue
from bot.domain.models import MessageRef
from bot.service.review import ReviewForm, ReviewInput
from bot.slack.blocks import build_filing_result, rejection_message
from bot.slack.mrkdwn import escape_mrkdwn, truncate

VIEW_REVIEW = "ideabot_review_form"
ACTION_REVIEW = "ideabot_review"  # "Review & file" on the triage reply
ACTION_COMPLETE = "ideabot_complete"  # "Complete & file" on the "needs *Team*" note
ACTION_RETARGET = "ideabot_review_retarget"  # another project or issue type in the form
ACTION_FIELD = "ideabot_field"  # every field input (external selects ask options by it)
FORM_ACTIONS = frozenset({ACTION_REVIEW, ACTION_COMPLETE, ACTION_RETARGET})

MAX_BLOCKS = 100
LABEL_MAX = 2000
OPTION_MAX = 75
OPTIONS_MAX = 100
TEXT_INPUT_MAX = 3000
SUMMARY_MAX = 255
_FIXED = {"summary": "title", "description": "description", "issuetype": "issuetype",
          "labels": "labels", "project": "project"}  # fmt: skip

View = dict[str, Any]
Block = dict[str, Any]


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text.strip() or "-", limit), "emoji": True}


def _option(c: Choice) -> dict[str, Any]:
    return {"text": _plain(c.name, OPTION_MAX), "value": c.id[:150]}


def _modal(title: str, blocks: list[Block], submit: str | None = None, meta: str = "") -> View:
    view: View = {
        "type": "modal",
        "callback_id": VIEW_REVIEW,
        "title": _plain(title, 24),
        "close": _plain("Close" if submit is None else "Cancel", 24),
        "blocks": blocks[:MAX_BLOCKS],
        "private_metadata": meta,
    }
    if submit is not None:
        view["submit"] = _plain(submit, 24)
    return view


def _section(text: str) -> Block:
    return {"type": "section", "text": {"type": "mrkdwn", "text": truncate(text, 3000)}}


def build_loading_view() -> View:
    """Shown at once (the click's trigger expires in 3 s) while the form is gathered."""
    return _modal("Review & file", [_section("Reading the post and Jira's create screen…")])


def build_result_view(result: FilingResult) -> View:
    """What the form turns into after a submission, or instead of it (already filed, denied)."""
    if result.status == "in_progress":
        text = "Filing it now; the thread will say when it is in Jira."
    elif result.status == "denied":
        text = "Only some people can file Jira tickets from Slack here."
    elif result.status == "rejected":
        text = ":warning: " + escape_mrkdwn(rejection_message(result))
    else:
        text, _ = build_filing_result(result)
        text = text or "Nothing to file."
    return _modal("Review & file", [_section(text)])


def block_for(field_id: str) -> str:
    """The input block of a field (Jira's field id, or summary/description/...)."""
    return _FIXED.get(field_id, f"f:{field_id}")


def build_review_view(form: ReviewForm, title: str | None = None, desc: str | None = None) -> View:
    """The form: project (when several), title, issue type, description, labels, then the
    create screen's required and offered fields. *title*/*desc* keep what was typed when the
    form is rebuilt for another project or type."""
    blocks: list[Block] = []
    if len(form.projects) > 1:
        blocks.append(
            _input(
                "project",
                "Project",
                _select_of(
                    [Choice(id=p, name=p) for p in form.projects], form.project, ACTION_RETARGET
                ),
                dispatch=True,
            )
        )
    blocks.append(
        _input(
            "title",
            "Title",
            {
                "type": "plain_text_input",
                "action_id": ACTION_FIELD,
                "max_length": SUMMARY_MAX,
                "initial_value": truncate(title if title is not None else form.title, SUMMARY_MAX),
            },
        )
    )
    types = form.meta.issue_types if form.meta and form.meta.issue_types else (form.issue_type,)
    if form.issue_type not in types:
        types = (form.issue_type, *types)
    blocks.append(
        _input(
            "issuetype",
            "Issue type",
            _select_of([Choice(id=t, name=t) for t in types], form.issue_type, ACTION_RETARGET),
            dispatch=True,
        )
    )
    description = desc if desc is not None else form.description
    desc_el: dict[str, Any] = {"type": "plain_text_input", "action_id": ACTION_FIELD,
                               "multiline": True, "max_length": TEXT_INPUT_MAX}  # fmt: skip
    if description.strip():
        desc_el["initial_value"] = truncate(description, TEXT_INPUT_MAX)
    blocks.append(_input("description", "Description", desc_el, optional=True))
    labels_el: dict[str, Any] = {"type": "plain_text_input", "action_id": ACTION_FIELD,
                                 "placeholder": _plain("comma, separated", 150)}  # fmt: skip
    if form.labels:
        labels_el["initial_value"] = truncate(", ".join(form.labels), TEXT_INPUT_MAX)
    blocks.append(_input("labels", "Labels", labels_el, optional=True))
    if form.problem:
        blocks.append(_context(form.problem))
    if form.meta is not None:
        room = MAX_BLOCKS - len(blocks)
        for spec in form.meta.asked()[:room]:
            blocks.append(_field_block(spec, form.values.get(spec.id)))
    meta = json.dumps(
        {"c": form.ref.channel, "ts": form.ref.ts, "p": form.project, "t": form.issue_type},
        separators=(",", ":"),
    )
    return _modal("Review & file", blocks, submit="File in Jira", meta=meta)


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": truncate(text, 3000)}]}


def _input(
    block_id: str, label: str, element: dict[str, Any], optional: bool = False,
    dispatch: bool = False,
) -> Block:  # fmt: skip
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": _plain(label, LABEL_MAX),
        "element": element,
        "optional": optional,
    }
    if dispatch:
        block["dispatch_action"] = True
    return block


def _select_of(choices: list[Choice], selected: str | None, action_id: str) -> dict[str, Any]:
    el: dict[str, Any] = {
        "type": "static_select",
        "action_id": action_id,
        "options": [_option(c) for c in choices[:OPTIONS_MAX]],
    }
    chosen = next((c for c in choices[:OPTIONS_MAX] if c.id == selected), None)
    if chosen is not None:
        el["initial_option"] = _option(chosen)
    return el


def _field_block(spec: FieldSpec, value: FieldValue | None) -> Block:
    if spec.kind == "unsupported":
        need = "Jira needs" if spec.required and not spec.has_default else "Jira has"
        return _context(
            f"{need} *{escape_mrkdwn(truncate(spec.name, 200))}*, which this form cannot set; "
            "an admin can give it a default (JIRA_FIELD_DEFAULTS)."
        )
    optional = not spec.required or spec.has_default
    return _input(f"f:{spec.id}", spec.name, _element(spec, value), optional=optional)


def _element(spec: FieldSpec, value: FieldValue | None) -> dict[str, Any]:
    el: dict[str, Any] = {"action_id": ACTION_FIELD}
    raw = value.value if value is not None else None
    if spec.kind in ("option", "options"):
        many = spec.kind == "options"
        ids = raw if isinstance(raw, tuple) else ((str(raw),) if raw is not None else ())
        chosen = [c for c in spec.allowed if c.id in ids]
        if len(spec.allowed) > OPTIONS_MAX:
            el["type"] = "multi_external_select" if many else "external_select"
            el["min_query_length"] = 0
        else:
            el["type"] = "multi_static_select" if many else "static_select"
            el["options"] = [_option(c) for c in spec.allowed] or [
                _option(Choice(id="-", name="-"))
            ]
        if chosen and many:
            el["initial_options"] = [_option(c) for c in chosen]
        elif chosen:
            el["initial_option"] = _option(chosen[0])
    elif spec.kind == "user":
        el["type"] = "users_select"
    elif spec.kind == "date":
        el["type"] = "datepicker"
        if isinstance(raw, str) and raw:
            el["initial_date"] = raw
    elif spec.kind == "datetime":
        el["type"] = "datetimepicker"
    elif spec.kind == "number":
        el.update(type="number_input", is_decimal_allowed=True)
        if isinstance(raw, float | int):
            el["initial_value"] = f"{raw:g}"
    else:  # text, paragraph, labels
        el["type"] = "plain_text_input"
        el["multiline"] = spec.kind == "paragraph"
        if raw is not None:
            el["initial_value"] = truncate(
                ", ".join(raw) if isinstance(raw, tuple) else str(raw), TEXT_INPUT_MAX
            )
    return el


def options_answer(choices: list[Choice]) -> list[dict[str, Any]]:
    """A ``block_suggestion`` answer (at most 100 options)."""
    return [_option(c) for c in choices[:OPTIONS_MAX]]


# ---------------------------------------------------------------------- reading the payloads


def form_target(view: Any) -> tuple[MessageRef, str, str] | None:
    """The post, project and issue type a form is about (its private metadata), or None."""
    try:
        meta = json.loads(view.get("private_metadata") or "") if isinstance(view, dict) else None
    except (ValueError, RecursionError):
        return None
    if not isinstance(meta, dict):
        return None
    c, ts, p, t = (meta.get(k) for k in ("c", "ts", "p", "t"))
    if not all(isinstance(x, str) and x for x in (c, ts, p, t)):
        return None
    return MessageRef(channel=str(c), ts=str(ts)), str(p), str(t)


def state_values(view: Any) -> dict[str, dict[str, Any]]:
    """The view's ``state.values`` as {block id: the element's state}."""
    values = ((view or {}).get("state") or {}).get("values") if isinstance(view, dict) else None
    out: dict[str, dict[str, Any]] = {}
    for block_id, actions in (values or {}).items() if isinstance(values, dict) else ():
        if isinstance(actions, dict):
            for state in actions.values():
                if isinstance(state, dict):
                    out[str(block_id)] = state
    return out


def element_value(state: dict[str, Any]) -> FieldRaw | None:
    """What one input holds: text, option id(s), a date, a number, a Slack user id."""
    kind = state.get("type")
    if kind in ("static_select", "external_select"):
        opt = state.get("selected_option")
        return str(opt["value"]) if isinstance(opt, dict) and opt.get("value") else None
    if kind in ("multi_static_select", "multi_external_select"):
        opts = state.get("selected_options") or []
        return tuple(str(o["value"]) for o in opts if isinstance(o, dict) and o.get("value"))
    if kind == "users_select":
        return state.get("selected_user") or None
    if kind == "datepicker":
        return state.get("selected_date") or None
    if kind == "datetimepicker":
        at = state.get("selected_date_time")
        if not isinstance(at, int | float):
            return None
        return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%S.000+0000")
    if kind == "number_input":
        try:
            return float(state["value"]) if state.get("value") not in (None, "") else None
        except (TypeError, ValueError):
            return str(state.get("value"))
    value = state.get("value")
    return value if isinstance(value, str) else None


def parse_submission(body: dict[str, Any], user: str) -> ReviewInput | None:
    """The submitted form as a ReviewInput, or None when it names no post."""
    view = body.get("view")
    target = form_target(view)
    if target is None:
        return None
    ref, project, issue_type = target
    states = state_values(view)

    def text(block: str) -> str:
        v = element_value(states.get(block, {}))
        return v if isinstance(v, str) else ""

    chosen_project = element_value(states.get("project", {}))
    chosen_type = element_value(states.get("issuetype", {}))
    labels = tuple(x.strip() for x in text("labels").split(",") if x.strip())
    raw = {
        block[2:]: element_value(state) for block, state in states.items() if block.startswith("f:")
    }
    return ReviewInput(
        ref=ref,
        requester=user,
        project=chosen_project if isinstance(chosen_project, str) else project,
        issue_type=chosen_type if isinstance(chosen_type, str) else issue_type,
        title=text("title"),
        description=text("description"),
        labels=labels,
        raw=raw,
    )


def errors_for(errors: dict[str, str], view: Any) -> dict[str, str]:
    """Field errors by input block of *view*; an error on a field the form does not show is
    put on the title, naming the field (Slack refuses errors for blocks that are not there)."""
    shown = set(state_values(view)) | {
        b.get("block_id") for b in (view or {}).get("blocks") or [] if isinstance(b, dict)
    }
    out: dict[str, str] = {}
    elsewhere: list[str] = []
    for fid, msg in sorted(errors.items()):
        block = block_for(fid)
        if block in shown:
            out[block] = msg
        else:
            elsewhere.append(f"{fid}: {msg}")
    if elsewhere:
        out["title"] = "; ".join([*([out["title"]] if "title" in out else []), *elsewhere])
    return {block: truncate(msg, 150) for block, msg in out.items()}


def build_needs_fields(
    project: str, names: list[str], channel: str, ts: str
) -> tuple[str, list[Block]]:
    """The thread note when the emoji path misses a required field, with "Complete & file"."""
    shown = ", ".join(f"*{escape_mrkdwn(truncate(n, 100))}*" for n in names[:10])
    key = escape_mrkdwn(truncate(project, 50))
    text = f"{key} needs {shown} before it can be filed."
    blocks = [_section(text), complete_actions(channel, ts)]
    return truncate(text, 3000), blocks


def complete_actions(channel: str, ts: str) -> Block:
    """The "Complete & file" button that opens the form for the post at *channel*/*ts*."""
    value = json.dumps({"c": channel, "ts": ts}, separators=(",", ":"))
    button = {
        "type": "button",
        "text": _plain("Complete & file", 75),
        "action_id": ACTION_COMPLETE,
        "value": value,
        "style": "primary",
    }
    return {"type": "actions", "elements": [button]}
