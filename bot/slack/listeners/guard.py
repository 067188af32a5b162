"""What keeps odd requests from becoming HTTP 500s or Slack retries.

Bolt reads parts of every payload while it matches listeners, and again to build the arguments
of middleware, listeners and even its error handler: an ``interactive_message`` without
``actions`` raises ``KeyError`` in ``slack_bolt.request.payload_utils.to_action`` at each of
those places, so the request ends as a 500 and the error handler cannot log it; Bolt's own
authorization middleware raises on an event that is ``null``. ``PayloadGuard`` is a
``Middleware`` object (its ``process`` takes no injected arguments, so it runs where function
middleware would already have raised) that the app installs as ``before_authorize``: after the
signature check, before anything reads the payload. It answers such requests 200 and drops them.

``register_fallbacks`` acknowledges, after every real listener, what the bot has no listener
for (an event subscribed in the app's settings but unused, a button of an older version, a
modal): Bolt would answer 404, and Slack retries events answered with an error.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Any

from slack_bolt.middleware import Middleware
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

logger = logging.getLogger(__name__)

_ANY = re.compile(r".")


def _str(value: Any) -> bool:
    return isinstance(value, str)


def _has_actions(body: dict[str, Any]) -> bool:
    actions = body.get("actions")
    return isinstance(actions, list) and bool(actions)


def _first_block_action_ok(body: dict[str, Any]) -> bool:
    if not _has_actions(body) or not isinstance(body["actions"][0], dict):
        return False
    first = body["actions"][0]
    return _str(first.get("action_id")) and (
        "block_id" not in first or first["block_id"] is None or _str(first["block_id"])
    )


def _view_ok(body: dict[str, Any]) -> bool:
    view = body.get("view")
    if not isinstance(view, dict) or not _str(view.get("callback_id")) or "type" not in view:
        return False
    # Bolt takes a submitted view of type "workflow_step" for a legacy step and reads its step.
    return view["type"] != "workflow_step" or "workflow_step" in body


def _event_ok(body: dict[str, Any]) -> bool:
    event = body.get("event")
    return isinstance(event, dict) and _str(event.get("type"))


# For each payload type Bolt dispatches: what it reads without checking, in its matchers and in
# ``build_required_kwargs`` (``to_action``, ``to_view``, ``to_step``, ``to_event``), which runs for
# every listener, middleware function and error handler.
_CHECKS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "event_callback": _event_ok,
    "block_actions": _first_block_action_ok,
    # Legacy attachment actions name their actions ("name"), they have no action_id.
    "interactive_message": lambda b: _str(b.get("callback_id")) and _has_actions(b),
    "shortcut": lambda b: _str(b.get("callback_id")),
    "message_action": lambda b: _str(b.get("callback_id")),
    "view_submission": _view_ok,
    "view_closed": _view_ok,
    "dialog_submission": lambda b: _str(b.get("callback_id")),
    "dialog_cancellation": lambda b: _str(b.get("callback_id")),
    "block_suggestion": lambda b: _str(b.get("action_id")),
    "dialog_suggestion": lambda b: _str(b.get("callback_id")),
    "workflow_step_edit": lambda b: _str(b.get("callback_id")) and "workflow_step" in b,
}


def well_formed(body: Any) -> bool:
    """False for a payload Bolt's matchers would raise on (checked per payload type)."""
    if not isinstance(body, dict):
        return False
    if "command" in body and not _str(body["command"]):
        return False
    # Bolt's self-event filter and its "unhandled request" warning read these as objects
    # whatever the payload type.
    for key in ("event", "view"):
        if key in body and not isinstance(body[key], dict):
            return False
    kind = body.get("type")
    if kind is not None and not _str(kind):
        return False
    check = _CHECKS.get(kind) if isinstance(kind, str) else None
    return check is None or check(body)


class PayloadGuard(Middleware):
    """Answers 200 to payloads Bolt cannot match safely, and drops them (logged, not run)."""

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],
    ) -> BoltResponse | None:
        if well_formed(req.body):
            return next()
        kind = req.body.get("type") if isinstance(req.body, dict) else type(req.body).__name__
        logger.warning("ignored a malformed %.40r payload from Slack", kind)
        return BoltResponse(status=200, body="")


def register_fallbacks(app: Any) -> None:
    """Acknowledges events, actions, shortcuts, views and commands no listener took. Must be
    registered after every other listener: Bolt runs the first one that matches."""

    @app.event(_ANY)
    def on_other_event(event: dict[str, Any]) -> None:
        logger.debug("no listener for event %.40r", event.get("type"))

    @app.action(_ANY)
    def on_other_action(ack: Callable[[], None]) -> None:
        ack()

    @app.shortcut(_ANY)
    def on_other_shortcut(ack: Callable[[], None]) -> None:
        ack()

    @app.view(_ANY)
    def on_other_view(ack: Callable[[], None]) -> None:
        ack()

    @app.view({"type": "view_closed", "callback_id": _ANY})
    def on_view_closed(ack: Callable[[], None]) -> None:
        ack()

    @app.command(_ANY)
    def on_other_command(ack: Callable[..., None]) -> None:
        ack(text="This command is not handled by this bot.", response_type="ephemeral")
