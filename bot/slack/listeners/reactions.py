"""Reactions: the file emoji on a message files it (the rule is in the use case)."""

from __future__ import annotations

from typing import Any

from bot.domain.models import MessageRef
from bot.service.file_message import FileMessage, Reaction


def parse_reaction(
    body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
) -> Reaction | None:
    """The reaction on a message in a reaction_added event, or None for other items."""
    item = event.get("item") or {}
    channel, ts = item.get("channel"), item.get("ts")
    if item.get("type") != "message" or not channel or not ts:
        return None
    user = str(event.get("user") or "")
    item_user = event.get("item_user")
    return Reaction(
        ref=MessageRef(channel=str(channel), ts=str(ts)),
        user=user,
        # "thumbsup::skin-tone-2" is still the thumbsup emoji
        emoji=str(event.get("reaction", "")).split("::", 1)[0],
        item_user=item_user,
        by_bot=bool(bot_user_id) and user == bot_user_id,
        on_bot_message=bool(bot_user_id) and item_user == bot_user_id,
        event_id=body.get("event_id"),
    )


def register(app: Any, file_message: FileMessage) -> None:
    """Registers the reaction listeners on *app*."""

    @app.event("reaction_added")
    def on_reaction(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        reaction = parse_reaction(body, event, context.get("bot_user_id"))
        if reaction is not None:
            file_message.on_reaction(reaction)

    # Removing the emoji does not unfile; acknowledged so Slack does not retry an unhandled
    # event (Bolt answers 404 to events without a listener).
    @app.event("reaction_removed")
    def on_reaction_removed() -> None:
        return None
