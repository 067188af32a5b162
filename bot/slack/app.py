"""Builds the Bolt app around the wired use cases (``bot.bootstrap.Bot``) and the inbox workers.

Every delivery goes through the inbox (``bot.slack.inbox``): the last global middleware records
it and answers Slack at once; the inbox workers replay it through this same app, whose listeners
then run in the worker's thread (``process_before_response=True``: nothing is handed to Bolt's
own thread pool, and the worker learns whether the listener failed).
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import App

from bot.bootstrap import Bot
from bot.config import ConfigError
from bot.slack.inbox import ERROR_KEY, InboxMiddleware, replayer
from bot.slack.listeners import register_listeners
from bot.slack.listeners.guard import PayloadGuard
from bot.workers import InboxWorkers

logger = logging.getLogger(__name__)


def build_app(bot: Bot, inbox: InboxWorkers, *, token_verification_enabled: bool = False) -> App:
    """The Bolt app for *bot*'s use cases, recording deliveries in *inbox* (whose handler it
    binds to replay them here). Nothing is started.

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
        process_before_response=True,
        request_verification_enabled=bool(secret),
        # After the signature check, before anything reads the payload: odd shapes answer 200.
        before_authorize=PayloadGuard(),
    )
    _install_error_handler(app)
    app.use(InboxMiddleware(inbox, bot.adapters.metrics))
    register_listeners(
        app,
        bot.receive_post,
        bot.file_message,
        bot.edit_post,
        bot.engagement,
        thread_comments=bot.thread_comments,
        app_home=bot.app_home,
        review_filing=bot.review,
    )
    inbox.bind(replayer(app, bot.adapters.tracer))
    return app


def _install_error_handler(app: App) -> None:
    @app.error
    def on_error(error: Exception, body: dict[str, Any], context: Any) -> None:
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
        if context is not None:
            # The inbox worker replaying this event reads it to record why it failed.
            context[ERROR_KEY] = f"{type(error).__name__}: {str(error)[:300]}"
