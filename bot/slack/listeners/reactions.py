"""The file emoji on a message in an idea channel files it."""

from __future__ import annotations

import logging
from typing import Any

from bot.slack.listeners.common import Deps, Message, file_message

logger = logging.getLogger(__name__)


def handle_reaction(event: dict[str, Any], deps: Deps, bot_user_id: str | None) -> None:
    """Files the reacted-to message when the reaction is FILE_EMOJI in an idea channel."""
    name = str(event.get("reaction", "")).split("::", 1)[0]
    item = event.get("item") or {}
    if name != deps.settings.file_emoji or item.get("type") != "message":
        return
    user = str(event.get("user", ""))
    if not user or user == bot_user_id:
        return
    channel, ts = str(item.get("channel", "")), str(item.get("ts", ""))
    if not channel or not ts or not deps.is_idea_channel(channel):
        return
    item_user = event.get("item_user")
    # The bot's own messages (triage replies, "Filed as …") are not ideas; the one exception is
    # the post /idea made on someone's behalf, which the store knows.
    if bot_user_id and item_user == bot_user_id:
        if deps.store.get_post(channel, ts) is None:
            return
        item_user = None  # the stored post names the real author
    file_message(deps, Message(channel=channel, ts=ts, user=item_user), user)


def register(app: Any, deps: Deps) -> None:
    """Registers the reaction listener on *app*."""

    @app.event("reaction_added")
    def on_reaction(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        if deps.first_delivery(body):
            handle_reaction(event, deps, context.get("bot_user_id"))

    # Removing the emoji does not unfile; acknowledged so Slack does not retry an unhandled
    # event (Bolt answers 404 to events without a listener).
    @app.event("reaction_removed")
    def on_reaction_removed() -> None:
        return None
