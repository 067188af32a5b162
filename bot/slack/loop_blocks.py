"""Block Kit for closing the loop: a filed issue's change told in the thread, its state on the
triage reply, and the votes line. Pure functions returning dicts (tested as plain data)."""

from __future__ import annotations

from typing import Any

from bot.domain.issue_changes import IssueChange, IssueState
from bot.slack.mrkdwn import escape_mrkdwn, link, truncate

Block = dict[str, Any]
NAME_MAX = 100  # a status, person or resolution name as shown


def _name(value: str | None) -> str:
    return escape_mrkdwn(truncate(" ".join((value or "").split()), NAME_MAX))


def _key(key: str, url: str | None) -> str:
    key = truncate(key, 60)
    return link(url, key) if url else escape_mrkdwn(key)


def change_parts(change: IssueChange) -> list[str]:
    """What moved, as short phrases: "moved to *In Progress*", "assigned to Dana", ..."""
    after = change.after
    parts: list[str] = []
    if "status" in change.fields:
        parts.append(f"moved to *{_name(after.status)}*" if after.status else "has no status")
    if "assignee" in change.fields:
        parts.append(f"assigned to {_name(after.assignee)}" if after.assignee else "unassigned")
    if "resolution" in change.fields:
        parts.append(f"resolved as *{_name(after.resolution)}*" if after.resolution else "reopened")
    return parts


def build_issue_change(change: IssueChange, url: str | None) -> tuple[str, list[Block]]:
    """The thread message for a change: "IDEA-21 moved to *In Progress* · assigned to Dana"."""
    parts = change_parts(change)
    text = f"{_key(change.after.key, url)} {' · '.join(parts)}"
    plain = f"{escape_mrkdwn(change.after.key)} {' · '.join(parts)}"
    return plain, [{"type": "section", "text": {"type": "mrkdwn", "text": text}}]


def issue_state_text(state: IssueState) -> str:
    """The state as the triage reply shows it after the key: "*In Progress* · Dana"."""
    parts: list[str] = []
    if state.status:
        parts.append(f"*{_name(state.status)}*")
    if state.resolution:
        parts.append(f"resolved as {_name(state.resolution)}")
    if state.assignee:
        parts.append(f"assigned to {_name(state.assignee)}")
    return " · ".join(parts)


def votes_text(votes: int, emoji: str = "+1") -> str:
    """The votes as the triage reply shows them: "👍 5"."""
    shown = "👍" if emoji in ("+1", "thumbsup") else f":{emoji}:"
    return f"{shown} {votes}"
