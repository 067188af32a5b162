"""The Jira adapter's HTTP plumbing: what a failed request means for the domain, and one total
deadline per request.

``translate`` turns the ``jira`` library's and ``requests``' exceptions into ``TrackerRetryable``
(5xx, 429 with ``Retry-After``, timeouts, resets; *ambiguous* when a write may have happened) and
``TrackerRejected`` (4xx, with the fields Jira named). ``DeadlineAdapter`` is mounted on the
client's session: a socket timeout bounds each read, not the request, so a server trickling
bytes would hold a filing for minutes; the adapter shuts the connection at the deadline.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from jira import JIRAError
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

from bot.adapters.watchdog import Watchdog
from bot.domain.ports import TrackerRejected, TrackerRetryable

logger = logging.getLogger(__name__)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _error_body(resp: requests.Response | None) -> tuple[list[str], dict[str, str]]:
    """Jira's ``{"errorMessages": [...], "errors": {field: message}}``, tolerant of HTML bodies."""
    if resp is None:
        return [], {}
    try:
        data = resp.json()
    except ValueError:
        return [], {}
    if not isinstance(data, dict):
        return [], {}
    messages = data.get("errorMessages") or []
    if isinstance(messages, str):
        messages = [messages]
    for key in ("message", "errorMessage"):
        if isinstance(data.get(key), str):
            messages.append(data[key])
    errors = data.get("errors") or {}
    fields = {str(k): str(v) for k, v in errors.items()} if isinstance(errors, dict) else {}
    return [str(m) for m in messages], fields


def api_status(exc: BaseException) -> str:
    """The ``status`` label of a failed Jira request (``bot.domain.metrics``)."""
    if isinstance(exc, JIRAError):
        code = exc.status_code
        if code == 429:
            return "rate_limited"
        if code is not None and code >= 500:
            return "server_error"
        return "client_error" if code is not None else "error"
    if isinstance(exc, requests.Timeout):
        return "timeout"
    if isinstance(exc, requests.ConnectionError):
        return "connection_error"
    return "error"


def _translate(exc: Exception, action: str) -> Exception:
    """Maps a library/transport exception to the domain's errors. Never quotes headers or auth."""
    if isinstance(exc, JIRAError):
        status = exc.status_code
        resp = exc.response if isinstance(exc.response, requests.Response) else None
        messages, fields = _error_body(resp)
        detail = "; ".join(messages + [f"{k}: {v}" for k, v in fields.items()])
        if status is None:
            return TrackerRetryable(f"Jira {action} failed without an HTTP status", ambiguous=True)
        if status == 429:
            retry_after = parse_retry_after(
                resp.headers.get("Retry-After") if resp is not None else None
            )
            return TrackerRetryable(f"Jira rate-limited {action} (HTTP 429)", retry_after)
        if status >= 500:
            retry_after = parse_retry_after(
                resp.headers.get("Retry-After") if resp is not None else None
            )
            return TrackerRetryable(
                f"Jira {action} failed: HTTP {status}", retry_after, ambiguous=status == 504
            )
        if status == 401:
            return TrackerRejected(
                f"Jira refused the credentials (HTTP 401) during {action}: check JIRA_EMAIL and "
                "JIRA_API_TOKEN (with JIRA_EMAIL unset the token is sent as a Data Center PAT)"
            )
        if status == 403 and resp is not None and "x-authentication-denied-reason" in resp.headers:
            reason = resp.headers["x-authentication-denied-reason"]
            return TrackerRejected(f"Jira denied authentication during {action}: {reason}")
        return TrackerRejected(
            f"Jira rejected {action} (HTTP {status})" + (f": {detail}" if detail else ""), fields
        )
    if isinstance(exc, requests.Timeout):
        # A read timeout may come after Jira created the issue; a connect timeout cannot.
        sent = not isinstance(exc, requests.ConnectTimeout)
        return TrackerRetryable(f"Jira {action} timed out", ambiguous=sent)
    if isinstance(exc, requests.ConnectionError):
        return TrackerRetryable(f"could not connect to Jira for {action}", ambiguous=True)
    if isinstance(exc, ValueError):  # a 2xx body that is not JSON: a proxy or login page
        return TrackerRejected(
            f"Jira answered {action} with something that is not JSON; check JIRA_URL"
        )
    if isinstance(exc, requests.RequestException):
        return TrackerRetryable(f"Jira {action} failed: {type(exc).__name__}")
    return exc


@contextmanager
def mapped_errors(action: str) -> Iterator[None]:
    try:
        yield
    except (JIRAError, requests.RequestException, ValueError) as exc:
        raise _translate(exc, action) from None


class DeadlineExceeded(requests.exceptions.ReadTimeout):
    """A request outlived its total deadline; its connection was shut down."""


_current = threading.local()  # the watchdog of the request this thread is sending, if any


def _watch(sock: socket.socket | None) -> None:
    watchdog: Watchdog | None = getattr(_current, "watchdog", None)
    if watchdog is not None and sock is not None:
        watchdog.watch(sock)


class _WatchedHTTPConnection(HTTPConnection):
    """A connection whose socket the sending thread's watchdog can shut down."""

    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)  # a pooled connection, already open
        super().request(*args, **kwargs)


class _WatchedHTTPSConnection(HTTPSConnection):
    """The TLS version of ``_WatchedHTTPConnection``."""

    def connect(self) -> None:
        super().connect()
        _watch(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _watch(self.sock)
        super().request(*args, **kwargs)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _WatchedHTTPConnection


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class DeadlineAdapter(HTTPAdapter):
    """A ``requests`` transport that ends every request after *deadline* seconds in total.

    A timer shuts the request's socket down at the deadline, which ends a read blocked on a
    server that trickles headers or body; the body is read inside ``send`` so the deadline
    covers it. Raises ``DeadlineExceeded`` (a ``ReadTimeout``: the request may have taken
    effect). Connecting is bounded by the session's own (socket) timeout.
    """

    def __init__(self, deadline: float, **kwargs: Any) -> None:
        if deadline <= 0:
            raise ValueError(f"a request deadline must be positive, got {deadline!r}")
        self.deadline = deadline
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        """The pool manager, with connections the watchdog can reach."""
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_WATCHED_POOLS)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        """The proxy's pool manager, with connections the watchdog can reach."""
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if hasattr(manager, "pool_classes_by_scheme"):
            manager.pool_classes_by_scheme = dict(_WATCHED_POOLS)
        return manager

    def send(  # type: ignore[override]
        self, request: requests.PreparedRequest, stream: bool = False, **kwargs: Any
    ) -> requests.Response:
        """Sends *request* and reads its body, all within the deadline."""
        watchdog = Watchdog()
        outer = getattr(_current, "watchdog", None)
        _current.watchdog = watchdog
        timer = threading.Timer(self.deadline, watchdog.fire)
        timer.daemon = True
        timer.start()
        try:
            response = super().send(request, stream=True, **kwargs)
            if not stream:
                _ = response.content  # read (and release the connection) under the deadline
        except (requests.RequestException, OSError) as exc:
            if watchdog.fired:
                raise DeadlineExceeded(
                    f"no complete answer within {self.deadline:g} s", request=request
                ) from None
            raise exc
        finally:
            timer.cancel()
            _current.watchdog = outer
        # A socket shut down by the watchdog can look like the end of a body.
        if not watchdog.disarm():
            raise DeadlineExceeded(
                f"no complete answer within {self.deadline:g} s", request=request
            )
        return response
