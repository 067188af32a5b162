"""The message shortcut "File as Jira ticket": works in any channel the bot is in."""

from __future__ import annotations

import logging
from typing import Any

from bot.slack import blocks
from bot.slack.listeners.common import Deps, Message, file_message

logger = logging.getLogger(__name__)


def handle_shortcut(body: dict[str, Any], deps: Deps) -> None:
    """Files the message the shortcut was used on, for the person who used it."""
    message = body.get("message") or {}
    channel = str((body.get("channel") or {}).get("id", ""))
    user = str((body.get("user") or {}).get("id", ""))
    ts = str(message.get("ts") or body.get("message_ts") or "")
    if not channel or not ts or not user:
        return
    file_message(
        deps,
        Message(
            channel=channel,
            ts=ts,
            text=message.get("text"),
            user=message.get("user"),
            thread_ts=message.get("thread_ts"),
        ),
        user,
    )


def register(app: Any, deps: Deps) -> None:
    """Registers the message shortcut on *app*."""

    @app.shortcut(blocks.SHORTCUT_FILE)
    def on_shortcut(ack: Any, body: dict[str, Any]) -> None:
        ack()
        handle_shortcut(body, deps)
