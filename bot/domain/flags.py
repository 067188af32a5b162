"""Feature flags: which parts of the bot are switched on, per channel and per user.

The rule for each flag lives in a flag file (``FEATURE_FLAGS_FILE``, read by an adapter); the use
cases only ask :meth:`Flags.enabled`. Without a flag file every flag is on, which is how the bot
behaved before flags existed.
"""

from __future__ import annotations

from typing import Literal, NamedTuple, Protocol, get_args, runtime_checkable

FlagKey = Literal[
    "triage-replies",
    "llm-analysis",
    "duplicate-check",
    "filing",
    "comment-instead",
    "meeting-digest",
    "takeaway-digest",
    "jira-announcements",
    "votes-in-jira",
    "notes-ideas",
    "thread-comments",
]

# The keys the bot asks about, in the order ``doctor`` shows them. Each one is a boolean.
FLAG_KEYS: tuple[FlagKey, ...] = get_args(FlagKey)

# Flags that are off unless the flag file switches them on: features that change what reaches
# Jira without anybody asking (every later reply in a filed thread becoming a comment).
DEFAULT_OFF: frozenset[str] = frozenset({"thread-comments"})


def default_of(key: str) -> bool:
    """What *key* is when nothing says otherwise (no flag file, or the file leaves it out)."""
    return key not in DEFAULT_OFF


class Flags(Protocol):
    """Answers "is *key* on here?" for a channel and a user (both optional)."""

    def enabled(self, key: str, channel: str | None = None, user: str | None = None) -> bool:
        """True when the feature *key* is on for *channel* and *user*."""
        ...


class FlagState(NamedTuple):
    """What a flag evaluates to without a channel or user, and why (for operators)."""

    key: str
    value: bool
    reason: str  # e.g. "static", "targeted", "disabled in file: default", "not in file: default"


@runtime_checkable
class DescribedFlags(Protocol):
    """Flags that can say where their answers come from (``doctor`` prints this)."""

    source: str

    def describe(self) -> list[FlagState]:
        """The state of every key in :data:`FLAG_KEYS`."""
        ...


class AllOn:
    """The flags when no flag file is configured: everything on."""

    source = "no flag file (FEATURE_FLAGS_FILE unset): everything on but DEFAULT_OFF"

    def enabled(self, key: str, channel: str | None = None, user: str | None = None) -> bool:
        """True, except for the flags that are off by default."""
        return default_of(key)

    def describe(self) -> list[FlagState]:
        """Every key at its default."""
        return [FlagState(k, default_of(k), "default") for k in FLAG_KEYS]
