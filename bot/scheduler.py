"""Background schedules: the digests (APScheduler 3 cron jobs in DIGEST_TIMEZONE, plus a
store-based catch-up) and the periodic Jira sync.

APScheduler's memory job store forgets missed runs across restarts and posts once *per process*,
so two things are ours: ``catch_up`` (at start, today's slot that passed within the grace period
and has no record in the store is run now) and exactly-once (every run claims the
(digest, channel, day) key in the store before posting; see ``DigestService.run``).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot.config import Settings
from bot.domain.digests import DIGEST_KINDS, DigestKind
from bot.service.run_digest import DigestResult, DigestService
from bot.service.sync_jira import JiraSync

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


# --------------------------------------------------------------------------- scheduling


def digest_time(settings: Settings, kind: DigestKind) -> time:
    """The configured local time of *kind*."""
    return settings.meeting_digest_at if kind == "meetings" else settings.takeaway_digest_at


def digest_trigger(settings: Settings, kind: DigestKind) -> CronTrigger:
    """The cron trigger of *kind*: DIGEST_DAYS at its time, in DIGEST_TIMEZONE (never local)."""
    at = digest_time(settings, kind)
    return CronTrigger(
        day_of_week=settings.digest_days,
        hour=at.hour,
        minute=at.minute,
        timezone=settings.digest_zone,
    )


class DigestScheduler:
    """Posts both digests on their cron slots, catches up after downtime, never twice.

    ``clock`` returns the current aware datetime; tests inject a fixed one.
    """

    def __init__(
        self,
        settings: Settings,
        service: DigestService,
        clock: Clock | None = None,
        channel: str | None = None,
    ) -> None:
        self.settings = settings
        self.clock: Clock = clock or _utcnow
        self.tz = self.settings.digest_zone
        self.grace = timedelta(minutes=self.settings.digest_grace_minutes)
        self.channel = channel or self.settings.digest_channel
        self.service = service
        kinds = list(DIGEST_KINDS)
        if self.service.calendar is None:
            # Without a calendar feed a daily "no meetings today" post would only be noise.
            kinds.remove("meetings")
            logger.info("MEETINGS_ICS is not set: the meeting digest is not scheduled")
        self.triggers = {k: digest_trigger(self.settings, k) for k in kinds}
        self._scheduler: BackgroundScheduler | None = None
        self._catch_up_thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def scheduler(self) -> BackgroundScheduler | None:
        """The running APScheduler instance (None before start / after shutdown)."""
        return self._scheduler

    def start(self, catch_up: bool = True) -> bool:
        """Starts the cron jobs and, in the background, the catch-up. False if nothing to do."""
        if not self.channel:
            logger.info("DIGEST_CHANNEL is not set: digests are not scheduled")
            return False
        with self._lock:
            if self._scheduler is not None:
                return True
            sched = BackgroundScheduler(timezone=self.tz)
            for kind, trigger in self.triggers.items():
                sched.add_job(
                    self.run_slot,
                    trigger=trigger,
                    args=[kind],
                    id=f"digest-{kind}",
                    name=f"{kind} digest",
                    misfire_grace_time=max(1, int(self.grace.total_seconds())),
                    coalesce=True,
                    max_instances=1,
                    replace_existing=True,
                )
            sched.start()
            self._scheduler = sched
            if catch_up:
                # In the background so that start-up (the Slack connection) is not held up.
                self._catch_up_thread = threading.Thread(
                    target=self.catch_up, name="digest-catch-up", daemon=True
                )
                self._catch_up_thread.start()
        for job in sched.get_jobs():
            logger.info("scheduled %s for %s, next %s", job.name, self.channel, job.next_run_time)
        return True

    def shutdown(self, wait: bool = True) -> None:
        """Stops the scheduler (waits for a running digest when *wait*)."""
        with self._lock:
            sched, self._scheduler = self._scheduler, None
            thread, self._catch_up_thread = self._catch_up_thread, None
        if thread is not None and wait:
            thread.join()
        if sched is not None:
            sched.shutdown(wait=wait)

    def last_slot(self, kind: DigestKind, now: datetime) -> datetime | None:
        """The latest scheduled time of *kind* at or before *now* (today or yesterday), or None."""
        local = now.astimezone(self.tz)
        trigger = self.triggers[kind]
        for day in (local.date(), local.date() - timedelta(days=1)):
            midnight = datetime.combine(day, time(0), tzinfo=self.tz)
            fire = trigger.get_next_fire_time(None, midnight)
            if fire is not None and fire.date() == day and fire <= local:
                return fire
        return None

    def due_day(self, kind: DigestKind, now: datetime) -> date | None:
        """The day whose *kind* slot may still be posted at *now* (within grace), or None."""
        slot = self.last_slot(kind, now)
        if slot is None or now - slot > self.grace:
            return None
        return slot.date()

    def run_slot(self, kind: DigestKind, now: datetime | None = None) -> DigestResult | None:
        """The cron job: posts *kind* for the slot that just passed, unless beyond grace."""
        now = now or self.clock()
        if not self.channel:
            return None
        day = self.due_day(kind, now)
        if day is None:
            logger.warning("%s digest: no slot within the grace period at %s; skipped", kind, now)
            return None
        return self._run(kind, day, now)

    def catch_up(self, now: datetime | None = None) -> list[DigestResult]:
        """Runs every slot that passed within the grace period and was not posted.

        A slot left claimed by a run that died goes through ``DigestService.run`` as well: once
        the claim is stale it is recovered (found in the channel, or posted); while it is fresh
        the answer is "in_progress" and a re-check is scheduled (see ``_run``).
        """
        now = now or self.clock()
        results: list[DigestResult] = []
        if not self.channel:
            return results
        for kind in self.triggers:
            day = self.due_day(kind, now)
            if day is None:
                continue
            record = self.service.store.get_digest(kind, self.channel, day)
            if record is not None and record.state == "posted":
                continue
            logger.info("%s digest for %s was missed or left unfinished; catching up", kind, day)
            results.append(self._run(kind, day, now))
        return results

    def recheck(
        self, kind: DigestKind, day: date, now: datetime | None = None
    ) -> DigestResult | None:
        """A scheduled second look at an unfinished slot; None once beyond the grace period."""
        now = now or self.clock()
        if not self.channel or self.due_day(kind, now) != day:
            logger.warning("%s digest for %s: unfinished and now beyond grace; given up", kind, day)
            return None
        return self._run(kind, day, now)

    def _run(self, kind: DigestKind, day: date, now: datetime) -> DigestResult:
        assert self.channel
        try:
            result = self.service.run(kind, self.channel, day, now=now)
        except Exception as exc:  # a failing digest must not kill the scheduler thread
            logger.exception("%s digest for %s failed", kind, day)
            return DigestResult("failed", kind, self.channel, day, error=type(exc).__name__)
        if result.status == "failed":
            logger.warning("%s digest for %s failed: %s", kind, day, result.error)
        if result.status in ("in_progress", "failed"):
            self._schedule_recheck(kind, day, now)
        return result

    def _schedule_recheck(self, kind: DigestKind, day: date, now: datetime) -> None:
        # Another worker's claim may belong to a process that died: look again once a claim
        # that old counts as abandoned, for as long as the slot is within its grace period.
        at = now + self.service.stale_claim + timedelta(seconds=30)
        slot = self.last_slot(kind, now)
        with self._lock:
            sched = self._scheduler
        if sched is None or slot is None or at - slot > self.grace:
            return
        sched.add_job(
            self.recheck,
            trigger="date",
            run_date=at,
            args=[kind, day],
            id=f"digest-{kind}-recheck",
            name=f"{kind} digest re-check",
            replace_existing=True,
            misfire_grace_time=max(1, int(self.grace.total_seconds())),
        )
        logger.info("%s digest for %s: re-check scheduled at %s", kind, day, at)


def start_sync_job(sync: JiraSync | None, minutes: int) -> BackgroundScheduler | None:
    """Runs the incremental Jira sync every *minutes* (first run a few seconds after start)."""
    if sync is None or minutes <= 0:
        return None
    sched = BackgroundScheduler(timezone=UTC)
    sched.add_job(
        sync.run_scheduled,
        IntervalTrigger(minutes=minutes, timezone=UTC),
        id="sync-jira",
        next_run_time=datetime.now(UTC) + timedelta(seconds=5),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=minutes * 60,
    )
    sched.start()
    logger.info("Jira sync every %d minutes", minutes)
    return sched
