"""Filing: one Slack message becomes at most one Jira issue, whatever happens.

The decision who files is made by the store, never by the process:

1. ``outbox.enqueue("jira.file", "<channel>:<ts>", job)`` is the work item, unique among pending
   items, so of concurrent requests exactly one gets a pending item; the others are told the
   filing is in progress.
2. ``filings.claim_filing`` records the filing ("claimed"); if the message was filed before, the
   fresh item is finished and the existing key returned.
3. The item is processed at once and, on a retryable Jira failure, again later by the outbox
   worker with exponential back-off and full jitter, honouring ``Retry-After``. Items survive
   restarts because they live in the store. After ``RetryLimits`` (attempts, age) the filing is
   "failed": the thread gets a Retry button, and a new request starts over.

Leases are fenced. Whoever works on an item holds a lease from the moment it took it, and the
token that lease came with; every write of the outcome (the key, a retry, a failure) is
conditional on the token still being the item's latest. A worker that overran its lease (a
stalled process, a clock jump) changes nothing and says nothing: the next holder reconciles.

Restart between "create" and "record the key": before every attempt the filing's attempt count is
bumped (a fenced write, so a worker that lost its lease never starts), and an attempt that finds
a count above zero first asks the tracker for the message's marker, which every created issue
(as a label) and every added comment carries. A found issue or comment is recorded instead of
making a second one. Markers are HMACs under an install secret, and no label from triage may
use their namespace, so a post cannot plant one for another message's retry to adopt.
"""

from __future__ import annotations

import contextvars
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pydantic import ValidationError

from bot.domain.attachments import (
    AttachmentPolicy,
    FileSource,
    IssueAttachments,
    image_names,
)
from bot.domain.audit import FILING as AUDIT_FILING
from bot.domain.audit import audit
from bot.domain.events import filing_event, read_filing, read_outbox
from bot.domain.filing import (
    AMBIGUOUS_RETRY_SECONDS,
    TOPIC,
    Backoff,
    FilingJob,
    FilingResult,
    LabelPolicy,
    RetryLimits,
    marker_label,
)
from bot.domain.metrics import FILINGS, OUTBOX_DEPTH, OUTBOX_OLDEST_AGE, Metrics, NullMetrics
from bot.domain.models import (
    CreatedIssue,
    IssueText,
    NewComment,
    NewIssue,
    Ticket,
    clean_label,
    slack_unescape,
)
from bot.domain.ports import (
    Fence,
    Filing,
    Filings,
    ItemStep,
    Notifier,
    Outbox,
    OutboxItem,
    RetryAt,
    TicketIndex,
    Tracker,
    TrackerRejected,
    TrackerRetryable,
)
from bot.domain.projects import ProjectRoute, ProjectRouting
from bot.domain.tracing import SPAN_FILE, NoopTracer, Tracer
from bot.observability.context import current_context, log_context
from bot.service.attach_files import AttachLeaseLost, attach_files
from bot.service.lease_keeper import LeaseKeeper

logger = logging.getLogger(__name__)

# A leased item is not handed to another worker before this, counted from when it was taken or
# last renewed: a heartbeat renews it while the attempt runs (bot.service.lease_keeper), so a
# replica that dies mid-attempt holds the item this long at most. Every write to Jira starts
# right after a renewal and ends within JIRA_REQUESTS_PER_WRITE request deadlines, which the
# composition root keeps well inside the lease (bot.bootstrap.jira_request_deadline): no second
# worker starts while a create is in flight, and its marker search then sees the issue.
# Fencing (see the module docstring) covers what is left. ``FILING_LEASE_SECONDS`` sets it.
LEASE = timedelta(seconds=60)
# False while the review form's submission runs its attempt: a rejection is shown on the form's
# fields then, not said in the thread (later attempts, by the outbox worker, say it as usual).
_TELL_REJECTION: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "tell_rejection", default=True
)


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
    lease: timedelta = LEASE
    # Seconds between the lease's renewals while an attempt runs (None: a third of the lease;
    # 0: none, for tests that move a fake clock and must not race a real-time thread).
    heartbeat: float | None = None
    limits: RetryLimits = field(default_factory=RetryLimits)
    labels: LabelPolicy = field(default_factory=LabelPolicy)
    metrics: Metrics = field(default_factory=NullMetrics)
    # Told the project whose create screen Jira refused a field of (its cached metadata is old).
    on_field_rejected: Callable[[str], None] | None = None
    # Channel -> project (JIRA_PROJECTS); without it every issue goes to *project*.
    routing: ProjectRouting | None = None
    # Screenshots and files reach the ticket: fetched from the chat, attached in the tracker.
    files: FileSource | None = None
    attachments: IssueAttachments | None = None
    attachment_policy: AttachmentPolicy = field(default_factory=AttachmentPolicy)
    tracer: Tracer = field(default_factory=NoopTracer)
    _secret: str | None = field(default=None, init=False, repr=False)

    @property
    def configured(self) -> bool:
        return self.tracker is not None

    def issue_type_for(self, kind: str) -> str:
        """The issue type a post of *kind* is filed as (JIRA_ISSUE_TYPES)."""
        return self.issue_types.get(kind) or self.issue_types.get("idea", "Task")

    def project_for(self, job: FilingJob) -> str:
        """The project *job* is filed in: its own choice, its channel's, else the fallback."""
        routed = self.routing.project(job.channel) if self.routing is not None else None
        return job.project or routed or self.project

    def _route(self, project: str) -> ProjectRoute:
        if self.routing is not None:
            return self.routing.route_for_project(project)
        return ProjectRoute(project=project)

    def marker(self, channel: str, ts: str) -> str:
        """The marker of the issue or comment filed for one message (see ``marker_label``)."""
        if self._secret is None:
            self._secret = self.store.marker_secret()
        return marker_label(channel, ts, self._secret)

    # ------------------------------------------------------------------ requests

    def existing(self, channel: str, ts: str) -> FilingResult | None:
        """What an earlier request for this message came to, if it settled or is under way."""
        return _settled(self.store.get_filing(channel, ts))

    def submit(
        self, job: FilingJob, *, at_once: bool = True, tell_rejection: bool = True
    ) -> FilingResult:
        """Files (or comments) *job* once; returns what happened or why nothing did yet.

        A filing that was rejected or given up on ("failed") is tried again from scratch.
        Without *at_once* the claimed work item is left to the outbox worker ("queued"): for
        callers that must not wait on Jira (a thread reply arriving in the triage pool).
        Without *tell_rejection*, the caller tells a rejection of this attempt itself.
        """
        reset = _TELL_REJECTION.set(tell_rejection)
        try:
            return self._submit(job, at_once)
        finally:
            _TELL_REJECTION.reset(reset)

    def _submit(self, job: FilingJob, at_once: bool) -> FilingResult:
        if self.tracker is None:
            return self._counted(
                FilingResult("unavailable", message="Jira is not configured for this bot.")
            )
        done = self.existing(job.channel, job.ts)
        if done is not None:
            return self._counted(done)
        if job.trace_id is None:
            # The flow's trace id (set by the inbox worker replaying the event) travels with the
            # work item, so a later attempt by the outbox worker logs and files under it too.
            job = job.model_copy(update={"trace_id": current_context().get("trace_id")})
        now = self.clock()
        event = filing_event(job, now=now, by=self.owner)
        item_id = self.store.enqueue(TOPIC, job.key, event.to_dict(), now)
        if item_id is None:
            return self._counted(FilingResult("in_progress"))
        if not self.store.claim_filing(job.channel, job.ts, self.owner):
            existing = self.store.get_filing(job.channel, job.ts)
            if existing is not None and existing.state == "failed":
                # A filing Jira rejected, or one given up on, may be tried again (after an admin
                # fixed the project, or Jira came back). No item can be working on it: ours is
                # the only pending one.
                self.store.update_filing(job.channel, job.ts, state="claimed", error=None)
            # "filed"/"commented": process() finishes our item and answers "already".
            # "claimed"/"queued" with our enqueue accepted means no other item is pending: the
            # outbox worker took ours between enqueue and claim, or an earlier run left it. Our
            # item is the only work left for the message, so it must not be finished unprocessed;
            # the lease decides who runs it.
        if not at_once:
            return self._counted(FilingResult("queued"))
        now = self.clock()  # the lease starts when the item is taken
        token = self.store.lease(item_id, now + self.lease, now=now)
        if token is None:
            return self._counted(FilingResult("in_progress"))
        item = self.store.get_item(item_id)
        if item is None:
            return self._counted(FilingResult("in_progress"))
        return self.process(item, token)

    def _counted(self, result: FilingResult) -> FilingResult:
        self.metrics.inc(FILINGS, outcome=result.status)
        return result

    # ------------------------------------------------------------------ processing

    def process(self, item: OutboxItem, token: int) -> FilingResult:
        """One attempt at the work of *item*, leased with *token*; records and notifies the
        outcome unless the lease was lost meanwhile. Logs under the item and its trace id."""
        trace = _trace_of(item)
        fields: dict[str, str | int | None] = {"outbox_item": item.id}
        if trace and "trace_id" not in current_context():
            fields["trace_id"] = str(trace)
        with (
            log_context(**fields),
            self.tracer.span(SPAN_FILE, trace_id=trace, topic=item.topic) as span,
        ):
            result = self._process(item, token)
            span.set_attribute("outcome", result.status)
        self.metrics.inc(FILINGS, outcome=result.status)
        return result

    def _process(self, item: OutboxItem, token: int) -> FilingResult:
        fence = Fence(item.id, token)
        try:
            # Either envelope version: items the previous release stored are bare jobs.
            _, job = read_filing(item.payload, item.topic)
        except (ValidationError, ValueError) as exc:
            # Retrying cannot make it readable; without a job there is no thread to tell either.
            logger.error(
                "dropping outbox item %d (%s): unreadable payload: %s", item.id, item.key, exc
            )
            self.store.finish(item.id, token)
            return FilingResult("failed", message="unreadable work item")
        filing = self.store.get_filing(job.channel, job.ts)
        if filing is None:
            # The process died between enqueue and claim: the item is the claim.
            self.store.claim_filing(job.channel, job.ts, self.owner)
            filing = self.store.get_filing(job.channel, job.ts)
        if filing is not None and filing.state in ("filed", "commented"):
            self._record(fence, job, item="finish")
            return _settled(filing) or FilingResult("already")
        previous_attempts = filing.attempts if filing else 0
        if not self._record(fence, job, attempts=previous_attempts + 1):
            return self._lost(item, "before its attempt")
        created: list[tuple[CreatedIssue, NewIssue]] = []
        keeper = LeaseKeeper(self.store, fence, self.lease, self.clock, self.heartbeat)
        try:
            with keeper:
                result = self._attempt(
                    job, searched=previous_attempts > 0, created=created, still_ours=keeper.renew
                )
        except (_LeaseLost, AttachLeaseLost):
            return self._lost(item, "before writing to Jira")
        except TrackerRetryable as exc:
            return self._failed_attempt(item, fence, job, exc, exc.retry_after)
        except TrackerRejected as exc:
            logger.error(
                "Jira rejected filing %s (%s): %s fields=%s",
                item.key,
                job.kind,
                exc,
                sorted(exc.fields),
            )
            if exc.fields and self.on_field_rejected is not None:
                self.on_field_rejected(self.project_for(job))
            if not self._record(fence, job, item="finish", state="failed", error=str(exc)):
                return self._lost(item, "after Jira rejected it")
            result = FilingResult("rejected", message=str(exc), fields=dict(exc.fields))
            self._notify(job, result)
            return result
        except Exception as exc:
            logger.exception("unexpected error filing %s; will retry", item.key)
            return self._failed_attempt(item, fence, job, exc, None)
        state = "commented" if result.status == "commented" else "filed"
        # A lost lease (the heartbeat's renewal failed: another worker took the item) makes
        # this fenced write fail too; the taker finds the issue by its marker.
        recorded = not keeper.lost and self._record(
            fence,
            job,
            item="finish",
            state=state,
            issue_key=result.key,
            issue_url=result.url,
            error=None,
        )
        if not recorded:
            # The next holder of the item searches the marker and records this key itself.
            return self._lost(item, f"after Jira answered {result.key}")
        # Indexing after the key is recorded: a slow index must not keep an issue that exists in
        # Jira unrecorded (and the lease running out) while it works.
        for issue_created, issue in created:
            self._index(issue_created, issue)
        self._notify(job, result)
        return result

    def _record(
        self, fence: Fence, job: FilingJob, item: ItemStep = "keep", **fields: object
    ) -> bool:
        return self.store.update_filing_fenced(fence, job.channel, job.ts, item=item, **fields)

    def _lost(self, item: OutboxItem, when: str) -> FilingResult:
        # Someone else holds the item now (this worker overran its lease): it is theirs to record
        # and to tell. Saying anything here could contradict them.
        logger.warning("filing %s: lease on outbox item %d lost %s", item.key, item.id, when)
        return FilingResult("in_progress")

    def _attempt(
        self,
        job: FilingJob,
        searched: bool,
        created: list[tuple[CreatedIssue, NewIssue]],
        still_ours: Callable[[], bool],
    ) -> FilingResult:
        assert self.tracker is not None
        body = IssueText(
            summary=job.summary,
            original=slack_unescape(job.text),
            permalink=job.permalink,
            author=job.author_name or job.author,
            trace_id=job.trace_id,
            images=image_names(job.files) if self._attaches else (),
            thread=job.thread,
        )
        marker = self.marker(job.channel, job.ts)
        if job.comment_on:
            key = job.comment_on
            # A comment whose answer was lost may be there already: it carries the marker.
            if not (searched and self._comment_found(key, marker)):
                _check(still_ours)
                self.tracker.add_comment(
                    NewComment(key=key, body=body, link_url=job.permalink, marker=marker)
                )
            else:
                logger.info(
                    "filing %s: found the comment on %s from an earlier attempt", job.key, key
                )
            return FilingResult("commented", key=key, url=self.tracker.browse_url(key))
        project = self.project_for(job)
        route = self._route(project)
        if searched:
            found = self._find_marker(project, marker)
            if found is not None:
                logger.info("filing %s: found %s from an earlier attempt", job.key, found.key)
                # The earlier attempt may have stopped before (or while) attaching the files.
                self._attach(job, found.key, still_ours)
                return FilingResult("filed", key=found.key, url=found.url)
        own = [x for x in (clean_label(x) for x in (*route.labels, *job.extra_labels)) if x]
        issue = NewIssue(
            project=project,
            summary=job.title or job.text,
            body=body,
            issue_type=job.issue_type or route.issue_type(job.kind, self.issue_types),
            labels=tuple(dict.fromkeys((*self.labels.filter(job.labels), *own, "ideabot"))),
            components=route.components,
            marker=marker,
            reporter_email=job.author_email,
            link_url=job.permalink,
            link_title="Slack thread",
            fields=job.fields,
            assignee_email=job.assignee_email,
            assignee_name=job.assignee_name,
        )
        # People (reporter, assignee, user fields) are looked up before the lease is renewed,
        # so the write after it stays within JIRA_REQUESTS_PER_WRITE requests.
        warm = getattr(self.tracker, "find_people", None)
        if callable(warm):
            warm(issue)
        _check(still_ours)
        new = self.tracker.create_issue(issue)
        created.append((new, issue))
        with log_context(jira_key=new.key):
            logger.info("filing %s: filed as %s", job.key, new.key)
        self._attach(job, new.key, still_ours)
        return FilingResult("filed", key=new.key, url=new.url)

    @property
    def _attaches(self) -> bool:
        return (
            self.files is not None
            and self.attachments is not None
            and self.attachment_policy.enabled
        )

    def _attach(self, job: FilingJob, key: str, still_ours: Callable[[], bool]) -> None:
        if job.files and self._attaches:
            assert self.files is not None and self.attachments is not None
            attach_files(job, key, self.files, self.attachments, self.attachment_policy, still_ours)

    def _find_marker(self, project: str, marker: str) -> CreatedIssue | None:
        assert self.tracker is not None
        try:
            return self.tracker.find_by_marker(project, marker)
        except TrackerRejected as exc:
            # Not knowing is no reason to stop filing; the marker still lets people find it.
            logger.warning("could not search Jira for marker %s: %s", marker, exc)
            return None

    def _comment_found(self, key: str, marker: str) -> bool:
        assert self.tracker is not None
        try:
            return self.tracker.find_comment_marker(key, marker)
        except TrackerRejected as exc:
            # The comment itself will be refused too if the issue is gone; else comment.
            logger.warning("could not read the comments of %s: %s", key, exc)
            return False

    def _index(self, created: CreatedIssue, issue: NewIssue) -> None:
        if self.index is None:
            return
        ticket = Ticket(
            key=created.key,
            title=issue.summary,
            description=f"{issue.body.summary}\n{issue.body.original}".strip(),
            type=issue.issue_type,
            url=created.url,
            project=issue.project,
        )
        try:
            self.index.upsert([ticket])
        except Exception:
            logger.warning("could not index the new issue %s", created.key, exc_info=True)

    def _failed_attempt(
        self,
        item: OutboxItem,
        fence: Fence,
        job: FilingJob,
        exc: Exception,
        retry_after: float | None,
    ) -> FilingResult:
        now = self.clock()
        attempts = item.attempts + 1
        age = now - item.created if item.created is not None else timedelta(0)
        if self.limits.exhausted(attempts, age):
            return self._give_up(item, fence, job, exc, attempts, age)
        wait = self.backoff.delay(item.attempts, retry_after, self.rng)
        if isinstance(exc, TrackerRetryable) and exc.ambiguous:
            # Jira may have created the issue without us hearing back. The retry searches for
            # its marker, and Jira Cloud's search lags behind writes: give it time.
            wait = max(wait, AMBIGUOUS_RETRY_SECONDS)
        at = now + timedelta(seconds=wait)
        error = f"{type(exc).__name__}: {exc}"
        if not self._record(fence, job, item=RetryAt(at, error), state="queued", error=str(exc)):
            return self._lost(item, "after a failed attempt")
        logger.warning(
            "Jira unavailable for %s (attempt %d): %s; retrying in %.1fs",
            item.key,
            attempts,
            exc,
            wait,
        )
        result = FilingResult("queued", retry_at=at)
        if item.attempts == 0:
            self._notify(job, result)
        return result

    def _give_up(
        self,
        item: OutboxItem,
        fence: Fence,
        job: FilingJob,
        exc: Exception,
        attempts: int,
        age: timedelta,
    ) -> FilingResult:
        error = f"{type(exc).__name__}: {exc}"
        if not self._record(fence, job, item="finish", state="failed", error=error):
            return self._lost(item, "when giving up")
        # For the operator: the outbox item (kept DONE_OUTBOX_KEEP) and why it kept failing.
        logger.error(
            "giving up on filing %s: outbox item %d failed %d attempts over %s; last error: %s",
            item.key,
            item.id,
            attempts,
            age,
            error,
        )
        result = FilingResult("failed", message=str(exc))
        self._notify(job, result)
        return result

    def _notify(self, job: FilingJob, result: FilingResult) -> None:
        audit(
            AUDIT_FILING,
            f"{job.key}:{result.status}",
            {
                "channel": job.channel,
                "ts": job.ts,
                "status": result.status,
                "key": result.key,
                "kind": job.kind,
                "comment_on": job.comment_on,
            },
            trace_id=job.trace_id,
            now=self.clock(),
            by=self.owner,
        )
        if result.status == "rejected" and not _TELL_REJECTION.get():
            return
        try:
            self.notifier.filing_outcome(job, result)
        except Exception:
            logger.exception("could not report filing %s to Slack", job.key)

    def run_due(self, now: datetime | None = None, limit: int = 10) -> int:
        """Processes the outbox items due at *now*; returns how many were attempted."""
        started = self.clock()
        now = now or started
        done = 0
        for due in self.store.due(now, limit=limit):
            if due.topic != TOPIC:
                continue
            # Each lease starts when its item is taken, not when the pass began: after a few
            # slow items, a lease counted from the pass's start would be nearly over already.
            taken = now + (self.clock() - started)
            token = self.store.lease(due.id, taken + self.lease, now=taken)
            if token is None:
                continue
            # Read again under the lease: another worker may have tried it since ``due``.
            item = self.store.get_item(due.id)
            if item is None:
                continue
            try:
                self.process(item, token)
            except Exception:
                # The store failed under us: the lease runs out and the item is tried again.
                # The other items of the pass need not wait for that.
                logger.exception("outbox item %d (%s) could not be processed", item.id, item.key)
            done += 1
        self._outbox_gauges()
        return done

    def _outbox_gauges(self) -> None:
        try:
            waiting = [i for i in self.store.pending() if i.topic == TOPIC]
        except Exception:  # a gauge must never stop the worker
            logger.debug("could not read the outbox for its gauges", exc_info=True)
            return
        self.metrics.set_gauge(OUTBOX_DEPTH, float(len(waiting)), topic=TOPIC)
        oldest = min((i.created for i in waiting if i.created is not None), default=None)
        self.metrics.set_since(OUTBOX_OLDEST_AGE, oldest, topic=TOPIC)


class _LeaseLost(Exception):
    """The lease was taken over before this worker wrote to Jira."""


def _check(still_ours: Callable[[], bool]) -> None:
    # Right before the write that cannot be taken back: a worker that stalled (after its
    # marker search, say) past its lease must not create next to the one that took over.
    if not still_ours():
        raise _LeaseLost


def _settled(filing: Filing | None) -> FilingResult | None:
    if filing is None:
        return None
    if filing.state in ("filed", "commented") and filing.issue_key:
        return FilingResult("already", key=filing.issue_key, url=filing.issue_url)
    if filing.state in ("claimed", "queued"):
        return FilingResult("in_progress")
    return None


def _trace_of(item: OutboxItem) -> str | None:
    """The trace id an outbox item's work logs under (None when its payload is unreadable)."""
    try:
        return read_outbox(item.payload, item.topic).trace_id
    except ValueError:
        return None
