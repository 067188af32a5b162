"""Reactions: each one counts once per person on a stored post (engagement), and the file emoji
on a message files it (the rules are in the use cases)."""

from __future__ import annotations

from typing import Any

from bot.domain.models import MessageRef
from bot.service.engagement import RecordEngagement
from bot.service.file_message import FileMessage, Reaction
from bot.slack.listeners.payload import as_dict, event_id_of, slack_id, slack_ts


def parse_reaction(
    body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
) -> Reaction | None:
    """The reaction on a message in a reaction_added/removed event, or None for other items
    (files, file comments)."""
    event = as_dict(event)
    item = as_dict(event.get("item"))
    channel, ts = slack_id(item.get("channel")), slack_ts(item.get("ts"))
    emoji = event.get("reaction")
    if item.get("type") != "message" or not channel or not ts or not isinstance(emoji, str):
        return None
    user = slack_id(event.get("user")) or ""
    item_user = slack_id(event.get("item_user"))
    return Reaction(
        ref=MessageRef(channel=channel, ts=ts),
        user=user,
        # "thumbsup::skin-tone-2" is still the thumbsup emoji
        emoji=emoji.split("::", 1)[0][:100],
        item_user=item_user,
        by_bot=bool(bot_user_id) and user == bot_user_id,
        on_bot_message=bool(bot_user_id) and item_user == bot_user_id,
        event_id=event_id_of(body),
    )


def register(
    app: Any, file_message: FileMessage, engagement: RecordEngagement | None = None
) -> None:
    """Registers the reaction listeners on *app* (engagement is counted with *engagement*)."""

    @app.event("reaction_added")
    def on_reaction(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        reaction = parse_reaction(body, event, slack_id(context.get("bot_user_id")))
        if reaction is None:
            return
        # One gesture, two independent consequences: a vote counted, and maybe a filing.
        if engagement is not None:
            engagement.reaction(reaction, added=True)
        file_message.on_reaction(reaction)

    # Removing the file emoji does not unfile; the vote it was goes.
    @app.event("reaction_removed")
    def on_reaction_removed(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        reaction = parse_reaction(body, event, slack_id(context.get("bot_user_id")))
        if reaction is not None and engagement is not None:
            engagement.reaction(reaction, added=False)
