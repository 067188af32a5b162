"""New messages: a person's post becomes an IncomingPost for the receive-post use case."""

from __future__ import annotations

from typing import Any

from bot.service.receive_post import IncomingPost, ReceivePost

# Subtypes that are still a person's new post; edits, deletes, joins and bot posts are not.
HUMAN_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
PRIVATE_TYPES = frozenset({"group", "im", "mpim"})


def parse_post(
    body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
) -> IncomingPost | None:
    """The post in a message event, or None when it is not a person's new message."""
    if event.get("subtype") not in HUMAN_SUBTYPES:
        return None
    if event.get("bot_id") or event.get("bot_profile"):
        return None
    user, channel, ts = event.get("user"), event.get("channel"), event.get("ts")
    if not user or not channel or not ts or (bot_user_id and user == bot_user_id):
        return None
    channel_type = event.get("channel_type")
    return IncomingPost(
        channel=str(channel),
        ts=str(ts),
        user=str(user),
        text=str(event.get("text") or ""),
        thread_ts=event.get("thread_ts"),
        is_private=channel_type in PRIVATE_TYPES if channel_type else None,
        event_id=body.get("event_id"),
    )


def register(app: Any, receive_post: ReceivePost) -> None:
    """Registers the message listener on *app*."""

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        post = parse_post(body, event, context.get("bot_user_id"))
        if post is not None:
            receive_post(post)
