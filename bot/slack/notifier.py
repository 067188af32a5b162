"""Tells the people in a thread what happened to a filing (builders from ``blocks``)."""

from __future__ import annotations

from typing import Any

from bot.domain.filing import FilingResult
from bot.domain.ports import Chat
from bot.slack import blocks


class SlackFilingNotifier:
    """Reports filing outcomes into the message's thread (implements ``FilingNotifier``)."""

    def __init__(self, chat: Chat, filed_emoji: str) -> None:
        self.chat = chat
        self.filed_emoji = filed_emoji

    def filing_done(self, payload: dict[str, Any], result: FilingResult) -> None:
        """Posts the outcome of a filing attempt into the message's own thread."""
        channel = str(payload["channel"])
        thread = str(payload.get("reply_ts") or payload["ts"])
        text, blks = blocks.build_filing_result(result)
        if not text:
            return
        self.chat.post(channel, text, blks, thread_ts=thread)
        if result.status in ("filed", "commented"):
            self.chat.react(channel, str(payload["ts"]), self.filed_emoji)
