"""``/idea <text>``: posts the idea in the channel and files it; ``/idea help`` shows usage."""

from __future__ import annotations

from typing import Any

from bot.service.file_message import FileMessage
from bot.slack import blocks
from bot.slack.listeners.payload import as_dict, slack_id

USAGE = "Usage: /idea <your idea>: I post it here and file it as a Jira ticket."
HELP_WORDS = frozenset({"", "help", "-h", "--help", "?"})


def is_help(raw: object) -> bool:
    """True when the command's text asks for the usage (or is empty)."""
    return (raw.strip() if isinstance(raw, str) else "").lower() in HELP_WORDS


def register(app: Any, file_message: FileMessage) -> None:
    """Registers the slash command on *app*."""

    @app.command(blocks.COMMAND)
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        command = as_dict(command)
        raw = command.get("text")
        text = raw.strip() if isinstance(raw, str) else ""
        channel, user = slack_id(command.get("channel_id")), slack_id(command.get("user_id"))
        if is_help(text) or not channel or not user:
            # The usage goes back in the acknowledgement itself: shown at once, to this person
            # only, and it needs no response_url.
            ack(text=USAGE, response_type="ephemeral")
            return
        ack()
        result = file_message.submit_idea(channel, user, text)
        # Only refusals before anything was posted come back here; the rest was told in Slack.
        if result.status in ("denied", "unavailable"):
            reply, reply_blocks = (
                blocks.build_denied()
                if result.status == "denied"
                else blocks.build_filing_result(result)
            )
            respond(text=reply, blocks=reply_blocks, response_type="ephemeral")
