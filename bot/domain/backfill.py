"""History: the posts of a channel's past, as a Slack export holds them, for the backfill.

Plain values; ``bot.adapters.slack_export`` reads them from an export and
``bot.service.backfill`` triages (and may file) each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from bot.domain.models import ChatMessage, Person


class ExportError(Exception):
    """The export cannot be read (not a zip, not Slack's layout, unreadable JSON)."""


@dataclass(frozen=True)
class HistoryPost:
    """One top-level post of the past with what happened under it.

    *voters* are the people other than the author who reacted to it or replied in its thread,
    each once (a vote, as the live bot counts engagement). *replies* are the thread's messages
    the export holds (bounded by the reader), oldest first.
    """

    channel: str
    channel_name: str
    ts: str
    user: str
    text: str
    created: datetime
    replies: tuple[ChatMessage, ...] = ()
    voters: frozenset[str] = frozenset()
    is_private: bool = False

    @property
    def votes(self) -> int:
        return len(self.voters)


@dataclass
class ExportStats:
    """What reading an export came to, for the summary line."""

    channels: int = 0
    days: int = 0
    posts: int = 0
    orphan_replies: int = 0  # replies whose post was before --since or outside the window
    max_pending: int = 0  # the most posts held at once waiting for their threads (memory)
    bad_files: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class People:
    """Who the export's users are (users.json)."""

    people: dict[str, Person] = field(default_factory=dict)
    bots: frozenset[str] = frozenset()

    def name_of(self, user: str) -> str | None:
        person = self.people.get(user)
        return person.name if person is not None else None

    def person(self, user: str) -> Person:
        return self.people.get(user, Person())
