"""AWS Lambda entry point: ``bot.lambda_handler.handler``.

One function serves two kinds of invocation:

* Slack's requests through the function URL (payload format 2.0). Bolt's AWS Lambda adapter
  acknowledges within Slack's 3 seconds and starts each listener's work as a *lazy listener*: an
  asynchronous invocation of this same function that runs the use case (``bot.slack.lazy``).
* Scheduled jobs from EventBridge Scheduler (``template.yaml``): an event
  ``{"source": "aws.events", "detail": {"job": JOB}}`` with JOB one of :data:`JOBS`:
  the two digests, the incremental Jira sync, and ``outbox``, the pass over due filings that the
  server's outbox worker thread makes (a Lambda has no thread left running between
  invocations, so retries of failed filings need this schedule). A digest may name its day with
  ``"date": "YYYY-MM-DD"`` in the detail (to re-run one by hand).

The use cases are built once per container, on the first invocation, and reused while the
container lives (:func:`runtime`). State lives outside the function: PostgreSQL (DATABASE_URL)
and Pinecone; the function's disk is temporary and not shared, so both are required here.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import date
from typing import Any, cast

from bot.bootstrap import Bot
from bot.config import ConfigError, Settings
from bot.domain.digests import DigestKind
from bot.service.app_home import AppHome
from bot.service.edit_post import EditPost
from bot.service.engagement import RecordEngagement
from bot.service.file_message import FileMessage
from bot.service.receive_post import ReceivePost
from bot.service.thread_comments import ThreadComments
from bot.slack.lazy import Deferred, LazyFailures, build_lazy_app

logger = logging.getLogger(__name__)

JOBS = ("meetings", "takeaways", "sync-jira", "outbox")
# The outbox job stops starting new filings when less than this is left of the invocation.
OUTBOX_RESERVE_MS = 30_000


class JobFailed(RuntimeError):
    """A scheduled job did not do its work; the invocation fails so the scheduler retries."""


class LazyListenerFailed(RuntimeError):
    """A lazy listener raised; the invocation fails so Lambda retries the asynchronous call."""


def check_lambda_settings(settings: Settings) -> None:
    """Refuses settings that lose state on Lambda; raises ConfigError naming the variable."""
    if not settings.database_url or settings.sqlalchemy_url.startswith("sqlite"):
        raise ConfigError(
            "DATABASE_URL: required on AWS Lambda, a PostgreSQL URL (the function's disk is "
            "temporary and each concurrent instance has its own)"
        )
    if not settings.pinecone_configured:
        raise ConfigError(
            "PINECONE_API_KEY: required on AWS Lambda (a local index would live in one "
            "instance's temporary disk)"
        )
    if settings.slack_bot_token is None:
        raise ConfigError("SLACK_BOT_TOKEN: required on AWS Lambda")
    if settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET: required on AWS Lambda")


def scheduled_job(event: Any) -> str | None:
    """The job a scheduled event asks for, or None for any other event.

    Raises ValueError for a scheduled event without a known job (a template mistake).
    """
    if not isinstance(event, dict) or event.get("source") != "aws.events":
        return None
    detail = event.get("detail")
    job = detail.get("job") if isinstance(detail, dict) else None
    if job not in JOBS:
        raise ValueError(f"scheduled event without a known job (detail.job {job!r}; one of {JOBS})")
    return str(job)


def _remaining_ms(context: Any) -> int | None:
    get = getattr(context, "get_remaining_time_in_millis", None)
    return int(get()) if callable(get) else None


class LambdaRuntime:
    """The Bolt app and the use cases of one Lambda container.

    The Bolt app is built at once; the use cases (*build_bot*: database, index, models) only
    when a lazy part or a job first needs them, so a new container acknowledges Slack without
    waiting for them. *lambda_client* (anything with boto3's ``invoke``) starts the lazy
    listeners; None: boto3's, which Bolt creates on first use. Tests pass one that runs the
    invocation in process.
    """

    def __init__(
        self,
        settings: Settings,
        build_bot: Callable[[], Bot],
        *,
        slack_client: Any,
        lambda_client: Any = None,
    ) -> None:
        # Imported here: the adapter imports boto3, which only this entry point needs.
        from slack_bolt.adapter.aws_lambda import SlackRequestHandler

        self.settings = settings
        self._build_bot = build_bot
        self._bot: Bot | None = None
        self._bot_lock = threading.Lock()
        self.failures = LazyFailures()
        self.app = build_lazy_app(
            settings,
            slack_client,
            cast(ReceivePost, Deferred(lambda: self.bot.receive_post)),
            cast(FileMessage, Deferred(lambda: self.bot.file_message)),
            self.failures,
            edit_post=cast(EditPost, Deferred(lambda: self.bot.edit_post)),
            engagement=cast(RecordEngagement, Deferred(lambda: self.bot.engagement)),
            thread_comments=cast(ThreadComments, Deferred(lambda: self.bot.thread_comments)),
            app_home=cast(AppHome, Deferred(lambda: self.bot.app_home)),
        )
        self.slack = SlackRequestHandler(self.app)
        if lambda_client is not None:
            self.app.listener_runner.lazy_listener_runner.lambda_client = lambda_client  # type: ignore[attr-defined]

    @classmethod
    def for_bot(cls, bot: Bot, *, lambda_client: Any = None) -> LambdaRuntime:
        """A runtime around use cases already built (tests, benchmarks)."""
        return cls(
            bot.settings,
            lambda: bot,
            slack_client=bot.adapters.slack_client,
            lambda_client=lambda_client,
        )

    @property
    def bot(self) -> Bot:
        """The use cases, built on first use and kept while the container lives."""
        if self._bot is None:
            with self._bot_lock:
                if self._bot is None:
                    self._bot = self._build_bot()
        return self._bot

    @property
    def bot_built(self) -> bool:
        return self._bot is not None

    def handle(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        """Routes one invocation: a scheduled job, else an HTTP request from Slack."""
        job = scheduled_job(event)
        if job is not None:
            summary = self.run_job(job, event.get("detail") or {}, context)
            logger.info("scheduled job %s: %s", job, summary)
            return summary
        self.failures.reset()
        response: dict[str, Any] = self.slack.handle(event, context)
        if self.failures.errors:
            # Only a lazy invocation gets here (an ack part never raises into this list).
            raise LazyListenerFailed(f"{len(self.failures.errors)} lazy listener(s) failed")
        return response

    # ------------------------------------------------------------------ scheduled jobs

    def run_job(self, job: str, detail: dict[str, Any], context: Any = None) -> dict[str, Any]:
        """Runs one scheduled job; returns a summary, raises JobFailed when it must be retried."""
        if job in ("meetings", "takeaways"):
            day = date.fromisoformat(str(detail["date"])) if detail.get("date") else None
            return self._digest(job, day)
        if job == "sync-jira":
            if self.bot.sync is None:
                logger.info("sync-jira: Jira is not configured; nothing to do")
                return {"job": job, "status": "skipped"}
            result = self.bot.sync.sync()
            return {"job": job, "status": "done", "seen": result.seen, "upserted": result.upserted}
        return self._outbox(context)

    def _digest(self, kind: str, day: date | None) -> dict[str, Any]:
        channel = self.bot.settings.digest_channel
        if not channel:
            logger.info("%s digest: DIGEST_CHANNEL is not set; nothing to post", kind)
            return {"job": kind, "status": "skipped"}
        if kind == "meetings" and self.bot.digests.calendar is None:
            # As in the server: without a calendar a daily "no meetings" post is only noise.
            logger.info("meetings digest: MEETINGS_ICS is not set; nothing to post")
            return {"job": kind, "status": "skipped"}
        result = self.bot.digests.run(cast(DigestKind, kind), channel, day)
        summary = {"job": kind, "status": result.status, "day": result.day.isoformat()}
        if result.status == "failed":
            # The claim makes a retry safe: it posts once, or finds the post that got out.
            raise JobFailed(f"{kind} digest for {result.day} failed: {result.error}")
        return summary

    def _outbox(self, context: Any) -> dict[str, Any]:
        attempted = 0
        while True:
            left = _remaining_ms(context)
            if left is not None and left < OUTBOX_RESERVE_MS:
                break
            done = self.bot.filer.run_due()
            attempted += done
            if done == 0:
                break
        return {"job": "outbox", "status": "done", "attempted": attempted}


# --------------------------------------------------------------------------- the entry point

_runtime: LambdaRuntime | None = None
_lock = threading.Lock()


def build_runtime(settings: Settings | None = None) -> LambdaRuntime:
    """What a new container sets up outside the handler: settings (from the environment, checked
    for Lambda), the Slack client, the Bolt app and the boto3 Lambda client.

    The use cases come later, from ``bootstrap`` on first use (:class:`LambdaRuntime`); their
    network at set-up is the database's schema check and, when IDEA_CHANNELS names channels
    rather than ids, Slack's channel list. Jira's issue types are checked by ``doctor``, not on
    every cold start. The embedding model loads on first use in a lazy part.
    """
    from bot.bootstrap import bootstrap, build_slack_client
    from bot.config import load_settings

    settings = settings or load_settings()
    logging.getLogger().setLevel(settings.log_level)
    check_lambda_settings(settings)
    slack_client = build_slack_client(settings)

    def build_bot() -> Bot:
        bot = bootstrap(settings, slack_client=slack_client)
        if bot.adapters.chat is not None:
            bot.channels.resolve(bot.adapters.chat)
        return bot

    import boto3

    # Made here rather than by Bolt on the first lazy start, which would put it inside the first
    # ack. The runtime provides boto3, the region and the role's credentials.
    return LambdaRuntime(
        settings, build_bot, slack_client=slack_client, lambda_client=boto3.client("lambda")
    )


def runtime() -> LambdaRuntime:
    """This container's runtime, built on first use and kept while the container lives."""
    global _runtime
    if _runtime is None:
        with _lock:
            if _runtime is None:
                _runtime = build_runtime()
    return _runtime


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """The Lambda handler (``bot.lambda_handler.handler`` in template.yaml)."""
    try:
        return runtime().handle(event, context)
    except ConfigError as exc:
        # One line in the log, like the command line's exit 2, rather than a traceback.
        logger.error("configuration error: %s", exc)
        raise
