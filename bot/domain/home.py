"""What the App Home shows one person: their ideas, the team's most wanted, recently filed.

Plain values; ``bot.service.app_home`` gathers them and ``bot.slack.home_blocks`` renders them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Ticket statuses that mean the idea is no longer open (compared case-insensitively).
DONE_STATUSES = frozenset({"done", "closed", "resolved", "won't do", "wont do", "cancelled"})


@dataclass(frozen=True)
class HomeIdea:
    """One post as a line of the Home tab."""

    channel: str
    ts: str
    title: str
    kind: str
    votes: int = 0
    key: str | None = None  # the ticket, once filed
    url: str | None = None
    status: str | None = None  # the ticket's status as last synced from Jira
    permalink: str | None = None

    @property
    def open(self) -> bool:
        """Not filed yet, or filed and its ticket not done."""
        return self.status is None or self.status.strip().lower() not in DONE_STATUSES


@dataclass(frozen=True)
class HomeView:
    """Everything one person's Home tab shows."""

    user: str
    mine: list[HomeIdea] = field(default_factory=list)
    mine_total: int = 0  # all of their ideas; ``mine`` holds the newest
    most_wanted: list[HomeIdea] = field(default_factory=list)  # open, this week, by votes
    recently_filed: list[HomeIdea] = field(default_factory=list)
    file_emoji: str = "ticket"
    channels: tuple[str, ...] = ()  # the idea channels' ids, for the how-to line
