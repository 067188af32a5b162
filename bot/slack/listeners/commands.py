"""``/idea <text>``: posts the idea in the channel and files it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.domain.ports import StoredPost
from bot.domain.slack_text import escape_mrkdwn, truncate
from bot.slack import blocks
from bot.slack.listeners.common import Deps, Message, file_message

logger = logging.getLogger(__name__)

USAGE = "Usage: /idea <your idea>: I post it here and file it as a Jira ticket."


def handle_command(command: dict[str, Any], respond: Any, deps: Deps) -> None:
    """Posts the idea as a message (so it has a thread and a permalink), then files it."""
    text = str(command.get("text") or "").strip()
    user = str(command.get("user_id", ""))
    channel = str(command.get("channel_id", ""))
    if not text:
        respond(text=USAGE, response_type="ephemeral")
        return
    if not deps.may_file(user):
        t, b = blocks.build_denied()
        respond(text=t, blocks=b, response_type="ephemeral")
        return
    shown = truncate(escape_mrkdwn(text), 2800)
    try:
        quoted = shown.replace("\n", "\n>")
        ts = deps.chat.post(channel, f"<@{user}> shared an idea:\n>{quoted}")
    except SlackApiError as exc:
        logger.warning("/idea could not post in %s: %s", channel, exc.response.get("error"))
        respond(
            text="I cannot post in this channel; invite me first (/invite @ideabot).",
            response_type="ephemeral",
        )
        return
    deps.store.save_post(
        StoredPost(
            channel=channel,
            ts=ts,
            user=user,
            text=text,
            created=datetime.now(UTC),
            is_private=deps.chat.channel_is_private(channel),
        )
    )
    file_message(deps, Message(channel=channel, ts=ts, text=text, user=user), user, force=False)


def register(app: Any, deps: Deps) -> None:
    """Registers the slash command on *app*."""

    @app.command(blocks.COMMAND)
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        ack()
        handle_command(command, respond, deps)
