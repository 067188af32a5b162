"""The message shortcut "Add to Jira ticket": a reply in a filed post's thread becomes a comment
on its issue (``bot.service.thread_comments``)."""

from __future__ import annotations

from typing import Any

from bot.domain.models import MessageRef
from bot.service.thread_comments import ReplyToAdd, ThreadComments
from bot.slack import blocks
from bot.slack.listeners.payload import message_shortcut


def parse_add_reply(body: dict[str, Any]) -> ReplyToAdd | None:
    """The reply the shortcut was used on, with its thread, for the person who used it."""
    msg = message_shortcut(body)
    if msg is None:
        return None
    return ReplyToAdd(
        ref=MessageRef(channel=msg.channel, ts=msg.ts),
        requester=msg.requester,
        text=msg.text,
        author=msg.author,
        thread_ts=msg.thread_ts,
    )


def register(app: Any, thread_comments: ThreadComments) -> None:
    """Registers the shortcut on *app*."""

    @app.shortcut(blocks.SHORTCUT_ADD_REPLY)
    def on_add_reply(ack: Any, body: dict[str, Any]) -> None:
        ack()
        req = parse_add_reply(body)
        if req is not None:
            thread_comments.add(req)
