"""The message shortcut "File as Jira ticket": works in any channel the bot is in."""

from __future__ import annotations

from typing import Any

from bot.domain.models import MessageRef
from bot.service.file_message import FileMessage, FileRequest
from bot.slack import blocks
from bot.slack.listeners.payload import message_shortcut


def parse_shortcut(body: dict[str, Any]) -> FileRequest | None:
    """The message the shortcut was used on, for the person who used it. The payload carries
    the message as it is now (an edited text included)."""
    msg = message_shortcut(body)
    if msg is None:
        return None
    return FileRequest(
        ref=MessageRef(channel=msg.channel, ts=msg.ts),
        requester=msg.requester,
        text=msg.text,
        author=msg.author,
        thread_ts=msg.thread_ts,
    )


def register(app: Any, file_message: FileMessage) -> None:
    """Registers the message shortcut on *app*."""

    @app.shortcut(blocks.SHORTCUT_FILE)
    def on_shortcut(ack: Any, body: dict[str, Any]) -> None:
        ack()
        req = parse_shortcut(body)
        if req is not None:
            file_message(req)
