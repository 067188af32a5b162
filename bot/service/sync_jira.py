"""Jira into the index: page through the project's issues and upsert them, incrementally."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.domain.ports import KeyValue, TicketIndex, Tracker

logger = logging.getLogger(__name__)

CURSOR_KEY = "sync-jira:{project}:updated"
# Jira's JQL compares minutes in the *user's* time zone, and clocks drift: re-reading a margin
# is cheap (upserts are idempotent and unchanged texts are not re-embedded).
OVERLAP = timedelta(minutes=10)


@dataclass(frozen=True)
class SyncResult:
    seen: int
    upserted: int
    pages: int
    since: datetime | None


class JiraSync:
    """Keeps the ticket index in step with the tracker."""

    def __init__(
        self,
        tracker: Tracker,
        index: TicketIndex,
        store: KeyValue,
        project: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        narrow: str | None = None,
    ) -> None:
        self.tracker = tracker
        self.index = index
        self.store = store
        self.project = project
        self.clock = clock
        self.narrow = narrow  # JIRA_SYNC_JQL: the operator's own filter, passed to the tracker

    @property
    def _cursor_key(self) -> str:
        return CURSOR_KEY.format(project=self.project)

    def sync(
        self,
        narrow: str | None = None,
        full: bool = False,
        page_size: int = 100,
        progress: Callable[[int], None] | None = None,
    ) -> SyncResult:
        """Upserts the project's issues updated since the last sync (all of them if *full*).

        *narrow* is the operator's own filter for this run (``sync-jira --jql``), else the
        configured one.

        The cursor only moves forward after every page is indexed, so an interrupted sync
        repeats work instead of losing it.
        """
        started = self.clock()
        raw = None if full else self.store.get_value(self._cursor_key)
        since = datetime.fromisoformat(raw) - OVERLAP if raw else None
        token: str | None = None
        seen = upserted = pages = 0
        while True:
            tickets, token = self.tracker.updated_since(
                self.project,
                since,
                page_token=token,
                page_size=page_size,
                narrow=narrow or self.narrow,
            )
            pages += 1
            if tickets:
                upserted += self.index.upsert(tickets)
                seen += len(tickets)
                if progress:
                    progress(len(tickets))
            if not token or not tickets:
                break
        self.store.set_value(self._cursor_key, started.isoformat())
        logger.info("synced %d issues from %s in %d pages", seen, self.project, pages)
        return SyncResult(seen=seen, upserted=upserted, pages=pages, since=since)

    def run_scheduled(self) -> None:
        """One incremental sync for the periodic job; a failure waits for the next interval."""
        try:
            self.sync()
        except Exception:  # a Jira outage must not stop the bot; the next run catches up
            logger.warning(
                "scheduled Jira sync failed; will retry at the next interval", exc_info=True
            )
