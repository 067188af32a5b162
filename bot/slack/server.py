"""Running the bot: HTTP mode on waitress or Socket Mode, health endpoints, graceful shutdown.

- ``POST /slack/events``: Bolt; every delivery is recorded in the inbox before it is answered
  (``bot.slack.inbox``) and processed by the inbox workers (``bot.workers``).
- ``POST /jira/webhook``: Jira's "issue updated" webhook (``bot.slack.jira_webhook``), when
  ``JIRA_WEBHOOK_SECRET`` is set.
- ``GET /healthz``: liveness, 200 while the process serves.
- ``GET /readyz``: readiness, 200 when the database and the ticket index answer (within
  ``READY_DEADLINE``) and the process is not draining; 503 with the reason otherwise.
  In Socket Mode both are served on ``HEALTH_PORT`` when it is set (``HealthServer``).

``serve(bot, http=..., port=...)`` is what ``python -m bot serve`` calls. On SIGTERM or SIGINT it
drains: readiness turns 503 at once, no new work is taken (deliveries that still arrive are
recorded for the other replicas), running work gets ``SHUTDOWN_GRACE_SECONDS`` to finish, what
is left is handed back through the inbox, and the process exits 0.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import FrameType
from typing import Any

from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler

from bot.bootstrap import Bot
from bot.config import ConfigError
from bot.scheduler import DigestScheduler, start_sync_job
from bot.slack.app import build_app
from bot.slack.jira_webhook import WEBHOOK_PATH, jira_webhook_app
from bot.workers import DEFAULT_POOLS, InboxWorkers, OutboxWorker, PoolSpec

logger = logging.getLogger(__name__)

EVENTS_PATH = "/slack/events"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"
MAX_BODY_BYTES = 2 * 1024 * 1024
READY_DEADLINE = 2.0  # seconds the readiness check may take before it counts as "not ready"

# waitress: an idle connection is closed after IDLE_TIMEOUT s (checked every CLEANUP_INTERVAL s);
# up to CONNECTION_LIMIT connections are open at once (bounded by the open-files limit). A load
# balancer in front must close idle connections sooner than IDLE_TIMEOUT (see the README).
IDLE_TIMEOUT = 15
CLEANUP_INTERVAL = 5
CONNECTION_LIMIT = 1000

StartResponse = Callable[..., Any]
Readiness = Callable[[], tuple[bool, str]]


# --------------------------------------------------------------------------- health


class ReadinessProbe:
    """Runs a readiness *check* (problems, empty when ready) with a total deadline.

    The check runs in a daemon thread, one at a time: a database that hangs makes the answer
    "not ready" after *deadline* seconds, and the next probes wait on the same hung check instead
    of piling up threads.
    """

    def __init__(self, check: Callable[[], list[str]], deadline: float = READY_DEADLINE) -> None:
        self.check = check
        self.deadline = deadline
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._done.set()
        self._result: list[str] = []

    def __call__(self) -> tuple[bool, str]:
        with self._lock:
            if self._done.is_set():
                self._done = threading.Event()
                done = self._done
                threading.Thread(target=self._run, args=(done,), daemon=True).start()
            done = self._done
        if not done.wait(self.deadline):
            return False, f"no answer within {self.deadline:g}s"
        problems = self._result
        return (not problems), ("; ".join(problems) or "ready")

    def _run(self, done: threading.Event) -> None:
        try:
            self._result = list(self.check())
        except Exception as exc:  # a check that breaks says so rather than "ready"
            self._result = [f"readiness check: {type(exc).__name__}"]
        finally:
            done.set()


def health_answer(path: str, readiness: Readiness) -> tuple[int, str] | None:
    """(status, text) for the health paths, None for any other path."""
    if path == HEALTH_PATH:
        return 200, "ok\n"
    if path == READY_PATH:
        ok, why = readiness()
        return (200, "ready\n") if ok else (503, f"{why}\n")
    return None


_REASONS = {200: "200 OK", 404: "404 Not Found", 503: "503 Service Unavailable"}


class HealthServer:
    """``/healthz`` and ``/readyz`` on a small stdlib HTTP server (Socket Mode's HEALTH_PORT)."""

    def __init__(self, readiness: Readiness, host: str = "0.0.0.0", port: int = 0) -> None:
        class Handler(BaseHTTPRequestHandler):
            timeout = 5  # an idle or slow client holds only its own thread, and not for long

            def log_message(self, format: str, *args: Any) -> None:
                return None

            def do_GET(self) -> None:
                answer = health_answer(self.path.split("?", 1)[0], readiness)
                status, text = answer or (404, "not found\n")
                data = text.encode()
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_HEAD = do_GET

        self.httpd = ThreadingHTTPServer((host, port), Handler)
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return int(self.httpd.server_address[1])

    def start(self) -> HealthServer:
        """Serves in a daemon thread."""
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stops serving and closes the socket."""
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)


# --------------------------------------------------------------------------- HTTP mode


def metrics_app(metrics: Any) -> Any:
    """The WSGI app serving *metrics* in the Prometheus format, None when they are not kept in
    this process (``METRICS_FORMAT=emf`` or ``none``)."""
    make = getattr(metrics, "wsgi_app", None)
    return make() if callable(make) else None


class BotWsgi:
    """WSGI app: Bolt on ``/slack/events``, ``/healthz``, ``/readyz`` and (with Prometheus
    metrics) ``/metrics``, 404 elsewhere."""

    def __init__(
        self,
        app: App,
        readiness: Readiness | None = None,
        path: str = EVENTS_PATH,
        metrics: Any = None,
        jira_webhook: Any = None,
    ) -> None:
        self.bolt = SlackRequestHandler(app, path=path)
        self.jira_webhook = jira_webhook  # bot.slack.jira_webhook.JiraWebhook, when configured
        self.path = path
        self.listening = threading.Event()
        self._readiness = readiness
        self._metrics = metrics_app(metrics) if metrics is not None else None

    def readiness(self) -> tuple[bool, str]:
        """Ready when listening and the runtime's readiness says so."""
        if not self.listening.is_set():
            return False, "starting"
        return self._readiness() if self._readiness is not None else (True, "ready")

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if path == METRICS_PATH and self._metrics is not None:
                result: Iterable[bytes] = self._metrics(environ, start_response)
                return result
            answer = health_answer(path, self.readiness)
            if answer is not None:
                status, text = answer
                body = text.encode()
                start_response(
                    _REASONS[status],
                    [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
                )
                return [body]
        webhook = self.jira_webhook
        if path == WEBHOOK_PATH and webhook is not None and environ.get("REQUEST_METHOD") == "POST":
            hook: Iterable[bytes] = webhook(environ, start_response)
            return hook
        try:
            return self.bolt(environ, start_response)
        except Exception as exc:
            # Bolt's WSGI adapter parses the payload (into its context) before it checks the
            # signature, and raises on a body that is JSON but not an object: a refusal, not a
            # server error. Nothing was recorded or acknowledged, so nothing is lost.
            logger.info("refused a request Bolt could not read: %s", type(exc).__name__)
            body = b"bad request\n"
            start_response(
                "400 Bad Request",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]


def connection_limit(wanted: int = CONNECTION_LIMIT) -> int:
    """*wanted*, or fewer when the open-files limit cannot hold that many connections."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return min(wanted, 200)
    if soft == resource.RLIM_INFINITY:
        return wanted
    # Each connection is one descriptor; leave room for the database, Slack, Jira, logs.
    return max(50, min(wanted, soft - 128))


def raise_open_files_limit(target: int = 4096) -> None:
    """Raises this process's soft open-files limit towards *target* (never above the hard one),
    so that CONNECTION_LIMIT connections fit."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        want = target if hard == resource.RLIM_INFINITY else min(target, hard)
        if soft != resource.RLIM_INFINITY and soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    except (ImportError, OSError, ValueError) as exc:
        logger.info("open-files limit left as it is: %s", exc)


class HttpServer:
    """A waitress server for the Bolt *app* on *host*:*port* (0 picks a free port).

    Idle connections are closed after *idle_timeout* seconds and at most *max_connections* are
    open at once (``poll()``, not ``select()``, so descriptors above 1024 work): a crowd of idle
    or slow clients cannot starve ``/healthz`` or Slack's requests.
    """

    def __init__(
        self,
        app: App,
        host: str = "0.0.0.0",
        port: int = 3000,
        threads: int = 16,
        *,
        readiness: Readiness | None = None,
        idle_timeout: float = IDLE_TIMEOUT,
        cleanup_interval: float = CLEANUP_INTERVAL,
        max_connections: int | None = None,
        metrics: Any = None,
        jira_webhook: Any = None,
    ) -> None:
        from waitress.server import create_server

        self.wsgi = BotWsgi(app, readiness, metrics=metrics, jira_webhook=jira_webhook)
        self.server: Any = create_server(
            self.wsgi,
            host=host,
            port=port,
            threads=threads,
            ident="ideabot",
            # Slack's payloads are tens of KB; refusing huge bodies keeps a hostile client from
            # making the signature check read (and hash) a gigabyte.
            max_request_body_size=MAX_BODY_BYTES,
            channel_timeout=idle_timeout,
            cleanup_interval=cleanup_interval,
            connection_limit=max_connections or connection_limit(),
            asyncore_use_poll=True,
            # The poll timeout bounds how late the idle-connection sweep runs.
            asyncore_loop_timeout=1,
        )
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    @property
    def port(self) -> int:
        return int(self.server.effective_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        """True while the serving thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> HttpServer:
        """Serves in a background thread; /readyz can turn 200 once it is listening."""
        self._thread = threading.Thread(target=self._run, name="waitress", daemon=True)
        self._thread.start()
        self.wsgi.listening.set()
        return self

    def _run(self) -> None:
        try:
            self.server.run()
        except OSError:
            # Closing the listening socket under the poll loop is how it stops.
            if not self._stopping.is_set():
                raise

    def stop(self, timeout: float = 5.0) -> None:
        """Lets running requests finish (up to *timeout* s), then closes every connection and
        the listening socket, which ends the serving thread."""
        from waitress import wasyncore

        self._stopping.set()
        self.wsgi.listening.clear()
        # Worker threads first: a request finishing after the sockets closed would write to a
        # closed trigger.
        self.server.task_dispatcher.shutdown(timeout=timeout)
        wasyncore.close_all(self.server._map)
        if self._thread is not None:
            self._thread.join(timeout)


# --------------------------------------------------------------------------- the runtime


class Runtime:
    """One bot process's moving parts around the wired *bot*: the inbox workers, the Bolt app
    that records into and replays from them, the outbox worker, readiness and draining."""

    def __init__(
        self,
        bot: Bot,
        *,
        clock: Callable[[], datetime] | None = None,
        pools: Sequence[PoolSpec] = DEFAULT_POOLS,
        token_verification_enabled: bool = False,
        poll_interval: float = 1.0,
        owner: str | None = None,
    ) -> None:
        self.bot = bot
        self.inbox = InboxWorkers(
            bot.adapters.store,
            pools=pools,
            clock=clock or bot.filer.clock,
            poll_interval=poll_interval,
            owner=owner,
        )
        self.app = build_app(bot, self.inbox, token_verification_enabled=token_verification_enabled)
        self.outbox = OutboxWorker(bot.filer)
        self.probe = ReadinessProbe(bot.ready)
        self._draining = threading.Event()

    @property
    def draining(self) -> bool:
        return self._draining.is_set()

    def start(self, *, poll: bool = True, outbox: bool = True) -> Runtime:
        """Starts the inbox workers (with their poller when *poll*) and the outbox worker."""
        self.inbox.start(poll=poll)
        if outbox:
            self.outbox.start()
        return self

    def readiness(self) -> tuple[bool, str]:
        """(ready, why): not while draining; else the database and the index must answer."""
        if self._draining.is_set():
            return False, "draining"
        return self.probe()

    def request_stop(self) -> None:
        """Flags only (safe in a signal handler): readiness 503, no new work taken."""
        self._draining.set()
        self.inbox.pause()
        self.outbox.request_stop()

    def shutdown(self, deadline: float) -> bool:
        """Drains until *deadline* (``time.monotonic()``): queued events are handed back at
        once, running ones get until the deadline, the rest is released. True when clean."""
        self.request_stop()
        inbox_clean = self.inbox.stop(deadline)
        outbox_clean = self.outbox.stop(max(0.0, deadline - time.monotonic()))
        return inbox_clean and outbox_clean


def serve(bot: Bot, http: bool = False, port: int = 3000, host: str = "0.0.0.0") -> None:
    """Runs the bot until SIGTERM/SIGINT: HTTP mode when *http* (or no app token), else Socket
    Mode; then drains within SHUTDOWN_GRACE_SECONDS and returns (see the module docstring).

    Start-up: the Bolt app (which checks the token), the network start-up checks, the inbox and
    outbox workers (which resume work a previous run left), the digest scheduler and the periodic
    Jira sync, then the server.
    """
    s = bot.settings
    socket_mode = not http and s.slack_app_token is not None
    if not socket_mode and s.slack_signing_secret is None:
        raise ConfigError(
            "SLACK_SIGNING_SECRET: required in HTTP mode (or set SLACK_APP_TOKEN for Socket Mode)"
        )
    runtime = Runtime(bot, token_verification_enabled=True)
    bot.startup()
    bot.warm_up()
    stop = threading.Event()
    _install_signal_handlers(runtime, stop)
    runtime.start()
    digests = DigestScheduler(s, bot.digests)
    digests.start()
    sync_job = start_sync_job(bot.sync, s.jira_sync_minutes)
    exporter = start_metrics(bot, host)
    server: HttpServer | None = None
    health: HealthServer | None = None
    handler: Any = None
    try:
        if socket_mode:
            from slack_bolt.adapter.socket_mode import SocketModeHandler

            assert s.slack_app_token is not None
            if s.health_port:
                health = HealthServer(runtime.readiness, host, s.health_port).start()
            handler = SocketModeHandler(runtime.app, s.slack_app_token.get_secret_value())
            handler.connect()
            logger.info(
                "ideabot: Socket Mode%s", f", health on port {health.port}" if health else ""
            )
        else:
            raise_open_files_limit()
            server = HttpServer(
                runtime.app,
                host=host,
                port=port,
                readiness=runtime.readiness,
                metrics=bot.adapters.metrics,
                jira_webhook=jira_webhook_app(bot),
            )
            server.start()
            logger.info("ideabot: HTTP mode on port %d (%s)", server.port, EVENTS_PATH)
        while not stop.wait(0.5):
            if server is not None and not server.alive:
                logger.error("the HTTP server stopped; shutting down")
                break
    finally:
        deadline = time.monotonic() + s.shutdown_grace_seconds
        logger.info("draining: up to %gs for running work", s.shutdown_grace_seconds)
        runtime.request_stop()
        if handler is not None:
            # At once: Slack then sends new events over the other replicas' connections.
            close_socket_mode(handler)
        if sync_job is not None:
            sync_job.shutdown(wait=False)
        digests.shutdown(wait=False)
        clean = runtime.shutdown(deadline)
        # A re-embedding this replica was doing: its current step is written and the lease
        # handed back, so another replica goes on now rather than when the lease runs out.
        bot.catalogue.stop(max(1.0, deadline - time.monotonic()))
        if server is not None:
            server.stop()
        if health is not None:
            health.stop()
        stop_metrics(exporter)
        logger.info(
            "stopped%s", "" if clean else " (grace ran out; unfinished work was handed back)"
        )
        _exit_if_stuck(deadline, clean)


def start_metrics(bot: Bot, host: str) -> Any:
    """Starts what METRICS_FORMAT needs besides the HTTP server's ``/metrics``: the EMF flush
    timer, or a Prometheus server on METRICS_PORT when set (Socket Mode has no HTTP server; in
    HTTP mode it keeps the scrape off the port Slack reaches). Returns what :func:`stop_metrics`
    stops, or None."""
    metrics: Any = bot.adapters.metrics
    s = bot.settings
    if s.metrics_format == "emf" and callable(getattr(metrics, "start", None)):
        return metrics.start()
    if s.metrics_format == "prometheus" and s.metrics_port:
        from bot.adapters.metrics_prometheus import MetricsServer

        return MetricsServer(metrics, s.metrics_port, host).start()
    return None


def stop_metrics(exporter: Any) -> None:
    """Stops *exporter*; the EMF one flushes what is left first (its ``close``)."""
    if exporter is None:
        return
    try:
        closer = getattr(exporter, "close", None) or exporter.stop
        closer()
    except Exception:  # shutting down: the exit matters more than the last numbers
        logger.warning("metrics: could not stop cleanly", exc_info=True)


def close_socket_mode(handler: Any, timeout: float = 2.0) -> None:
    """Closes a Socket Mode handler's connection the WebSocket way: a close frame (1000), Slack's
    close frame back (up to *timeout* s), then the socket; the client does not reconnect."""
    try:
        # slack_sdk's builtin client only drops the TCP socket; its frame builder is internal,
        # hence the guard: without it the connection still closes, just less politely.
        from slack_sdk.socket_mode.builtin.frame_header import FrameHeader
        from slack_sdk.socket_mode.builtin.internals import _build_data_frame_for_sending

        client = handler.client
        client.auto_reconnect_enabled = False
        session = client.current_session
        if session is not None and session.sock is not None:
            frame = _build_data_frame_for_sending(struct.pack("!H", 1000), FrameHeader.OPCODE_CLOSE)
            with session.sock_send_lock:
                session.sock.sendall(frame)
            # The client's reader closes the socket when the server's close frame comes back.
            end = time.monotonic() + timeout
            while session.is_active() and time.monotonic() < end:
                time.sleep(0.02)
    except Exception as exc:
        logger.debug("Socket Mode close frame not sent: %s", exc)
    with contextlib.suppress(Exception):
        handler.close()


def _install_signal_handlers(runtime: Runtime, stop: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return  # only the main thread may set handlers (tests may run serve elsewhere)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            # A second signal: the operator wants out now.
            os._exit(128 + signum)
        logger.info("%s received: draining", signal.Signals(signum).name)
        runtime.request_stop()
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def _exit_if_stuck(deadline: float, clean: bool = True) -> None:
    """Exits now if non-daemon threads (a digest or Jira sync still running in the scheduler's
    pool) would keep the interpreter from exiting past *deadline*: their work is claimed in the
    store, so another replica or the next start picks it up.

    Also when the grace ran out (*clean* is False): worker threads may still be inside native
    code (an onnxruntime inference), and finalising the interpreter under them can abort the
    process (SIGABRT) instead of exiting 0. Their events were handed back already."""
    main = threading.current_thread()
    for t in threading.enumerate():
        if t is not main and not t.daemon and t.is_alive():
            t.join(max(0.0, deadline - time.monotonic()))
    stuck = [
        t.name for t in threading.enumerate() if t is not main and not t.daemon and t.is_alive()
    ]
    if (stuck or not clean) and threading.current_thread() is threading.main_thread():
        if stuck:
            logger.warning("exiting with work still running in %s", ", ".join(stuck))
        logging.shutdown()
        os._exit(0)
