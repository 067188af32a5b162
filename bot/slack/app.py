"""Builds the Bolt app and the filing machinery around it from the wired ``Services``.

HTTP mode runs with ``process_before_response=False``: Bolt acknowledges events at once and runs
listeners on its thread pool, so triage and Jira never delay the 3-second ack.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt import App
from slack_sdk import WebClient

from bot.adapters.slack_chat import SlackChat
from bot.config import ConfigError
from bot.domain.filing import FilingService, OutboxWorker, check_issue_types
from bot.services import Services
from bot.slack.listeners import register_listeners
from bot.slack.listeners.common import Deps
from bot.slack.notifier import SlackFilingNotifier

logger = logging.getLogger(__name__)


@dataclass
class SlackBot:
    """The Bolt app plus what runs beside it (the outbox worker)."""

    app: App
    deps: Deps
    filing: FilingService
    worker: OutboxWorker

    def start_background(self) -> None:
        """Starts the outbox worker (which also picks up work left by a previous run)."""
        self.worker.start()

    def stop_background(self) -> None:
        self.worker.stop()


def validate_issue_types(services: Services) -> None:
    """Checks JIRA_ISSUE_TYPES against the project's issue types; raises ConfigError if wrong."""
    if services.tracker is None:
        return
    problems = check_issue_types(services.settings.issue_types, services.tracker.issue_types())
    if problems:
        raise ConfigError(problems[0])


def _web_client(services: Services) -> WebClient:
    client = services.slack_client
    if client is None:
        s = services.settings
        if s.slack_bot_token is None:
            raise ConfigError("SLACK_BOT_TOKEN: required to run the Slack bot")
        kwargs: dict[str, Any] = {"token": s.slack_bot_token.get_secret_value()}
        if s.slack_api_url:
            kwargs["base_url"] = s.slack_api_url.rstrip("/") + "/"
        client = WebClient(**kwargs)
        services.slack_client = client
    return client


def create_bot(
    services: Services,
    *,
    token_verification_enabled: bool = False,
    clock: Callable[[], datetime] | None = None,
    rng: Callable[[float, float], float] | None = None,
    validate: bool = True,
    poll_interval: float = 2.0,
    workers: int = 4,
) -> SlackBot:
    """Builds the Bolt app, the filing service and the outbox worker (not started).

    *workers* listener threads: on 2 cores, 4 kept the ack p99 under 100 ms for a burst of 500
    events at concurrency 20 (8 threads starved the request threads; bench/bench_ack.py).

    Raises ConfigError for a missing signing secret or a bad JIRA_ISSUE_TYPES mapping.
    """
    s = services.settings
    if validate:
        validate_issue_types(services)
    client = _web_client(services)
    chat = SlackChat(client)
    filing = FilingService(
        store=services.store,
        tracker=services.tracker,
        project=s.jira_project or "",
        issue_types=s.issue_types,
        duplicate_threshold=s.duplicate_threshold,
        index=services.index,
        notifier=SlackFilingNotifier(chat, s.filed_emoji),
        clock=clock or (lambda: datetime.now(UTC)),
        rng=rng or random.uniform,
    )
    channels = chat.resolve_channels(list(s.idea_channels)) if s.idea_channels else set()
    deps = Deps(
        settings=s,
        store=services.store,
        triage=services.triage,
        filing=filing,
        chat=chat,
        idea_channels=channels,
    )
    secret = s.slack_signing_secret.get_secret_value() if s.slack_signing_secret else None
    if not secret and not s.slack_app_token:
        raise ConfigError("SLACK_SIGNING_SECRET: required in HTTP mode")
    app = App(
        client=client,
        signing_secret=secret or "socket-mode-has-no-signing-secret",
        token_verification_enabled=token_verification_enabled,
        process_before_response=False,
        request_verification_enabled=bool(secret),
        listener_executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ideabot"),
    )
    _install_error_handler(app)
    register_listeners(app, deps)
    services.extras["filing"] = filing
    worker = OutboxWorker(filing, poll_interval=poll_interval)
    return SlackBot(app=app, deps=deps, filing=filing, worker=worker)


def build_app(services: Services, *, token_verification_enabled: bool = False, **kw: Any) -> App:
    """The Bolt app for *services* (see :func:`create_bot` for the options)."""
    return create_bot(services, token_verification_enabled=token_verification_enabled, **kw).app


def _install_error_handler(app: App) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        # The body carries user text: log only what identifies the request.
        kind = body.get("type") if isinstance(body, dict) else None
        event = (body.get("event") or {}).get("type") if isinstance(body, dict) else None
        logger.error(
            "listener failed for %s/%s: %s: %s",
            kind,
            event,
            type(error).__name__,
            str(error)[:300],
            exc_info=(type(error), error, error.__traceback__),
        )
