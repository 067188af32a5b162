"""Running the bot: HTTP mode on waitress (``POST /slack/events``, ``GET /healthz``) or Socket Mode.

``serve(bot, http=..., port=...)`` is what ``python -m bot serve`` calls.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.bootstrap import Bot
from bot.config import ConfigError
from bot.scheduler import DigestScheduler, start_sync_job
from bot.slack.app import build_app
from bot.workers import OutboxWorker

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
MAX_BODY_BYTES = 2 * 1024 * 1024

StartResponse = Callable[..., Any]


class BotWsgi:
    """WSGI app: Bolt on ``/slack/events``, readiness on ``/healthz``, 404 elsewhere."""

    def __init__(self, app: App, path: str = EVENTS_PATH) -> None:
        self.bolt = SlackRequestHandler(app, path=path)
        self.path = path
        self.ready = threading.Event()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == HEALTH_PATH and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            ok = self.ready.is_set()
            body = b"ok\n" if ok else b"starting\n"
            start_response(
                "200 OK" if ok else "503 Service Unavailable",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        return self.bolt(environ, start_response)


class HttpServer:
    """A waitress server for the Bolt *app* on *host*:*port* (0 picks a free port)."""

    def __init__(
        self, app: App, host: str = "0.0.0.0", port: int = 3000, threads: int = 16
    ) -> None:
        from waitress.server import create_server

        self.wsgi = BotWsgi(app)
        self.server: Any = create_server(
            self.wsgi,
            host=host,
            port=port,
            threads=threads,
            ident="ideabot",
            # Slack's payloads are tens of KB; refusing huge bodies keeps a hostile client from
            # making the signature check read (and hash) a gigabyte.
            max_request_body_size=MAX_BODY_BYTES,
        )
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HttpServer:
        """Serves in a background thread; /healthz turns 200 once it is listening."""
        self._thread = threading.Thread(target=self._run, name="waitress", daemon=True)
        self._thread.start()
        self.wsgi.ready.set()
        return self

    def serve_forever(self) -> None:
        """Serves in the calling thread until interrupted."""
        self.wsgi.ready.set()
        self.server.run()

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:
            # Closing the listening socket under the select loop is how it stops.
            if not self._stopping.is_set():
                raise

    def stop(self) -> None:
        """Stops accepting, closes the socket and ends the worker threads."""
        self._stopping.set()
        self.wsgi.ready.clear()
        self.server.close()
        if self._thread is not None:
            self._thread.join(5)
        self.server.task_dispatcher.shutdown(timeout=5)


def serve(bot: Bot, http: bool = False, port: int = 3000, host: str = "0.0.0.0") -> None:
    """Runs the bot until interrupted: HTTP mode when *http* (or no app token), else Socket Mode.

    Runs the start-up checks, then starts the outbox worker first, so filings queued by a
    previous run resume at once, then the digest scheduler and the periodic Jira sync.
    """
    s = bot.settings
    socket_mode = not http and s.slack_app_token is not None
    if not socket_mode and s.slack_signing_secret is None:
        raise ConfigError(
            "SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    app = build_app(bot, token_verification_enabled=True)
    bot.startup()
    worker = OutboxWorker(bot.filer)
    worker.start()
    digests = DigestScheduler(s, bot.digests)
    digests.start()
    sync_job = start_sync_job(bot.sync, s.jira_sync_minutes)
    try:
        if socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            assert s.slack_app_token is not None
            logger.info("ideabot: Socket Mode")
            SocketModeHandler(app, s.slack_app_token.get_secret_value()).start()
        else:
            server = HttpServer(app, host=host, port=port)
            logger.info("ideabot: HTTP mode on port %d (%s)", server.port, EVENTS_PATH)
            server.serve_forever()
    finally:
        if sync_job is not None:
            sync_job.shutdown(wait=False)
        digests.shutdown(wait=False)
        worker.stop()
