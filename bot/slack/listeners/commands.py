"""``/idea <text>``: posts the idea in the channel and files it; ``/idea help`` shows usage."""

from __future__ import annotations

from typing import Any

from bot.service.file_message import FileMessage
from bot.slack import blocks

USAGE = "Usage: /idea <your idea>: I post it here and file it as a Jira ticket."


def register(app: Any, file_message: FileMessage) -> None:
    """Registers the slash command on *app*."""

    @app.command(blocks.COMMAND)
    def on_command(ack: Any, command: dict[str, Any], respond: Any) -> None:
        ack()
        text = str(command.get("text") or "").strip()
        if not text or text.lower() in ("help", "-h", "--help", "?"):
            respond(text=USAGE, response_type="ephemeral")
            return
        result = file_message.submit_idea(
            str(command.get("channel_id", "")), str(command.get("user_id", "")), text
        )
        # Only refusals before anything was posted come back here; the rest was told in Slack.
        if result.status in ("denied", "unavailable"):
            reply, reply_blocks = (
                blocks.build_denied()
                if result.status == "denied"
                else blocks.build_filing_result(result)
            )
            respond(text=reply, blocks=reply_blocks, response_type="ephemeral")
