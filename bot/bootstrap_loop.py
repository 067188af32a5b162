"""Wiring for closing the loop (Jira -> Slack announcements, votes into Jira), called by the one
composition root, ``bot.bootstrap``, which was already too long to grow."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from bot.domain.flags import Flags
from bot.domain.issue_changes import IssueReader
from bot.domain.metrics import Metrics
from bot.domain.models import Ticket
from bot.domain.ports import Notifier
from bot.service.announce import AnnounceChanges, LoopStore

if TYPE_CHECKING:
    from bot.config import Settings


def build_issue_reader(tracker: Any) -> IssueReader | None:
    """The tracker's ``IssueReader`` side: Jira's, or None for another tracker."""
    from bot.adapters.jira_tracker import JiraTracker

    if isinstance(tracker, JiraTracker):
        from bot.adapters.jira_issues import JiraIssues

        return JiraIssues(tracker)
    return None


def build_announcer(
    settings: Settings,
    store: LoopStore,
    issues: IssueReader | None,
    notifier: Notifier,
    *,
    flags: Flags,
    metrics: Metrics,
    clock: Callable[[], datetime],
) -> AnnounceChanges | None:
    """The use case, or None without a tracker that can say an issue's state."""
    if issues is None:
        return None
    return AnnounceChanges(
        store=store,
        issues=issues,
        notifier=notifier,
        fields=tuple(settings.jira_announce_fields),  # type: ignore[arg-type]
        resolved_emoji=settings.jira_resolved_emoji,
        votes_in_jira=settings.votes_in_jira,
        flags=flags,
        metrics=metrics,
        clock=clock,
    )


def sync_hook(announce: AnnounceChanges | None) -> Callable[[list[Ticket]], None] | None:
    """What the Jira sync calls with each page of changed issues: a look at the filed ones."""
    if announce is None:
        return None

    def changed(tickets: list[Ticket]) -> None:
        announce.changed([t.key for t in tickets], source="sync")

    return changed
