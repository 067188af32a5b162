"""Notes with many ideas: when a post counts as notes, and how each of its ideas is filed once.

A long post (meeting notes, a retro, a conference write-up) can hold several actionable ideas.
An :class:`IdeaExtractor` (offline or LLM) lists them; a post with at least
``NotesPolicy.min_ideas`` of them and at least ``min_chars`` characters is answered with one
reply listing each idea, and each is filed on its own.

Each idea is filed through the same exactly-once engine as a whole post (``service.filing``),
under its own filing id: the message ts with the idea's index appended (:func:`idea_ts`), so
the claim, the outbox key and the Jira marker all name the idea within the message.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Protocol

from bot.domain.models import Idea, Post

# The most ideas one reply offers (each is a section, a context line and a button: well under
# Slack's 50 blocks) and the most an extractor may return.
MAX_IDEAS = 5
_IDEA_TS = re.compile(r"(\d{1,12}\.\d{1,9})~(\d{1,2})")


@dataclass(frozen=True)
class NotesPolicy:
    """Which posts are notes: at least *min_chars* characters and *min_ideas* ideas found.

    Shorter posts, and posts with fewer ideas, are triaged as one idea exactly as before.
    """

    min_chars: int = 400
    max_ideas: int = MAX_IDEAS
    min_ideas: int = 2

    def long_enough(self, text: str) -> bool:
        """True when *text* is long enough to be read for several ideas."""
        return len(text.strip()) >= self.min_chars


class IdeaExtractor(Protocol):
    """Lists the actionable ideas in a post, best first, at most *limit* (similar tickets are
    looked up afterwards, by the caller)."""

    name: str

    def extract(self, post: Post, limit: int = MAX_IDEAS) -> list[Idea]: ...


def idea_ts(ts: str, index: int) -> str:
    """The filing id of idea *index* (0-based) of message *ts*: ``"1700000000.000100~2"``.

    Used wherever a message's ts names a filing (claims, outbox keys, markers); it fits the
    store's 40-character columns and can never be mistaken for a real Slack ts.
    """
    return f"{ts}~{index}"


def split_idea_ts(ts: str) -> tuple[str, int | None]:
    """The message ts and idea index of a filing id; ``(ts, None)`` for a whole message."""
    m = _IDEA_TS.fullmatch(ts)
    return (m.group(1), int(m.group(2))) if m else (ts, None)


def message_ts(ts: str) -> str:
    """The Slack message a filing id belongs to (the id itself for a whole message)."""
    return split_idea_ts(ts)[0]
