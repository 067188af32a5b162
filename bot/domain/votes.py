"""Votes: who wants an idea. A vote is a reaction with one of the vote emoji (``VOTE_EMOJI``) or
a reply in the post's thread, by someone other than the author and not a bot; each person counts
once however many ways they voted. The store keeps the records (``Engagement``) and derives each
post's ``votes``; this module holds the rules and the query port.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # ports imports this module (Store includes Votes)
    from bot.domain.ports import StoredPost

DEFAULT_VOTE_EMOJI = ("+1",)
# Slack names a toned thumbs-up "+1::skin-tone-3": the same vote.
_SKIN_TONE = "::skin-tone-"


def is_vote_emoji(emoji: str, vote_emoji: Sequence[str] = DEFAULT_VOTE_EMOJI) -> bool:
    """True when the reaction *emoji* (Slack's name, without colons) is one of *vote_emoji*,
    whatever its skin tone. ``thumbsup`` and ``+1`` are the same emoji in Slack's names."""
    base = emoji.strip(":").split(_SKIN_TONE, 1)[0]
    wanted = {e.strip(":") for e in vote_emoji}
    if wanted & {"+1", "thumbsup"}:
        wanted |= {"+1", "thumbsup"}
    return base in wanted


class Votes(Protocol):
    """The most wanted ideas, for the takeaway digest and App Home."""

    def top_voted(
        self,
        since: datetime,
        limit: int = 10,
        *,
        until: datetime | None = None,
        channels: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
    ) -> list[StoredPost]:
        """Open posts created in [*since*, *until*) with at least one vote, most votes first
        (ties: the older first), at most *limit*; only in *channels* / of *kinds* when given.

        Open: not deleted, and not filed as an issue the tracker reports resolved (as the last
        announced state of that issue has it, see ``IssueWatch``).
        """
        ...
