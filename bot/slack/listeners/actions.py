"""Buttons: "File as Jira ticket", "File anyway", "Comment on KEY instead"."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.slack import blocks
from bot.slack.listeners.common import Deps, Message, file_message

logger = logging.getLogger(__name__)


def _target(action: dict[str, Any]) -> dict[str, str]:
    try:
        value = json.loads(str(action.get("value") or "{}"))
    except ValueError:
        return {}
    return {k: str(v) for k, v in value.items()} if isinstance(value, dict) else {}


def handle_action(body: dict[str, Any], action: dict[str, Any], deps: Deps) -> None:
    """Runs the filing flow the button asks for, for the person who clicked."""
    target = _target(action)
    channel, ts = target.get("c"), target.get("ts")
    user = str((body.get("user") or {}).get("id", ""))
    if not channel or not ts or not user:
        logger.warning("button %s without a target", action.get("action_id"))
        return
    action_id = action.get("action_id")
    file_message(
        deps,
        Message(channel=channel, ts=ts),
        user,
        force=action_id in (blocks.ACTION_FILE_ANYWAY, blocks.ACTION_COMMENT),
        comment_on=target.get("k") if action_id == blocks.ACTION_COMMENT else None,
    )


def register(app: Any, deps: Deps) -> None:
    """Registers the button listeners on *app*."""
    for action_id in (blocks.ACTION_FILE, blocks.ACTION_FILE_ANYWAY, blocks.ACTION_COMMENT):

        @app.action(action_id)
        def on_action(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
            ack()
            handle_action(body, action, deps)
