"""Jira back into Slack: what changed on an issue filed from a post, and what to say about it.

The store keeps, per issue key, the state last announced in the post's thread. An announcement
compares that with the issue as the tracker has it now, so a burst of changes becomes one message
and a change reported twice (by the sync and by a webhook) is announced once. The comparison is
made under a fenced claim on the key (``IssueWatch``), so two replicas never both announce.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

AnnounceField = Literal["status", "assignee", "resolution"]
ANNOUNCE_FIELDS: tuple[AnnounceField, ...] = ("status", "assignee", "resolution")
# Jira's status categories: "new" (To Do), "indeterminate" (In Progress), "done".
FRESH_CATEGORY = "new"


@dataclass(frozen=True)
class IssueState:
    """The announced fields of one issue (names as people read them, not ids)."""

    key: str
    status: str | None = None
    status_category: str | None = None
    assignee: str | None = None  # display name; None: unassigned
    resolution: str | None = None  # None: unresolved
    updated: datetime | None = None

    @property
    def resolved(self) -> bool:
        return bool(self.resolution)

    def fresh(self) -> IssueState:
        """How the issue looked when it was filed, as far as we can tell without having looked
        then: its status if still in the "new" category, nobody assigned, unresolved."""
        new = self.status_category in (None, FRESH_CATEGORY)
        return IssueState(
            key=self.key,
            status=self.status if new else None,
            status_category=FRESH_CATEGORY,
        )


@dataclass(frozen=True)
class IssueChange:
    """What to announce: the fields that moved from *before* to *after* (of the wanted ones)."""

    before: IssueState
    after: IssueState
    fields: tuple[AnnounceField, ...]

    @property
    def resolved_now(self) -> bool:
        return "resolution" in self.fields and self.after.resolved


def diff(before: IssueState, after: IssueState, wanted: Iterable[str]) -> IssueChange | None:
    """The change worth a message, or None when none of the *wanted* fields moved."""
    wanted = set(wanted)
    moved = tuple(
        f for f in ANNOUNCE_FIELDS if f in wanted and _value(before, f) != _value(after, f)
    )
    return IssueChange(before, after, moved) if moved else None


def _value(state: IssueState, name: AnnounceField) -> str:
    # Case and spacing differences are not changes people care about.
    return " ".join((getattr(state, name) or "").split()).casefold()


def parse_fields(raw: str | Sequence[str]) -> tuple[AnnounceField, ...]:
    """``"status,assignee"`` -> the announce fields; raises ValueError naming an unknown one."""
    names = [n.strip().lower() for n in (raw.split(",") if isinstance(raw, str) else raw)]
    known: dict[str, AnnounceField] = {f: f for f in ANNOUNCE_FIELDS}
    out: list[AnnounceField] = []
    for name in filter(None, names):
        field = known.get(name)
        if field is None:
            raise ValueError(f"unknown field {name!r} (choose from {', '.join(ANNOUNCE_FIELDS)})")
        if field not in out:
            out.append(field)
    return tuple(out)


@dataclass(frozen=True)
class FiledPost:
    """The Slack post an issue was filed from, and when it was filed."""

    key: str
    channel: str
    ts: str
    filed_at: datetime | None = None


@dataclass(frozen=True)
class IssueClaim:
    """A fenced claim on announcing one issue's changes, with what was announced last (None:
    nothing was ever recorded for the issue)."""

    key: str
    token: int
    announced: IssueState | None


FinishOutcome = Literal["done", "again", "lost"]


class IssueWatch(Protocol):
    """Per filed issue: the state last announced, under a fenced claim (the store)."""

    def filed_posts(self, keys: Sequence[str]) -> dict[str, FiledPost]:
        """Of *keys*, the issues filed from a post (filing state "filed"), by key."""
        ...

    def claim_issue(self, key: str, until: datetime, now: datetime) -> IssueClaim | None:
        """Takes the claim on *key* until *until* unless a claim unexpired at *now* holds it;
        then marks the key "changed again" for the holder and returns None."""
        ...

    def finish_issue(
        self, key: str, token: int, announced: IssueState | None, now: datetime
    ) -> FinishOutcome:
        """Records *announced* (when given) and releases the claim, only while *token* is the
        latest: "lost" otherwise (nothing written). "again" when a change was reported while
        it was held: the caller looks once more (the claim is released all the same)."""
        ...

    def announced_state(self, key: str) -> IssueState | None:
        """The state last announced for *key*, or None."""
        ...


class IssueReader(Protocol):
    """The tracker as announcing and vote-writing need it (Jira, in ``bot.adapters``)."""

    def issue_state(self, key: str) -> IssueState | None:
        """The issue's announced fields now; None when it no longer exists (or is hidden)."""
        ...

    def write_votes(self, key: str, votes: int) -> bool:
        """Keeps the issue's "votes in Slack" line current; False when it already said so."""
        ...
