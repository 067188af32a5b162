"""Running a digest exactly once: claim the (digest, channel, day) key, build, post, record.

The store's unique key decides who posts, so two processes, a restart catch-up and a manual run
can all try the same slot and only one message appears. A failed post releases the claim so the
next attempt (a retry, the operator) can post it.

A run that dies between claiming and recording leaves a claim behind. Every digest carries its
key as message metadata, and a later run that finds a claim older than ``stale_claim`` takes it
over (one winner) and first looks for the tagged message in the channel: there -> recorded, not
posted again; not there -> posted.

Claims are fenced: each run claims with a token of its own, and a takeover replaces it. A run
that was merely slow (a slow model writing the takeaways, a stalled process) can have lost its
claim that way, so right before posting it renews the claim, which succeeds only while the token
is still the claim's; recording the post is conditional on it too. What is left: a post call
that outlasts ``stale_claim`` from that renewal, while another run takes over and, not yet seeing
the message in the channel's history, posts as well. Slack's post call ends long before (the
client's timeout and retries), and the taker's history lookup usually sees the first message.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo

from bot.domain.audit import DIGEST as AUDIT_DIGEST
from bot.domain.audit import audit
from bot.domain.digests import (
    DIGEST_KINDS,
    TOP_N,
    WANTED_DAYS,
    DigestKind,
    MeetingDigest,
    TakeawayDigest,
    build_meeting_digest,
    build_takeaway_digest,
    local_day_bounds,
    meeting_prompt_variables,
    plain_meeting_overview,
    takeaway_prompt_variables,
)
from bot.domain.envelope import Envelope, derived_id, new_id
from bot.domain.events import digest_claim_event, digest_slot, message_event
from bot.domain.flags import AllOn, FlagKey, Flags
from bot.domain.metrics import DIGEST_RUNS, Metrics, NullMetrics
from bot.domain.notes import message_ts
from bot.domain.ports import Calendar, CalendarDay, Chat, DigestLedger, Filings, Posts, StoredPost
from bot.domain.votes import Votes
from bot.observability.context import current_context, log_context
from bot.service.channels import IdeaChannels

logger = logging.getLogger(__name__)

DIGEST_EVENT_TYPE = "ideabot_digest"
# Longer than any healthy build-and-post, short enough to recover well within the grace period.
STALE_CLAIM = timedelta(minutes=5)

Status = Literal["posted", "already_posted", "in_progress", "dry_run", "failed", "skipped"]


@dataclass(frozen=True)
class Rendered:
    """A digest ready to post: notification text, Block Kit blocks, and terminal text."""

    summary: str
    blocks: list[dict[str, Any]]
    text: str


@dataclass(frozen=True)
class DigestResult:
    """What one run did. ``status`` is the outcome; ``rendered`` is set when it was built."""

    status: Status
    digest: str
    channel: str
    day: date
    message_ts: str | None = None
    rendered: Rendered | None = None
    failed_feeds: tuple[str, ...] = ()
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in {"posted", "already_posted", "dry_run"}


# The feature flag that switches each digest off (``bot.domain.flags``).
DIGEST_FLAGS: dict[str, FlagKey] = {"meetings": "meeting-digest", "takeaways": "takeaway-digest"}


def digest_key(kind: str, channel: str, day: date) -> str:
    """The exactly-once key of one digest, also carried in the posted message's metadata."""
    return digest_slot(kind, channel, day)


MeetingRenderer = Callable[[MeetingDigest], Rendered]
TakeawayRenderer = Callable[[TakeawayDigest], Rendered]
# (prompt name, variables) -> text, or None when no model is configured / the call failed.
TextWriter = Callable[[str, dict[str, str]], str | None]


class DigestStore(Posts, Filings, DigestLedger, Votes, Protocol):
    """The part of the store the digests need."""


@dataclass
class DigestService:
    """Builds and posts the two digests. Every dependency is a port or a plain callable."""

    store: DigestStore
    chat: Chat | None
    calendar: Calendar | None
    tz: str
    workday: tuple[time, time]
    render_meetings: MeetingRenderer
    render_takeaways: TakeawayRenderer
    idea_channels: IdeaChannels = field(default_factory=lambda: IdeaChannels(()))
    write: TextWriter | None = None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    stale_claim: timedelta = STALE_CLAIM
    metrics: Metrics = field(default_factory=NullMetrics)
    flags: Flags = field(default_factory=AllOn)
    owner: str = "ideabot"  # published_by of its claims

    # ------------------------------------------------------------------ building

    def build_meetings(self, day: date) -> MeetingDigest:
        """The meeting digest model for *day*, with overview (LLM when available)."""
        cal_day = (
            self.calendar.meetings_on(day)
            if self.calendar is not None
            else CalendarDay(meetings=[], failed_feeds=[])
        )
        d = build_meeting_digest(day, cal_day, self.tz, self.workday)
        overview, source = plain_meeting_overview(d), "offline"
        text = self._write("meetings", meeting_prompt_variables(d))
        if text:
            overview, source = text, "llm"
        return replace(d, overview=overview, overview_source=source)

    def build_takeaways(self, day: date, channel: str) -> TakeawayDigest:
        """The takeaway digest model for *day* as seen from digest *channel*."""
        start, end = local_day_bounds(day, self.tz)
        # No IDEA_CHANNELS: every post the bot stored counts. Otherwise only the resolved ids.
        channels = sorted(self.idea_channels.ids) if self.idea_channels.configured else None
        posts = self.store.posts_between(start, end, channels)
        filings = self.store.filings_between(start, end)
        known = {(p.channel, p.ts): p for p in posts}
        filing_posts: dict[tuple[str, str], StoredPost] = {}
        unknown_channels: set[str] = set()
        for f in filings:
            ts = message_ts(f.ts)  # an idea of a notes post: its message's ts
            if (f.channel, ts) in known:
                continue
            post = self.store.get_post(f.channel, ts)
            if post is not None:
                filing_posts[(f.channel, ts)] = post
            elif f.channel != channel:
                unknown_channels.add(f.channel)
        private = {c for c in unknown_channels if self._is_private(c)}
        wanted = self.store.top_voted(
            start - timedelta(days=WANTED_DAYS - 1), TOP_N * 4, until=end, channels=channels
        )
        d = build_takeaway_digest(
            day,
            self.tz,
            channel,
            posts,
            filings,
            filing_posts,
            private_channels=private,
            wanted=wanted,
        )
        if d.total:
            text = self._write("takeaways", takeaway_prompt_variables(d, posts, channel))
            if text:
                d = replace(d, takeaways=text, takeaways_source="llm")
        return d

    def render(self, kind: DigestKind, channel: str, day: date) -> Rendered:
        """Builds and renders *kind* for (*channel*, *day*) without touching the claim."""
        if kind == "meetings":
            return self.render_meetings(self.build_meetings(day))
        return self.render_takeaways(self.build_takeaways(day, channel))

    # ------------------------------------------------------------------ running

    def today(self, now: datetime | None = None) -> date:
        """The current date in the digest time zone."""
        return (now or self.clock()).astimezone(ZoneInfo(self.tz)).date()

    def run(
        self,
        kind: DigestKind,
        channel: str,
        day: date | None = None,
        dry_run: bool = False,
        force: bool = False,
        now: datetime | None = None,
    ) -> DigestResult:
        """Builds and posts one digest at most once per (kind, channel, day).

        ``dry_run`` builds and renders only: nothing is claimed or posted. ``force`` posts again
        even when the key says it was already posted.
        """
        try:
            # One trace per run (a scheduled run has no Slack event to take one from): its logs,
            # its claim and its message's metadata all carry it.
            with log_context(trace_id=None if self._trace() else new_id()):
                result = self._run(kind, channel, day, dry_run, force, now)
        except Exception:
            self.metrics.inc(DIGEST_RUNS, digest=str(kind), outcome="failed")
            raise
        self.metrics.inc(DIGEST_RUNS, digest=str(kind), outcome=result.status)
        return result

    def _run(
        self,
        kind: DigestKind,
        channel: str,
        day: date | None,
        dry_run: bool,
        force: bool,
        now: datetime | None,
    ) -> DigestResult:
        if kind not in DIGEST_KINDS:
            raise ValueError(f"unknown digest {kind!r}")
        day = day or self.today(now)
        if dry_run:
            rendered = self.render(kind, channel, day)
            return DigestResult("dry_run", kind, channel, day, rendered=rendered)
        if self.chat is None:
            return DigestResult("failed", kind, channel, day, error="Slack is not configured")
        flag = DIGEST_FLAGS[kind]
        # Asked on every run, not at start: flipping the flag takes effect from the next slot.
        if not self.flags.enabled(flag, channel):
            logger.info("%s digest for %s in %s skipped: flag %s is off", kind, day, channel, flag)
            return DigestResult("skipped", kind, channel, day, error=f"flag {flag} is off")

        if not force:
            record = self.store.get_digest(kind, channel, day)
            if record is not None and record.state == "posted":
                return DigestResult("already_posted", kind, channel, day, record.message_ts)
        token = uuid.uuid4().hex  # this run's own: a takeover replaces it (fencing)
        claim = self._claim_event(kind, channel, day).to_dict()
        if not self.store.claim_digest(kind, channel, day, force=force, token=token, extra=claim):
            record = self.store.get_digest(kind, channel, day)
            if record is not None and record.state == "posted":
                return DigestResult("already_posted", kind, channel, day, record.message_ts)
            if self.store.claim_digest(
                kind, channel, day, stale_after=self.stale_claim, token=token, extra=claim
            ):
                return self._recover(kind, channel, day, token)
            logger.info("digest %s %s %s is being posted by another worker", kind, channel, day)
            return DigestResult("in_progress", kind, channel, day)
        return self._post(kind, channel, day, token)

    def _recover(self, kind: DigestKind, channel: str, day: date, token: str) -> DigestResult:
        """We took over an abandoned claim: record its message if it got out, else post."""
        logger.info("digest %s %s %s: taking over an abandoned claim", kind, channel, day)
        try:
            ts = self._find_posted(kind, channel, day)
        except Exception as exc:
            # Unknown whether it was posted: keep the claim; it turns stale and is retried.
            logger.warning("digest %s %s %s: history lookup failed: %s", kind, channel, day, exc)
            return DigestResult("failed", kind, channel, day, error=_reason(exc))
        if ts is not None:
            self._mark_posted(kind, channel, day, ts, token)
            logger.info("digest %s %s %s was posted (ts %s) before a crash", kind, channel, day, ts)
            return DigestResult("already_posted", kind, channel, day, ts)
        return self._post(kind, channel, day, token)

    def _post(self, kind: DigestKind, channel: str, day: date, token: str) -> DigestResult:
        assert self.chat is not None
        try:
            rendered = self.render(kind, channel, day)
            # Building can take long enough for the claim to go stale and be taken over by a
            # run that posts it: then it is not ours to post any more.
            if not self.store.renew_digest_claim(kind, channel, day, token):
                logger.warning(
                    "digest %s %s %s: claim taken over while building; not posting",
                    kind,
                    channel,
                    day,
                )
                return DigestResult("in_progress", kind, channel, day)
            slot = digest_key(kind, channel, day)
            event = message_event(
                DIGEST_EVENT_TYPE,
                {"key": slot, "digest": kind, "channel": channel, "day": day.isoformat()},
                event_id=derived_id(DIGEST_EVENT_TYPE, slot),
                trace_id=self._trace(),
                now=self.clock(),
            )
            meta = {"event_type": DIGEST_EVENT_TYPE, "event_payload": event.to_dict()}
            ts = self.chat.post(channel, rendered.summary, blocks=rendered.blocks, metadata=meta)
        except Exception as exc:
            logger.warning(
                "digest %s for %s on %s not posted: %s", kind, channel, day, type(exc).__name__
            )
            return self._after_failed_post(kind, channel, day, exc, token)
        if not self._mark_posted(kind, channel, day, ts, token):
            # The remaining window (module docstring): the claim was taken over during the post.
            logger.error(
                "digest %s %s %s posted (ts %s) after its claim was taken over; "
                "the channel may show it twice",
                kind,
                channel,
                day,
                ts,
            )
        logger.info("digest %s posted to %s for %s (ts %s)", kind, channel, day, ts)
        audit(
            AUDIT_DIGEST,
            digest_key(kind, channel, day),
            {"digest": kind, "channel": channel, "day": day.isoformat(), "message_ts": ts},
            trace_id=self._trace(),
            now=self.clock(),
            by=self.owner,
        )
        return DigestResult("posted", kind, channel, day, ts, rendered=rendered)

    def _after_failed_post(
        self, kind: DigestKind, channel: str, day: date, exc: Exception, token: str
    ) -> DigestResult:
        """Releases the claim, unless the message may have gone out after all (a lost answer)."""
        try:
            ts = self._find_posted(kind, channel, day)
        except Exception:
            # Cannot tell: keep the claim; a later run recovers it once it is stale.
            return DigestResult("failed", kind, channel, day, error=_reason(exc))
        if ts is not None:
            self._mark_posted(kind, channel, day, ts, token)
            return DigestResult("posted", kind, channel, day, ts)
        self.store.release_digest(kind, channel, day, token=token)
        return DigestResult("failed", kind, channel, day, error=_reason(exc))

    def _find_posted(self, kind: DigestKind, channel: str, day: date) -> str | None:
        assert self.chat is not None
        start, _ = local_day_bounds(day, self.tz)
        # From the day's start, or a day back for a digest posted ahead of its day.
        oldest = min(start, self.clock() - timedelta(days=1))
        return self.chat.find_by_metadata(
            channel, DIGEST_EVENT_TYPE, digest_key(kind, channel, day), oldest.timestamp()
        )

    # ------------------------------------------------------------------ helpers

    def _trace(self) -> str | None:
        return current_context().get("trace_id")

    def _claim_event(
        self, kind: DigestKind, channel: str, day: date, message_ts: str | None = None
    ) -> Envelope:
        return digest_claim_event(
            kind,
            channel,
            day,
            now=self.clock(),
            by=self.owner,
            trace_id=self._trace(),
            message_ts=message_ts,
        )

    def _mark_posted(self, kind: DigestKind, channel: str, day: date, ts: str, token: str) -> bool:
        event = self._claim_event(kind, channel, day, message_ts=ts)
        return self.store.mark_digest_posted(
            kind, channel, day, ts, extra=event.to_dict(), token=token
        )

    def _write(self, prompt: str, variables: dict[str, str]) -> str | None:
        if self.write is None:
            return None
        try:
            text = self.write(prompt, variables)
        except Exception as exc:  # the plain digest is always a fine answer
            logger.warning("%s prompt failed, using the offline text: %s", prompt, exc)
            return None
        return text.strip() if text and text.strip() else None

    def _is_private(self, channel: str) -> bool:
        if self.chat is None:
            return True  # unknown: keep it out rather than leak it
        try:
            return self.chat.channel_is_private(channel)
        except Exception:
            return True


def _reason(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:200]}" if text else type(exc).__name__
