"""Buttons: "File as Jira ticket", "File anyway", "Comment on KEY instead", "Retry", and
"File idea N" of a notes reply."""

from __future__ import annotations

import json
import logging
from typing import Any

from bot.domain.models import MessageRef
from bot.service.file_idea import IdeaRequest
from bot.service.file_message import FileMessage, FileRequest
from bot.slack import blocks
from bot.slack.listeners.payload import as_dict, nested_id, slack_id, slack_ts

logger = logging.getLogger(__name__)


def parse_button(body: dict[str, Any], action: dict[str, Any]) -> FileRequest | None:
    """The filing request a button carries (its value names the message), or None."""
    action = as_dict(action)
    raw = action.get("value")
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        value = None
    target = {k: str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    channel, ts = slack_id(target.get("c")), slack_ts(target.get("ts"))
    user = nested_id(as_dict(body), "user")
    action_id = action.get("action_id")
    if not channel or not ts or not user:
        logger.warning("button %s without a target", action_id)
        return None
    return FileRequest(
        ref=MessageRef(channel=channel, ts=ts),
        requester=user,
        # Retry repeats a request the person made before: no duplicate question again.
        force=action_id in (blocks.ACTION_FILE_ANYWAY, blocks.ACTION_COMMENT, blocks.ACTION_RETRY),
        comment_on=target.get("k")
        if action_id in (blocks.ACTION_COMMENT, blocks.ACTION_RETRY)
        else None,
        # A key too long for the button's value was left out: the offered match is looked up.
        comment_on_offered=action_id == blocks.ACTION_COMMENT and not target.get("k"),
    )


def parse_idea_button(body: dict[str, Any], action: dict[str, Any]) -> IdeaRequest | None:
    """The request a "File idea N" button of a notes reply carries, or None."""
    raw = as_dict(action).get("value")
    try:
        value = json.loads(raw) if isinstance(raw, str) else None
    except (ValueError, RecursionError):
        value = None
    target = {k: str(v) for k, v in value.items()} if isinstance(value, dict) else {}
    channel, ts = slack_id(target.get("c")), slack_ts(target.get("ts"))
    index = target.get("i", "")
    user = nested_id(as_dict(body), "user")
    if not channel or not ts or not user or not index.isdigit() or len(index) > 2:
        logger.warning("idea button without a target")
        return None
    return IdeaRequest(ref=MessageRef(channel=channel, ts=ts), index=int(index), requester=user)


def register(app: Any, file_message: FileMessage) -> None:
    """Registers the button listeners on *app*."""
    for action_id in (
        blocks.ACTION_FILE,
        blocks.ACTION_FILE_ANYWAY,
        blocks.ACTION_COMMENT,
        blocks.ACTION_RETRY,
    ):

        @app.action(action_id)
        def on_action(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
            ack()
            req = parse_button(body, action)
            if req is not None:
                file_message(req)

    @app.action(blocks.ACTION_FILE_IDEA)
    def on_idea(ack: Any, body: dict[str, Any], action: dict[str, Any]) -> None:
        ack()
        req = parse_idea_button(body, action)
        if req is not None:
            file_message.file_idea(req)
