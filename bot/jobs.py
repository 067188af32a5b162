"""Background jobs that run inside ``serve`` besides the digests: the periodic Jira sync."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.domain.sync import JiraSync
from bot.services import Services

logger = logging.getLogger(__name__)


def jira_sync_for(services: Services) -> JiraSync | None:
    """The sync service, or None when Jira is not configured."""
    project = services.settings.jira_project
    if services.tracker is None or not project:
        return None
    return JiraSync(services.tracker, services.index, services.store, project)


def run_sync(sync: JiraSync, jql: str | None) -> None:
    """One incremental sync; failures are logged and retried at the next interval."""
    try:
        sync.sync(jql=jql)
    except Exception:  # a Jira outage must not stop the bot; the next run catches up
        logger.warning("scheduled Jira sync failed; will retry at the next interval", exc_info=True)


def start_sync_job(services: Services) -> BackgroundScheduler | None:
    """Starts the periodic sync every JIRA_SYNC_MINUTES (first run a few seconds after start)."""
    minutes = services.settings.jira_sync_minutes
    sync = jira_sync_for(services)
    if sync is None or minutes <= 0:
        return None
    sched = BackgroundScheduler(timezone=UTC)
    sched.add_job(
        run_sync,
        IntervalTrigger(minutes=minutes, timezone=UTC),
        args=[sync, services.settings.jira_sync_jql],
        id="sync-jira",
        next_run_time=datetime.now(UTC) + timedelta(seconds=5),
        max_instances=1,
        coalesce=True,
        misfire_grace_time=minutes * 60,
    )
    sched.start()
    logger.info("Jira sync every %d minutes", minutes)
    return sched
