"""Filing: one Slack message becomes at most one Jira issue, whatever happens.

The decision who files is made by the store, never by the process:

1. ``store.enqueue("jira.file", "<channel>:<ts>", payload)`` is the work item, unique among pending
   items, so of concurrent requests exactly one gets a pending item; the others are told the
   filing is in progress.
2. ``store.claim_filing`` records the filing ("claimed"); if the message was filed before, the
   fresh item is finished and the existing key returned.
3. The item is processed at once (inline, in the listener's worker thread) and, on a retryable
   Jira failure, again later by the :class:`OutboxWorker` with exponential back-off and full
   jitter, honouring ``Retry-After``. Items survive restarts because they live in the store.

Restart between "create" and "record the key": before every attempt after the first the filing's
attempt count is bumped, and an attempt that finds a count above zero first searches Jira for the
message's unique marker label (``ideabot-<hash>``) that every created issue carries. A found issue
is recorded instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import logging
import random
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol

from bot.domain.duplicates import is_likely_duplicate
from bot.domain.models import (
    CreatedIssue,
    IssueText,
    Match,
    NewComment,
    NewIssue,
    Ticket,
    Triage,
    slack_unescape,
)
from bot.domain.ports import (
    Filing,
    OutboxItem,
    Store,
    TicketIndex,
    Tracker,
    TrackerRejected,
    TrackerRetryable,
)

logger = logging.getLogger(__name__)

TOPIC = "jira.file"
MARKER_PREFIX = "ideabot-"
# A leased item is not handed to another worker before this. It must outlive the slowest attempt
# (marker search, reporter lookup, create, create again, remote link: five Jira requests at the
# client's 15 s timeout), or a second worker could start while the first is still inside
# "create" and the marker search would not see its issue yet.
LEASE = timedelta(minutes=5)

Status = Literal[
    "filed",  # created now (key, url)
    "commented",  # the post was added to an existing issue
    "already",  # filed (or commented) before: key, url
    "in_progress",  # someone else's request is being processed
    "queued",  # Jira is unavailable; the outbox will retry
    "duplicate",  # a likely duplicate exists: ask the user (match)
    "rejected",  # Jira refused the issue (message)
    "denied",  # the user may not file (message)
    "unavailable",  # no tracker configured
]


@dataclass(frozen=True)
class FilingRequest:
    """Everything needed to file one Slack message, gathered by the listener."""

    channel: str
    ts: str
    text: str
    requester: str
    author: str = ""
    author_name: str | None = None
    author_email: str | None = None
    permalink: str | None = None
    thread_ts: str | None = None
    is_private: bool = False
    triage: Triage | None = None
    force: bool = False
    comment_on: str | None = None

    @property
    def key(self) -> str:
        return f"{self.channel}:{self.ts}"

    @property
    def reply_ts(self) -> str:
        """The thread the bot answers in."""
        return self.thread_ts or self.ts


@dataclass(frozen=True)
class FilingResult:
    status: Status
    key: str | None = None
    url: str | None = None
    match: Match | None = None
    message: str | None = None
    retry_at: datetime | None = None


class FilingNotifier(Protocol):
    """Tells the people in the thread what happened to a filing (Slack implements it)."""

    def filing_done(self, payload: dict[str, Any], result: FilingResult) -> None: ...


class _NullNotifier:
    def filing_done(self, payload: dict[str, Any], result: FilingResult) -> None:
        logger.info("filing %s: %s", payload.get("key"), result.status)


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter: attempt *n* waits U(0, min(cap, base * 2**n)).

    The floor keeps the first retry "within seconds" but not instantaneous; ``Retry-After`` from
    Jira is honoured as a lower bound (capped at *max_retry_after*).
    """

    base: float = 2.0
    cap: float = 300.0
    floor: float = 1.0
    max_retry_after: float = 3600.0

    def delay(
        self, attempt: int, retry_after: float | None, rng: Callable[[float, float], float]
    ) -> float:
        """Seconds to wait before retry number *attempt* (0 = the first retry)."""
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        wait = max(self.floor, rng(0.0, ceiling))
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


AMBIGUOUS_RETRY_SECONDS = 30.0


def marker_label(channel: str, ts: str) -> str:
    """The label that identifies the issue filed for one Slack message, across restarts."""
    digest = hashlib.sha256(f"{channel}:{ts}".encode()).hexdigest()[:16]
    return f"{MARKER_PREFIX}{digest}"


def may_file(
    user: str,
    allowed_users: Iterable[str],
    allowed_groups: Iterable[str],
    members_of: Callable[[str], Iterable[str]],
) -> bool:
    """True when *user* may file: both lists empty, or listed, or in a listed group."""
    users = {u.strip() for u in allowed_users if u.strip()}
    groups = [g.strip() for g in allowed_groups if g.strip()]
    if not users and not groups:
        return True
    if user in users:
        return True
    for group in groups:
        try:
            if user in set(members_of(group)):
                return True
        except Exception:
            logger.warning("could not read the members of user group %s", group, exc_info=True)
    return False


def rejection_message(exc: TrackerRejected) -> str:
    """A human sentence naming what Jira refused, for the Slack thread."""
    if exc.fields:
        named = "; ".join(f"{name}: {msg}" for name, msg in sorted(exc.fields.items()))
        return (
            f"Jira refused the ticket because of field(s) {named}. "
            "An admin needs to adjust the Jira project or the bot's settings "
            "(JIRA_ISSUE_TYPES); nothing was filed."
        )
    return f"Jira refused the ticket: {exc}. Nothing was filed."


def check_issue_types(mapping: dict[str, str], available: Iterable[str]) -> list[str]:
    """Problems with the kind -> issue type *mapping* given the project's types (empty: fine)."""
    names = {a.lower(): a for a in available}
    problems = []
    for kind, issue_type in sorted(mapping.items()):
        if issue_type.lower() not in names:
            problems.append(
                f"JIRA_ISSUE_TYPES: {kind}={issue_type} is not an issue type of the project "
                f"(available: {', '.join(sorted(names.values())) or 'none'})"
            )
    return problems


@dataclass
class FilingService:
    """Files Slack messages as Jira issues exactly once, through the durable outbox."""

    store: Store
    tracker: Tracker | None
    project: str
    issue_types: dict[str, str]
    duplicate_threshold: float = 0.70
    index: TicketIndex | None = None
    notifier: FilingNotifier = field(default_factory=_NullNotifier)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    rng: Callable[[float, float], float] = field(default=random.uniform)
    backoff: Backoff = field(default_factory=Backoff)
    owner: str = "ideabot"

    # ------------------------------------------------------------------ requests

    def file(self, req: FilingRequest) -> FilingResult:
        """Files (or comments) *req* once; returns what happened or why nothing did yet."""
        if self.tracker is None:
            return FilingResult("unavailable", message="Jira is not configured for this bot.")
        done = self._existing(self.store.get_filing(req.channel, req.ts))
        if done is not None:
            return done
        if req.comment_on is None and not req.force and req.triage is not None:
            best = req.triage.duplicates[0] if req.triage.duplicates else None
            if best is not None and (
                req.triage.likely_duplicate or is_likely_duplicate(best, self.duplicate_threshold)
            ):
                return FilingResult("duplicate", key=best.key, url=best.url, match=best)
        now = self.clock()
        payload = self._payload(req)
        if not self.store.enqueue(TOPIC, req.key, payload, now):
            return FilingResult("in_progress")
        if not self.store.claim_filing(req.channel, req.ts, self.owner):
            existing = self.store.get_filing(req.channel, req.ts)
            if existing is not None and existing.state in ("filed", "commented"):
                self._finish_key(req.key)
                return self._existing(existing) or FilingResult("in_progress")
            self._reopen(existing, req)
            # "claimed"/"queued" with our enqueue accepted means no other item is pending: the
            # outbox worker took ours between enqueue and claim, or an earlier run left it. Our
            # item is the only work left for the message, so it must not be finished unprocessed;
            # the lease decides who runs it.
        return self._run_pending(req.key, now)

    def _reopen(self, existing: Filing | None, req: FilingRequest) -> bool:
        # A filing Jira rejected may be tried again (after an admin fixed the project).
        if existing is not None and existing.state == "failed":
            self.store.update_filing(req.channel, req.ts, state="claimed", error=None)
            return True
        return False

    def _existing(self, filing: Filing | None) -> FilingResult | None:
        if filing is None:
            return None
        if filing.state in ("filed", "commented") and filing.issue_key:
            return FilingResult("already", key=filing.issue_key, url=filing.issue_url)
        if filing.state in ("claimed", "queued"):
            return FilingResult("in_progress")
        return None

    def _finish_key(self, key: str) -> None:
        for item in self.store.pending():
            if item.topic == TOPIC and item.key == key:
                self.store.finish(item.id)

    def _run_pending(self, key: str, now: datetime) -> FilingResult:
        for item in self.store.pending():
            if item.topic == TOPIC and item.key == key:
                if not self.store.lease(item.id, now + LEASE):
                    return FilingResult("in_progress")
                return self.process(item)
        return FilingResult("in_progress")

    def _payload(self, req: FilingRequest) -> dict[str, Any]:
        t = req.triage
        kind = t.kind if t is not None else "idea"
        title = t.title if t is not None else req.text
        summary = t.summary if t is not None else ""
        labels = list(t.labels) if t is not None else []
        return {
            "key": req.key,
            "channel": req.channel,
            "ts": req.ts,
            "reply_ts": req.reply_ts,
            "requester": req.requester,
            "is_private": req.is_private,
            "kind": kind,
            "title": title,
            "summary": summary,
            "labels": labels,
            "text": req.text,
            "author": req.author,
            "author_name": req.author_name,
            "author_email": req.author_email,
            "permalink": req.permalink,
            "comment_on": req.comment_on,
        }

    # ------------------------------------------------------------------ processing

    def process(self, item: OutboxItem) -> FilingResult:
        """One attempt at the work of a leased outbox *item*; records and notifies the outcome."""
        p = item.payload
        channel, ts = str(p["channel"]), str(p["ts"])
        filing = self.store.get_filing(channel, ts)
        if filing is None:
            # The process died between enqueue and claim: the item is the claim.
            self.store.claim_filing(channel, ts, self.owner)
            filing = self.store.get_filing(channel, ts)
        done = self._existing(filing) if filing and filing.state in ("filed", "commented") else None
        if done is not None:
            self.store.finish(item.id)
            return done
        previous_attempts = filing.attempts if filing else 0
        self.store.update_filing(channel, ts, attempts=previous_attempts + 1)
        created: list[tuple[CreatedIssue, NewIssue]] = []
        try:
            result = self._attempt(p, searched=previous_attempts > 0, created=created)
        except TrackerRetryable as exc:
            return self._retry(item, p, exc, exc.retry_after)
        except TrackerRejected as exc:
            message = rejection_message(exc)
            logger.error(
                "Jira rejected filing %s (%s): %s fields=%s",
                item.key,
                p.get("kind"),
                exc,
                sorted(exc.fields),
            )
            self.store.update_filing(channel, ts, state="failed", error=str(exc))
            self.store.finish(item.id)
            result = FilingResult("rejected", message=message)
            self._notify(p, result)
            return result
        except Exception as exc:
            logger.exception("unexpected error filing %s; will retry", item.key)
            return self._retry(item, p, exc, None)
        state = "commented" if result.status == "commented" else "filed"
        self.store.update_filing(
            channel, ts, state=state, issue_key=result.key, issue_url=result.url, error=None
        )
        self.store.finish(item.id)
        # Indexing after the key is recorded: a slow index must not keep an issue that exists in
        # Jira unrecorded (and the lease running out) while it works.
        for issue_created, issue in created:
            self._index(issue_created, issue)
        self._notify(p, result)
        return result

    def _attempt(
        self,
        p: dict[str, Any],
        searched: bool,
        created: list[tuple[CreatedIssue, NewIssue]] | None = None,
    ) -> FilingResult:
        assert self.tracker is not None
        marker = marker_label(str(p["channel"]), str(p["ts"]))
        body = IssueText(
            summary=str(p.get("summary") or ""),
            original=slack_unescape(str(p["text"])),
            permalink=p.get("permalink"),
            author=p.get("author_name") or p.get("author"),
        )
        if p.get("comment_on"):
            key = str(p["comment_on"])
            self.tracker.add_comment(NewComment(key=key, body=body, link_url=p.get("permalink")))
            return FilingResult("commented", key=key, url=self.tracker.browse_url(key))
        if searched:
            found = self._find_marker(marker)
            if found is not None:
                logger.info("filing %s: found %s from an earlier attempt", p["key"], found.key)
                return FilingResult("filed", key=found.key, url=found.url)
        kind = str(p.get("kind") or "idea")
        issue = NewIssue(
            project=self.project,
            summary=str(p["title"]),
            body=body,
            issue_type=self.issue_types.get(kind) or self.issue_types.get("idea", "Task"),
            labels=(*[str(x) for x in p.get("labels") or []], "ideabot"),
            marker=marker,
            reporter_email=p.get("author_email"),
            link_url=p.get("permalink"),
            link_title="Slack thread",
        )
        new = self.tracker.create_issue(issue)
        if created is not None:
            created.append((new, issue))
        else:
            self._index(new, issue)
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
        try:
            self.index.upsert(
                [
                    Ticket(
                        key=created.key,
                        title=issue.summary,
                        description=issue.body.summary + "\n" + issue.body.original,
                        type=issue.issue_type,
                        url=created.url,
                    )
                ]
            )
        except Exception:
            logger.warning("could not index the new issue %s", created.key, exc_info=True)

    def _retry(
        self, item: OutboxItem, p: dict[str, Any], exc: Exception, retry_after: float | None
    ) -> FilingResult:
        now = self.clock()
        wait = self.backoff.delay(item.attempts, retry_after, self.rng)
        if getattr(exc, "ambiguous", False):
            # Jira may have created the issue without us hearing back. The retry searches for
            # its marker label, and Jira Cloud's search lags behind writes: give it time.
            wait = max(wait, AMBIGUOUS_RETRY_SECONDS)
        at = now + timedelta(seconds=wait)
        self.store.retry_later(item.id, at, f"{type(exc).__name__}: {exc}")
        self.store.update_filing(str(p["channel"]), str(p["ts"]), state="queued", error=str(exc))
        logger.warning(
            "Jira unavailable for %s (attempt %d): %s; retrying in %.1fs",
            item.key,
            item.attempts + 1,
            exc,
            wait,
        )
        result = FilingResult("queued", retry_at=at)
        if item.attempts == 0:
            self._notify(p, result)
        return result

    def _notify(self, p: dict[str, Any], result: FilingResult) -> None:
        try:
            self.notifier.filing_done(p, result)
        except Exception:
            logger.exception("could not report filing %s to Slack", p.get("key"))

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


class OutboxWorker:
    """Polls the outbox in a daemon thread; ``run_once(now)`` does one pass (for tests)."""

    def __init__(
        self,
        filing: FilingService,
        poll_interval: float = 2.0,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.filing = filing
        self.poll_interval = poll_interval
        self.clock = clock or filing.clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self, now: datetime | None = None) -> int:
        """Processes what is due at *now* (default: the clock)."""
        return self.filing.run_due(now or self.clock())

    def start(self) -> None:
        """Starts the polling thread (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="ideabot-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the thread after its current pass."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception:
                logger.exception("outbox pass failed")
            self._stop.wait(self.poll_interval)
