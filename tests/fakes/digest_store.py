"""A fixed Calendar for the digest tests (the chat fake is ``tests.fakes.chat``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

from bot.domain.ports import CalendarDay, Meeting


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
