"""A total deadline for each Slack Web API call (``DeadlineWebClient``).

``WebClient(timeout=…)`` bounds each socket read, not the call: a Slack edge that trickles bytes,
or three 429s with ``Retry-After: 30`` each slept through by the SDK's retry handler, hold a
worker for minutes. That worker holds a lease (an inbox event, a filing): a reply still in flight
after its lease ran out may land beside the one another replica posts. So every call here ends by
a total deadline, shorter than the leases and ``bot.workers.HANDOFF`` (see ``build_slack_client``):

- each HTTP attempt runs under a watchdog (``bot.adapters.watchdog``) that shuts its socket down
  when the call's time is up, the body read included;
- the retry handlers (rate limits, dropped connections) retry only when their wait fits in what is
  left; otherwise the 429 or the error is what the caller gets, at once.

``WebClient`` has no hook for its transport; this overrides its urllib request method (the
SDK's own structure since slack_sdk 3.0: ``_perform_urllib_http_request_internal``), keeping
the retry loop and response parsing of the SDK.
"""

from __future__ import annotations

import functools
import http.client
import io
import threading
import time
import urllib.request
from typing import Any
from urllib.error import HTTPError

from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import (
    ConnectionErrorRetryHandler,
    RateLimitErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState

from bot.adapters.watchdog import Watchdog

_call = threading.local()  # the running call's deadline (time.monotonic()), per thread


def time_left() -> float | None:
    """Seconds left of this thread's running Slack call (None outside one)."""
    deadline: float | None = getattr(_call, "deadline", None)
    return None if deadline is None else deadline - time.monotonic()


class SlackDeadlineError(TimeoutError):
    """A Slack call outlived its total deadline; its connection was shut down."""


class _Watched:
    """Hands the connection's socket to *watchdog* once connected (the TLS socket for HTTPS:
    shutting it ends a blocked read too)."""

    sock: Any

    def __init__(self, *args: Any, watchdog: Watchdog, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()  # type: ignore[misc]
        self._watchdog.watch(self.sock)


class _WatchedHTTPConnection(_Watched, http.client.HTTPConnection):
    pass


class _WatchedHTTPSConnection(_Watched, http.client.HTTPSConnection):
    pass


class _WatchedHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            functools.partial(_WatchedHTTPConnection, watchdog=self._watchdog),
            req,
        )


class _WatchedHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog, context: Any) -> None:
        super().__init__(context=context)
        self._watchdog = watchdog
        self._ssl_context = context

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            functools.partial(_WatchedHTTPSConnection, watchdog=self._watchdog),
            req,
            context=self._ssl_context,
        )


class DeadlineWebClient(WebClient):
    """``WebClient`` whose every API call ends within *deadline* seconds, retries included."""

    def __init__(self, *, deadline: float, **kwargs: Any) -> None:
        if deadline <= 0:
            raise ValueError(f"a Slack call deadline must be positive, got {deadline!r}")
        super().__init__(**kwargs)
        self.deadline = deadline

    def _perform_urllib_http_request(
        self, *, url: str, args: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        outer = getattr(_call, "deadline", None)
        _call.deadline = time.monotonic() + self.deadline if outer is None else outer
        try:
            return super()._perform_urllib_http_request(url=url, args=args)
        finally:
            _call.deadline = outer

    def _perform_urllib_http_request_internal(
        self, url: str, req: urllib.request.Request
    ) -> dict[str, Any]:
        left = time_left()
        if left is None or self.proxy is not None or not url.lower().startswith("http"):
            # Not inside a call (never, through the SDK), or through a proxy: the SDK's own way.
            return super()._perform_urllib_http_request_internal(url, req)
        if left <= 0:
            raise SlackDeadlineError(f"no answer from Slack within {self.deadline:g} s")
        watchdog = Watchdog()
        timer = threading.Timer(left, watchdog.fire)
        timer.daemon = True
        timer.start()
        opener = urllib.request.build_opener(
            _WatchedHTTPHandler(watchdog), _WatchedHTTPSHandler(watchdog, self.ssl)
        )
        try:
            try:
                resp = opener.open(req, timeout=min(float(self.timeout), left))
            except HTTPError as e:
                # The SDK reads an error's body after this returns: read it here, under the
                # deadline, and hand it on in memory.
                body = e.read()
                raise HTTPError(e.url, e.code, e.msg, e.headers, io.BytesIO(body)) from None
            body = resp.read()
            if resp.headers.get_content_type() == "application/gzip":
                return {"status": resp.code, "headers": resp.headers, "body": body}
            charset = resp.headers.get_content_charset() or "utf-8"
            return {"status": resp.code, "headers": resp.headers, "body": body.decode(charset)}
        except (OSError, http.client.HTTPException) as exc:
            if watchdog.fired and not isinstance(exc, HTTPError):
                raise SlackDeadlineError(
                    f"no complete answer from Slack within {self.deadline:g} s"
                ) from None
            raise
        finally:
            timer.cancel()
            watchdog.disarm()


class _FitsDeadline:
    """A retry handler that retries only when its wait before the next attempt (``_wait``)
    fits in what is left of the call's deadline, and never after the deadline itself cut the
    connection."""

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if isinstance(error, SlackDeadlineError):
            return False
        retry = super()._can_retry(  # type: ignore[misc]
            state=state, request=request, response=response, error=error
        )
        if not retry:
            return False
        left = time_left()
        return left is None or self._wait(state, response) < left

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float:
        raise NotImplementedError


class DeadlineRateLimitRetry(_FitsDeadline, RateLimitErrorRetryHandler):
    """Retries a 429 after its ``Retry-After`` only when that wait fits in the call's deadline."""

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float:
        assert response is not None  # a 429 is a response
        retry_after = next(
            (v for k, v in response.headers.items() if k.lower() == "retry-after"), ["1"]
        )
        try:
            # The SDK sleeps Retry-After plus up to a second of jitter.
            return float(retry_after[0] if isinstance(retry_after, list) else retry_after) + 1
        except ValueError:
            return 2.0


class DeadlineConnectionRetry(_FitsDeadline, ConnectionErrorRetryHandler):
    """Retries a dropped connection only when the back-off fits in the call's deadline."""

    def _wait(self, state: RetryState, response: HttpResponse | None) -> float:
        return self.interval_calculator.calculate_sleep_duration(state.current_attempt) + 0.5
