"""Filing: one Slack message becomes at most one Jira issue, whatever happens.

The decision who files is made by the store, never by the process:

1. ``outbox.enqueue("jira.file", "<channel>:<ts>", job)`` is the work item, unique among pending
   items, so of concurrent requests exactly one gets a pending item; the others are told the
   filing is in progress.
2. ``filings.claim_filing`` records the filing ("claimed"); if the message was filed before, the
   fresh item is finished and the existing key returned.
3. The item is processed at once and, on a retryable Jira failure, again later by the outbox
   worker with exponential back-off and full jitter, honouring ``Retry-After``. Items survive
   restarts because they live in the store.

Restart between "create" and "record the key": before every attempt after the first the filing's
attempt count is bumped, and an attempt that finds a count above zero first asks the tracker for
the message's unique marker that every created issue carries. A found issue is recorded instead
of creating a second one.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from bot.domain.filing import (
    AMBIGUOUS_RETRY_SECONDS,
    TOPIC,
    Backoff,
    FilingJob,
    FilingResult,
    marker_label,
)
from bot.domain.models import (
    CreatedIssue,
    IssueText,
    NewComment,
    NewIssue,
    Ticket,
    slack_unescape,
)
from bot.domain.ports import (
    Filing,
    Filings,
    Notifier,
    Outbox,
    OutboxItem,
    TicketIndex,
    Tracker,
    TrackerRejected,
    TrackerRetryable,
)

logger = logging.getLogger(__name__)

# A leased item is not handed to another worker before this. It must outlive the slowest attempt
# (marker search, reporter lookup, create, create again, remote link: five Jira requests at the
# client's 15 s timeout), or a second worker could start while the first is still inside
# "create" and the marker search would not see its issue yet.
LEASE = timedelta(minutes=5)


class FilingStore(Filings, Outbox, Protocol):
    """The part of the store filing needs: the filing records and the outbox."""


@dataclass
class Filer:
    """Files messages as Jira issues exactly once, through the durable outbox."""

    store: FilingStore
    tracker: Tracker | None
    project: str
    issue_types: dict[str, str]
    notifier: Notifier
    index: TicketIndex | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rng: Callable[[float, float], float] = field(default=random.uniform)
    backoff: Backoff = field(default_factory=Backoff)
    owner: str = "ideabot"

    @property
    def configured(self) -> bool:
        return self.tracker is not None

    # ------------------------------------------------------------------ requests

    def existing(self, channel: str, ts: str) -> FilingResult | None:
        """What an earlier request for this message came to, if it settled or is under way."""
        return _settled(self.store.get_filing(channel, ts))

    def submit(self, job: FilingJob) -> FilingResult:
        """Files (or comments) *job* once; returns what happened or why nothing did yet."""
        if self.tracker is None:
            return FilingResult("unavailable", message="Jira is not configured for this bot.")
        done = self.existing(job.channel, job.ts)
        if done is not None:
            return done
        now = self.clock()
        item_id = self.store.enqueue(TOPIC, job.key, job.model_dump(mode="json"), now)
        if item_id is None:
            return FilingResult("in_progress")
        if not self.store.claim_filing(job.channel, job.ts, self.owner):
            existing = self.store.get_filing(job.channel, job.ts)
            if existing is not None and existing.state in ("filed", "commented"):
                self.store.finish(item_id)
                return _settled(existing) or FilingResult("in_progress")
            if existing is not None and existing.state == "failed":
                # A filing Jira rejected may be tried again (after an admin fixed the project).
                self.store.update_filing(job.channel, job.ts, state="claimed", error=None)
            # "claimed"/"queued" with our enqueue accepted means no other item is pending: the
            # outbox worker took ours between enqueue and claim, or an earlier run left it. Our
            # item is the only work left for the message, so it must not be finished unprocessed;
            # the lease decides who runs it.
        if not self.store.lease(item_id, now + LEASE):
            return FilingResult("in_progress")
        item = self.store.get_item(item_id)
        return self.process(item) if item is not None else FilingResult("in_progress")

    # ------------------------------------------------------------------ processing

    def process(self, item: OutboxItem) -> FilingResult:
        """One attempt at the work of a leased outbox *item*; records and notifies the outcome."""
        job = FilingJob.model_validate(item.payload)
        filing = self.store.get_filing(job.channel, job.ts)
        if filing is None:
            # The process died between enqueue and claim: the item is the claim.
            self.store.claim_filing(job.channel, job.ts, self.owner)
            filing = self.store.get_filing(job.channel, job.ts)
        if filing is not None and filing.state in ("filed", "commented"):
            self.store.finish(item.id)
            return _settled(filing) or FilingResult("already")
        previous_attempts = filing.attempts if filing else 0
        self.store.update_filing(job.channel, job.ts, attempts=previous_attempts + 1)
        created: list[tuple[CreatedIssue, NewIssue]] = []
        try:
            result = self._attempt(job, searched=previous_attempts > 0, created=created)
        except TrackerRetryable as exc:
            return self._retry(item, job, exc, exc.retry_after)
        except TrackerRejected as exc:
            logger.error(
                "Jira rejected filing %s (%s): %s fields=%s",
                item.key,
                job.kind,
                exc,
                sorted(exc.fields),
            )
            self.store.update_filing(job.channel, job.ts, state="failed", error=str(exc))
            self.store.finish(item.id)
            result = FilingResult("rejected", message=str(exc), fields=dict(exc.fields))
            self._notify(job, result)
            return result
        except Exception as exc:
            logger.exception("unexpected error filing %s; will retry", item.key)
            return self._retry(item, job, exc, None)
        state = "commented" if result.status == "commented" else "filed"
        self.store.update_filing(
            job.channel, job.ts, state=state, issue_key=result.key, issue_url=result.url, error=None
        )
        self.store.finish(item.id)
        # Indexing after the key is recorded: a slow index must not keep an issue that exists in
        # Jira unrecorded (and the lease running out) while it works.
        for issue_created, issue in created:
            self._index(issue_created, issue)
        self._notify(job, result)
        return result

    def _attempt(
        self, job: FilingJob, searched: bool, created: list[tuple[CreatedIssue, NewIssue]]
    ) -> FilingResult:
        assert self.tracker is not None
        body = IssueText(
            summary=job.summary,
            original=slack_unescape(job.text),
            permalink=job.permalink,
            author=job.author_name or job.author,
        )
        if job.comment_on:
            self.tracker.add_comment(
                NewComment(key=job.comment_on, body=body, link_url=job.permalink)
            )
            return FilingResult(
                "commented", key=job.comment_on, url=self.tracker.browse_url(job.comment_on)
            )
        marker = marker_label(job.channel, job.ts)
        if searched:
            found = self._find_marker(marker)
            if found is not None:
                logger.info("filing %s: found %s from an earlier attempt", job.key, found.key)
                return FilingResult("filed", key=found.key, url=found.url)
        issue = NewIssue(
            project=self.project,
            summary=job.title or job.text,
            body=body,
            issue_type=self.issue_types.get(job.kind) or self.issue_types.get("idea", "Task"),
            labels=(*job.labels, "ideabot"),
            marker=marker,
            reporter_email=job.author_email,
            link_url=job.permalink,
            link_title="Slack thread",
        )
        new = self.tracker.create_issue(issue)
        created.append((new, issue))
        return FilingResult("filed", key=new.key, url=new.url)

    def _find_marker(self, marker: str) -> CreatedIssue | None:
        assert self.tracker is not None
        try:
            return self.tracker.find_by_marker(self.project, marker)
        except TrackerRejected as exc:
            # Not knowing is no reason to stop filing; the marker still lets people find it.
            logger.warning("could not search Jira for marker %s: %s", marker, exc)
            return None

    def _index(self, created: CreatedIssue, issue: NewIssue) -> None:
        if self.index is None:
            return
        ticket = Ticket(
            key=created.key,
            title=issue.summary,
            description=f"{issue.body.summary}\n{issue.body.original}".strip(),
            type=issue.issue_type,
            url=created.url,
        )
        try:
            self.index.upsert([ticket])
        except Exception:
            logger.warning("could not index the new issue %s", created.key, exc_info=True)

    def _retry(
        self, item: OutboxItem, job: FilingJob, exc: Exception, retry_after: float | None
    ) -> FilingResult:
        now = self.clock()
        wait = self.backoff.delay(item.attempts, retry_after, self.rng)
        if isinstance(exc, TrackerRetryable) and exc.ambiguous:
            # Jira may have created the issue without us hearing back. The retry searches for
            # its marker, and Jira Cloud's search lags behind writes: give it time.
            wait = max(wait, AMBIGUOUS_RETRY_SECONDS)
        at = now + timedelta(seconds=wait)
        self.store.retry_later(item.id, at, f"{type(exc).__name__}: {exc}")
        self.store.update_filing(job.channel, job.ts, state="queued", error=str(exc))
        logger.warning(
            "Jira unavailable for %s (attempt %d): %s; retrying in %.1fs",
            item.key,
            item.attempts + 1,
            exc,
            wait,
        )
        result = FilingResult("queued", retry_at=at)
        if item.attempts == 0:
            self._notify(job, result)
        return result

    def _notify(self, job: FilingJob, result: FilingResult) -> None:
        try:
            self.notifier.filing_outcome(job, result)
        except Exception:
            logger.exception("could not report filing %s to Slack", job.key)

    def run_due(self, now: datetime | None = None, limit: int = 10) -> int:
        """Processes the outbox items due at *now*; returns how many were attempted."""
        now = now or self.clock()
        done = 0
        for item in self.store.due(now, limit=limit):
            if item.topic != TOPIC or not self.store.lease(item.id, now + LEASE):
                continue
            self.process(item)
            done += 1
        return done


def _settled(filing: Filing | None) -> FilingResult | None:
    if filing is None:
        return None
    if filing.state in ("filed", "commented") and filing.issue_key:
        return FilingResult("already", key=filing.issue_key, url=filing.issue_url)
    if filing.state in ("claimed", "queued"):
        return FilingResult("in_progress")
    return None
