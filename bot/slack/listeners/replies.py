"""The message shortcut "Add to Jira ticket": a reply in a filed post's thread becomes a comment
on its issue (``bot.service.thread_comments``)."""

from __future__ import annotations

from typing import Any

from bot.domain.models import MessageRef
from bot.service.thread_comments import ReplyToAdd, ThreadComments
from bot.slack import blocks
from bot.slack.listeners.payload import as_dict, nested_id, slack_id, slack_ts


def parse_add_reply(body: dict[str, Any]) -> ReplyToAdd | None:
    """The reply the shortcut was used on, with its thread, for the person who used it."""
    body = as_dict(body)
    message = as_dict(body.get("message"))
    channel, user = nested_id(body, "channel"), nested_id(body, "user")
    ts = slack_ts(message.get("ts")) or slack_ts(body.get("message_ts"))
    if not channel or not ts or not user:
        return None
    text = message.get("text")
    return ReplyToAdd(
        ref=MessageRef(channel=channel, ts=ts),
        thread_ts=slack_ts(message.get("thread_ts")),
        requester=user,
        text=text if isinstance(text, str) else None,
        author=slack_id(message.get("user")),
    )


def register(app: Any, thread_comments: ThreadComments) -> None:
    """Registers the shortcut on *app*."""

    @app.shortcut(blocks.SHORTCUT_ADD_REPLY)
    def on_add_reply(ack: Any, body: dict[str, Any]) -> None:
        ack()
        req = parse_add_reply(body)
        if req is not None:
            thread_comments.add(req)
