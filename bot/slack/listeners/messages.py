"""Message events: a person's new post, an edit (``message_changed``) or a deletion
(``message_deleted``, or a ``tombstone`` left above a thread) becomes one use-case call."""

from __future__ import annotations

from typing import Any

from bot.service.edit_post import EditPost, PostDeletion, PostEdit
from bot.service.receive_post import IncomingPost, ReceivePost
from bot.slack.listeners.payload import as_dict, event_id_of, slack_id, slack_ts, text_of

# Subtypes that are a person's message: plain, with a file, or a thread reply also sent to the
# channel. Joins, topic changes, bot posts and "/me" actions are not.
HUMAN_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})
PRIVATE_TYPES = frozenset({"group", "im", "mpim"})

Change = IncomingPost | PostEdit | PostDeletion


def parse_message(
    body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
) -> Change | None:
    """What a message event says happened, or None when it is nothing the bot acts on."""
    event = as_dict(event)
    subtype = _subtype(event)
    if subtype == "message_changed":
        return parse_edit(body, event, bot_user_id)
    if subtype == "message_deleted":
        return parse_deletion(body, event)
    return parse_post(body, event, bot_user_id)


def parse_post(
    body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
) -> IncomingPost | None:
    """The post in a message event, or None when it is not a person's new message."""
    event = as_dict(event)
    if _subtype(event) not in HUMAN_SUBTYPES or _by_bot(event, bot_user_id):
        return None
    user, channel = slack_id(event.get("user")), slack_id(event.get("channel"))
    ts = slack_ts(event.get("ts"))
    if not user or not channel or not ts:
        return None
    channel_type = event.get("channel_type")
    return IncomingPost(
        channel=channel,
        ts=ts,
        user=user,
        text=text_of(event.get("text")),
        thread_ts=slack_ts(event.get("thread_ts")),
        broadcast=_subtype(event) == "thread_broadcast",
        is_private=channel_type in PRIVATE_TYPES if isinstance(channel_type, str) else None,
        event_id=event_id_of(body),
    )


def parse_edit(
    body: dict[str, Any], event: dict[str, Any], bot_user_id: str | None
) -> PostEdit | PostDeletion | None:
    """A person's message with its new text, from ``message_changed``; a message deleted
    above its thread arrives this way too, as a ``tombstone``."""
    message = as_dict(event.get("message"))
    previous = as_dict(event.get("previous_message"))
    channel = slack_id(event.get("channel"))
    # The changed message's ts names it; some payloads carry it only on previous_message.
    ts = slack_ts(message.get("ts")) or slack_ts(previous.get("ts"))
    if not channel or not ts:
        return None
    thread_ts = slack_ts(message.get("thread_ts"))
    if _subtype(message) == "tombstone":
        return PostDeletion(
            channel=channel,
            ts=ts,
            user=slack_id(previous.get("user")),
            thread_ts=thread_ts,
            event_id=event_id_of(body),
        )
    # The bot's own messages change too (chat.update of a triage reply): never an edit to act on.
    if _subtype(message) not in HUMAN_SUBTYPES or _by_bot(message, bot_user_id):
        return None
    user = slack_id(message.get("user"))
    if not user:
        return None
    return PostEdit(
        channel=channel,
        ts=ts,
        user=user,
        text=text_of(message.get("text")),
        thread_ts=thread_ts,
        event_id=event_id_of(body),
    )


def parse_deletion(body: dict[str, Any], event: dict[str, Any]) -> PostDeletion | None:
    """The message a ``message_deleted`` event removed."""
    previous = as_dict(event.get("previous_message"))
    channel = slack_id(event.get("channel"))
    ts = slack_ts(event.get("deleted_ts")) or slack_ts(previous.get("ts"))
    if not channel or not ts:
        return None
    return PostDeletion(
        channel=channel,
        ts=ts,
        user=slack_id(previous.get("user")),
        thread_ts=slack_ts(previous.get("thread_ts")),
        event_id=event_id_of(body),
    )


def _subtype(message: dict[str, Any]) -> str | None:
    """The message's subtype; one that is not a string reads as an unknown subtype."""
    subtype = message.get("subtype")
    return subtype if subtype is None or isinstance(subtype, str) else "?"


def _by_bot(message: dict[str, Any], bot_user_id: str | None) -> bool:
    return bool(
        message.get("bot_id")
        or message.get("bot_profile")
        or (bot_user_id and message.get("user") == bot_user_id)
    )


def register(app: Any, receive_post: ReceivePost, edit_post: EditPost | None = None) -> None:
    """Registers the message listener on *app* (edits and deletions need *edit_post*)."""

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        change = parse_message(body, event, slack_id(context.get("bot_user_id")))
        if isinstance(change, IncomingPost):
            receive_post(change)
        elif isinstance(change, PostEdit) and edit_post is not None:
            edit_post.edited(change)
        elif isinstance(change, PostDeletion) and edit_post is not None:
            edit_post.deleted(change)
