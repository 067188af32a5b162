"""Builds the Bolt app around the wired use cases (``bot.bootstrap.Bot``).

HTTP mode runs with ``process_before_response=False``: Bolt acknowledges events at once and runs
listeners on its thread pool, so triage and Jira never delay the 3-second ack.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App

from bot.bootstrap import Bot
from bot.config import ConfigError
from bot.slack.listeners import register_listeners
from bot.slack.listeners.guard import PayloadGuard

logger = logging.getLogger(__name__)


def build_app(bot: Bot, *, token_verification_enabled: bool = False, workers: int = 4) -> App:
    """The Bolt app for *bot*'s use cases (listeners registered, nothing started).

    *workers* listener threads: on 2 cores, 4 kept the ack p99 under 100 ms for a burst of 500
    events at concurrency 20 (8 threads starved the request threads; bench/bench_ack.py).
    Raises ConfigError without a Slack token, or without a signing secret in HTTP mode.
    """
    s = bot.settings
    if bot.receive_post is None or bot.file_message is None or bot.adapters.slack_client is None:
        raise ConfigError("SLACK_BOT_TOKEN: required to run the Slack bot")
    secret = s.slack_signing_secret.get_secret_value() if s.slack_signing_secret else None
    if not secret and not s.slack_app_token:
        raise ConfigError("SLACK_SIGNING_SECRET: required in HTTP mode")
    app = App(
        client=bot.adapters.slack_client,
        signing_secret=secret or "socket-mode-has-no-signing-secret",
        token_verification_enabled=token_verification_enabled,
        process_before_response=False,
        request_verification_enabled=bool(secret),
        listener_executor=ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ideabot"),
        # After the signature check, before anything reads the payload: odd shapes answer 200.
        before_authorize=PayloadGuard(),
    )
    _install_error_handler(app)
    register_listeners(app, bot.receive_post, bot.file_message, bot.edit_post, bot.engagement)
    return app


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
