"""The message shortcut "File as Jira ticket": works in any channel the bot is in."""

from __future__ import annotations

from typing import Any

from bot.domain.models import MessageRef
from bot.service.file_message import FileMessage, FileRequest
from bot.slack import blocks
from bot.slack.listeners.payload import as_dict, nested_id, slack_id, slack_ts


def parse_shortcut(body: dict[str, Any]) -> FileRequest | None:
    """The message the shortcut was used on, for the person who used it. The payload carries
    the message as it is now (an edited text included)."""
    body = as_dict(body)
    message = as_dict(body.get("message"))
    channel, user = nested_id(body, "channel"), nested_id(body, "user")
    ts = slack_ts(message.get("ts")) or slack_ts(body.get("message_ts"))
    if not channel or not ts or not user:
        return None
    text = message.get("text")
    return FileRequest(
        ref=MessageRef(channel=channel, ts=ts),
        requester=user,
        text=text if isinstance(text, str) else None,
        author=slack_id(message.get("user")),
        thread_ts=slack_ts(message.get("thread_ts")),
    )


def register(app: Any, file_message: FileMessage) -> None:
    """Registers the message shortcut on *app*."""

    @app.shortcut(blocks.SHORTCUT_FILE)
    def on_shortcut(ack: Any, body: dict[str, Any]) -> None:
        ack()
        req = parse_shortcut(body)
        if req is not None:
            file_message(req)
