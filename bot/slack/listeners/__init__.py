"""Thin Slack listeners: ack, parse the payload into a domain object, one use-case call.

What the bot then says is rendered by ``bot.slack.notifier`` (the Notifier port), so a listener
holds no rule and no Block Kit.
"""

from __future__ import annotations

from typing import Any

from bot.service.app_home import AppHome
from bot.service.edit_post import EditPost
from bot.service.engagement import RecordEngagement
from bot.service.file_message import FileMessage
from bot.service.receive_post import ReceivePost
from bot.service.thread_comments import ThreadComments
from bot.slack.listeners import (
    actions,
    commands,
    guard,
    home,
    messages,
    reactions,
    replies,
    shortcuts,
)


def register_listeners(
    app: Any,
    receive_post: ReceivePost,
    file_message: FileMessage,
    edit_post: EditPost | None = None,
    engagement: RecordEngagement | None = None,
    *,
    thread_comments: ThreadComments | None = None,
    app_home: AppHome | None = None,
) -> None:
    """Registers every listener on the Bolt *app*, and last the fallbacks that acknowledge what
    no listener takes. (The app installs ``guard.PayloadGuard`` itself, as ``before_authorize``.)"""
    messages.register(app, receive_post, edit_post)
    reactions.register(app, file_message, engagement)
    for module in (actions, shortcuts, commands):
        module.register(app, file_message)
    if thread_comments is not None:
        replies.register(app, thread_comments)
    if app_home is not None:
        home.register(app, app_home)
    guard.register_fallbacks(app)
