"""The Bolt app for function-as-a-service hosts (AWS Lambda): every listener runs lazily.

On Lambda nothing may run after the HTTP response, so Bolt runs with
``process_before_response=True`` and each listener is split in two: an ack part that only
acknowledges (well inside Slack's 3 seconds) and a *lazy* part, Bolt's lazy listener, that Bolt
starts as a separate asynchronous invocation of the same function and that does the work.

The listeners are the same modules as in HTTP and Socket Mode (``bot.slack.listeners``): they
register on a :class:`LazyRegistrar` standing in for the App, which turns each one into the lazy
part of a listener whose ack part is :func:`acknowledge`. So a listener written for the server
works here unchanged, as long as its acknowledgement carries no content (none of ours does; a
modal's ``response_action`` would need its own ack function).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from typing import Any

from slack_bolt import App

from bot.config import ConfigError, Settings
from bot.service.app_home import AppHome
from bot.service.edit_post import EditPost
from bot.service.engagement import RecordEngagement
from bot.service.file_message import FileMessage
from bot.service.receive_post import ReceivePost
from bot.service.thread_comments import ThreadComments
from bot.slack.listeners import register_listeners
from bot.slack.listeners.guard import PayloadGuard

logger = logging.getLogger(__name__)

# The App methods that register listeners; each returns a decorator.
LISTENER_METHODS = frozenset(
    {
        "event",
        "message",
        "command",
        "shortcut",
        "global_shortcut",
        "message_shortcut",
        "action",
        "block_action",
        "attachment_action",
        "view",
        "view_submission",
        "view_closed",
        "options",
    }
)


def acknowledge(ack: Any) -> None:
    """The ack part of every lazy listener: an empty acknowledgement, nothing else."""
    ack()


class LazyFailures:
    """Whether a lazy part failed in this invocation (Bolt logs and swallows the exception).

    The Lambda handler turns a failure into a failed invocation, so that Lambda retries the
    asynchronous invocation instead of dropping the work.
    """

    def __init__(self) -> None:
        self._local = threading.local()

    def reset(self) -> None:
        self._local.errors = []

    def add(self, error: BaseException) -> None:
        if not hasattr(self._local, "errors"):
            self.reset()
        self._local.errors.append(error)

    @property
    def errors(self) -> list[BaseException]:
        return list(getattr(self._local, "errors", []))


class LazyRegistrar:
    """Stands in for a Bolt App while listeners register: each becomes a lazy listener.

    Anything else (``app.use``, ``app.error``, ``app.client``) is passed to the real App.
    """

    def __init__(self, app: App, failures: LazyFailures) -> None:
        self._app = app
        self._failures = failures

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._app, name)
        if name not in LISTENER_METHODS:
            return attr

        def method(*args: Any, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
            register = attr(*args, **kwargs)

            def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
                register(ack=acknowledge, lazy=[self._recording(fn)])
                return fn

            return decorator

        return method

    def _recording(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        # functools.wraps keeps the name (Bolt finds the lazy part again by it) and the
        # signature (Bolt injects arguments by their names).
        @functools.wraps(fn)
        def lazy(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                logger.error(
                    "lazy listener %s failed: %s: %s",
                    fn.__name__,
                    type(exc).__name__,
                    str(exc)[:300],
                    exc_info=(type(exc), exc, exc.__traceback__),
                )
                self._failures.add(exc)
                raise

        return lazy


class Deferred:
    """Stands for an object that is built on first use (on Lambda: the use cases).

    Calls and attribute reads go to ``get()``'s result. The ack parts never touch it, so the
    first acknowledgement of a new container does not wait for the database or the models.
    """

    def __init__(self, get: Callable[[], Any]) -> None:
        self._get = get

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._get()(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


def build_lazy_app(
    settings: Settings,
    slack_client: Any,
    receive_post: ReceivePost,
    file_message: FileMessage,
    failures: LazyFailures | None = None,
    edit_post: EditPost | None = None,
    engagement: RecordEngagement | None = None,
    thread_comments: ThreadComments | None = None,
    app_home: AppHome | None = None,
) -> App:
    """The Bolt app with every listener lazy (``process_before_response=True``): the same
    listeners and payload guard as ``bot.slack.app.build_app``, so Lambda behaves like ``serve``.

    The use cases may be :class:`Deferred`: only the lazy parts call them.
    Raises ConfigError without a Slack client or a signing secret (a function URL is HTTP).
    """
    if slack_client is None:
        raise ConfigError("SLACK_BOT_TOKEN: required to run the Slack bot")
    if settings.slack_signing_secret is None:
        raise ConfigError("SLACK_SIGNING_SECRET: required on AWS Lambda (Slack calls over HTTP)")
    app = App(
        # Named: without a name Bolt calls inspect.stack(), a tenth of a second of cold start.
        name="ideabot",
        client=slack_client,
        signing_secret=settings.slack_signing_secret.get_secret_value(),
        # auth.test is made once per container, by the first request's authorization step.
        token_verification_enabled=False,
        process_before_response=True,
        # After the signature check, before anything reads the payload: odd shapes answer 200.
        before_authorize=PayloadGuard(),
    )

    @app.error
    def on_error(error: Exception, body: dict[str, Any]) -> None:
        # The body carries user text: log only what identifies the request.
        kind = body.get("type") if isinstance(body, dict) else None
        logger.error("ack failed for %s: %s: %s", kind, type(error).__name__, str(error)[:300])

    register_listeners(
        LazyRegistrar(app, failures or LazyFailures()),
        receive_post,
        file_message,
        edit_post,
        engagement,
        thread_comments=thread_comments,
        app_home=app_home,
    )
    return app
