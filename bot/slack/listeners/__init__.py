"""Thin Slack listeners: ack, parse the payload into a domain object, one use-case call.

What the bot then says is rendered by ``bot.slack.notifier`` (the Notifier port), so a listener
holds no rule and no Block Kit.
"""

from __future__ import annotations

from typing import Any

from bot.service.file_message import FileMessage
from bot.service.receive_post import ReceivePost
from bot.slack.listeners import actions, commands, messages, reactions, shortcuts


def register_listeners(app: Any, receive_post: ReceivePost, file_message: FileMessage) -> None:
    """Registers every listener on the Bolt *app*."""
    messages.register(app, receive_post)
    for module in (reactions, actions, shortcuts, commands):
        module.register(app, file_message)
