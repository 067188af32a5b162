"""The review form: "Review & file" / "Complete & file" open it, its selects re-target it, its
submission files, its external selects ask for options.

These are answered in the request itself, not through the inbox (``answered_at_once``): a
click's ``trigger_id`` opens a modal only within 3 seconds, and a submission's field errors
can only be given in its acknowledgement. Nothing durable is lost that way: the filing a
submission starts is the outbox's from its first step, and a form that did not open is
opened by clicking again.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.domain.models import MessageRef
from bot.service.review import ReviewFiling, ReviewForm
from bot.slack import review_blocks as rb
from bot.slack.listeners.payload import as_dict, nested_id, slack_id, slack_ts

logger = logging.getLogger(__name__)


def answered_at_once(body: Any) -> bool:
    """True for the review form's own payloads (see the module docstring)."""
    if not isinstance(body, dict):
        return False
    kind = body.get("type")
    if kind == "block_actions":
        actions = body.get("actions")
        first = actions[0] if isinstance(actions, list) and actions else None
        return isinstance(first, dict) and first.get("action_id") in rb.FORM_ACTIONS
    if kind in ("view_submission", "view_closed"):
        return as_dict(body.get("view")).get("callback_id") == rb.VIEW_REVIEW
    return kind == "block_suggestion" and body.get("action_id") == rb.ACTION_FIELD


def _button_target(action: dict[str, Any]) -> MessageRef | None:
    try:
        value = json.loads(action.get("value") or "")
    except (ValueError, TypeError, RecursionError):
        return None
    value = as_dict(value)
    channel, ts = slack_id(value.get("c")), slack_ts(value.get("ts"))
    return MessageRef(channel=channel, ts=ts) if channel and ts else None


def _client_call(what: str, fn: Any, **kwargs: Any) -> dict[str, Any] | None:
    try:
        return dict(fn(**kwargs).data)
    except Exception as exc:  # a modal that did not open is opened by clicking again
        logger.warning("could not %s the review form: %s", what, exc)
        return None


def register(app: Any, review: ReviewFiling) -> None:
    """Registers the review form's listeners on *app* (before the fallbacks)."""

    def open_form(ack: Any, body: dict[str, Any], action: dict[str, Any], client: Any) -> None:
        ack()
        ref = _button_target(as_dict(action))
        user = nested_id(body, "user")
        trigger = body.get("trigger_id")
        if ref is None or not user or not isinstance(trigger, str):
            return
        opened = _client_call(
            "open", client.views_open, trigger_id=trigger, view=rb.build_loading_view()
        )
        view_id = as_dict(as_dict(opened).get("view")).get("id")
        if not view_id:
            return
        form = review.form(ref, user)
        view = rb.build_review_view(form) if isinstance(form, ReviewForm) else None
        if view is None:
            assert not isinstance(form, ReviewForm)
            view = rb.build_result_view(form)
        _client_call("fill", client.views_update, view_id=view_id, view=view)

    app.action(rb.ACTION_REVIEW)(open_form)
    app.action(rb.ACTION_COMPLETE)(open_form)

    @app.action(rb.ACTION_RETARGET)
    def retarget(ack: Any, body: dict[str, Any], client: Any) -> None:
        ack()
        view = as_dict(body.get("view"))
        user = nested_id(body, "user")
        submitted = rb.parse_submission({"view": view}, user or "")
        if submitted is None or not user or not view.get("id"):
            return
        form = review.form(submitted.ref, user, submitted.project, submitted.issue_type)
        if not isinstance(form, ReviewForm):
            new = rb.build_result_view(form)
        else:
            new = rb.build_review_view(form, submitted.title, submitted.description)
        _client_call(
            "update", client.views_update, view_id=view["id"], hash=view.get("hash"), view=new
        )

    @app.view(rb.VIEW_REVIEW)
    def on_submit(ack: Any, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = nested_id(body, "user")
        submitted = rb.parse_submission(body, user or "") if user else None
        if submitted is None:
            ack()
            return
        outcome = review.submit(submitted)
        if outcome.errors:
            ack(response_action="errors", errors=rb.errors_for(outcome.errors, view))
        elif outcome.result is not None:
            ack(response_action="update", view=rb.build_result_view(outcome.result))
        else:
            ack()

    @app.view_closed(rb.VIEW_REVIEW)
    def on_closed(ack: Any) -> None:
        ack()

    @app.options(rb.ACTION_FIELD)
    def on_options(ack: Any, body: dict[str, Any]) -> None:
        target = rb.form_target(body.get("view"))
        block = body.get("block_id")
        if target is None or not isinstance(block, str) or not block.startswith("f:"):
            ack(options=[])
            return
        _, project, issue_type = target
        query = body.get("value") if isinstance(body.get("value"), str) else ""
        choices = review.suggest(project, issue_type, block[2:], str(query))
        ack(options=rb.options_answer(choices))
