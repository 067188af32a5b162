"""Small fakes of our own ports for the digest tests: a recording Chat and a fixed Calendar.

(The store itself is the real ``SqlStore`` on SQLite/PostgreSQL.)
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from bot.domain.ports import CalendarDay, Meeting


@dataclass
class RecordingChat:
    """Records posts; ``fail_next`` posts raise; ``private`` lists the private channels."""

    private: set[str] = field(default_factory=set)
    posts: list[dict[str, Any]] = field(default_factory=list)
    fail_next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("chat is down")
            self.posts.append({"channel": channel, "text": text, "blocks": blocks})
            return f"1700000000.{len(self.posts):06d}"

    def channel_is_private(self, channel: str) -> bool:
        return channel in self.private


@dataclass
class FixedCalendar:
    """The same meetings (and failed feeds) for every day asked."""

    meetings: list[Meeting] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    asked: list[date] = field(default_factory=list)

    def meetings_on(self, day: date) -> CalendarDay:
        self.asked.append(day)
        return CalendarDay(
            meetings=[m for m in self.meetings if m.start.date() == day or m.all_day],
            failed_feeds=list(self.failed),
        )
