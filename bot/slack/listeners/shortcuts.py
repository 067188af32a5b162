"""The message shortcut "File as Jira ticket": works in any channel the bot is in."""

from __future__ import annotations

from typing import Any

from bot.domain.models import MessageRef
from bot.service.file_message import FileMessage, FileRequest
from bot.slack import blocks


def parse_shortcut(body: dict[str, Any]) -> FileRequest | None:
    """The message the shortcut was used on, for the person who used it."""
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id", ""))
    user = str((body.get("user") or {}).get("id", ""))
    ts = str(message.get("ts") or body.get("message_ts") or "")
    if not channel or not ts or not user:
        return None
    return FileRequest(
        ref=MessageRef(channel=channel, ts=ts),
        requester=user,
        text=message.get("text"),
        author=message.get("user"),
        thread_ts=message.get("thread_ts"),
    )


def register(app: Any, file_message: FileMessage) -> None:
    """Registers the message shortcut on *app*."""

    @app.shortcut(blocks.SHORTCUT_FILE)
    def on_shortcut(ack: Any, body: dict[str, Any]) -> None:
        ack()
        req = parse_shortcut(body)
        if req is not None:
            file_message(req)
