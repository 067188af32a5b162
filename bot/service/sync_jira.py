"""Jira into the catalogue: page through the project's issues and upsert them, incrementally.

The cursor is in Jira's own terms: the newest ``updated`` time Jira reported (Jira's clock, not
ours), kept as an instant. The tracker adapter writes it into JQL in the zone Jira reads JQL
dates in (the account's own), or widens the window when it cannot tell. A re-read ticket that
did not change costs nothing beyond the page: the index compares it with the catalogue.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from bot.domain.metrics import INDEX_SIZE, SYNC_LAG, SYNC_RUNS, Metrics, NullMetrics
from bot.domain.models import Ticket
from bot.domain.ports import KeyValue, TicketIndex, Tracker

logger = logging.getLogger(__name__)

# A new key: the cursor of the on-disk index era ("sync-jira:{project}:updated", our clock) must
# not make the first sync into an empty catalogue incremental.
CURSOR_KEY = "sync-jira:{project}:jira-updated"
# Jira's search index can show an issue a little after a newer one: re-read a margin (cheap).
OVERLAP = timedelta(minutes=10)


@dataclass(frozen=True)
class SyncResult:
    seen: int
    upserted: int
    pages: int
    since: datetime | None


def _newest(tickets: list[Ticket], current: datetime | None) -> datetime | None:
    times = [t.updated.astimezone(UTC) for t in tickets if t.updated is not None]
    if current is not None:
        times.append(current)
    return max(times, default=None)


class JiraSync:
    """Keeps the ticket catalogue (through the index) in step with the tracker."""

    def __init__(
        self,
        tracker: Tracker,
        index: TicketIndex,
        store: KeyValue,
        project: str,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        narrow: str | None = None,
        metrics: Metrics | None = None,
        index_kind: str = "local",
        on_changed: Callable[[list[Ticket]], None] | None = None,
    ) -> None:
        self.metrics: Metrics = metrics or NullMetrics()
        self.index_kind = index_kind  # the ``index`` label of the index size gauge
        self.tracker = tracker
        self.index = index
        self.store = store
        self.project = project
        self.clock = clock
        self.narrow = narrow  # JIRA_SYNC_JQL: the operator's own filter, passed to the tracker
        # Told each page of issues read (after indexing): announces changes of filed issues.
        self.on_changed = on_changed

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
        """One sync (see :meth:`_sync`), counted by outcome; a success resets the sync lag."""
        try:
            result = self._sync(narrow, full, page_size, progress)
        except Exception:
            self.metrics.inc(SYNC_RUNS, outcome="failed")
            raise
        self.metrics.inc(SYNC_RUNS, outcome="ok")
        self.metrics.set_since(SYNC_LAG, self.clock())
        try:
            self.metrics.set_gauge(INDEX_SIZE, float(self.index.count()), index=self.index_kind)
        except Exception:  # a gauge must never fail a sync that worked
            logger.debug("could not count the index", exc_info=True)
        return result

    def _sync(
        self,
        narrow: str | None,
        full: bool,
        page_size: int,
        progress: Callable[[int], None] | None,
    ) -> SyncResult:
        """Upserts the project's issues updated since the last sync (all of them if *full*, or
        when the index is empty).

        *narrow* is the operator's own filter for this run (``sync-jira --jql``), else the
        configured one. The cursor only moves forward after every page is indexed, so an
        interrupted sync repeats work instead of losing it.
        """
        started = self.clock()
        raw = None if full else self.store.get_value(self._cursor_key)
        cursor = datetime.fromisoformat(raw) if raw else None
        since = cursor - OVERLAP if cursor else None
        if since is not None and self.index.count() == 0:
            logger.info("the index of %s is empty: reading every issue", self.project)
            since = None
        token: str | None = None
        seen = upserted = pages = 0
        newest: datetime | None = None
        undated = False
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
                self._changed(tickets)
                seen += len(tickets)
                newest = _newest(tickets, newest)
                undated = undated or any(t.updated is None for t in tickets)
                if progress:
                    progress(len(tickets))
            if not token or not tickets:
                break
        if newest is None and undated:
            newest = started  # a tracker that does not date its issues: our clock, as before
        if newest is not None and (cursor is None or newest > cursor):
            self.store.set_value(self._cursor_key, newest.isoformat())
        logger.info("synced %d issues from %s in %d pages", seen, self.project, pages)
        return SyncResult(seen=seen, upserted=upserted, pages=pages, since=since)

    def _changed(self, tickets: list[Ticket]) -> None:
        if self.on_changed is None:
            return
        try:
            self.on_changed(tickets)
        except Exception:  # announcing is best effort; the catalogue must stay in step
            logger.warning("could not look at the changed issues", exc_info=True)

    def run_scheduled(self) -> None:
        """One incremental sync for the periodic job; a failure waits for the next interval."""
        try:
            self.sync()
        except Exception:  # a Jira outage must not stop the bot; the next run catches up
            logger.warning(
                "scheduled Jira sync failed; will retry at the next interval", exc_info=True
            )
