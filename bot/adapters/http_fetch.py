"""Fetching a URL with one total deadline and a size cap (stdlib only).

A socket timeout bounds each read, not the fetch: a server sending a byte a second would never
trip it. ``fetch_bytes`` reads the body in chunks against one deadline, and a watchdog shuts the
socket down at that deadline to end a read that blocks meanwhile (trickled headers, a stalled
body).
"""

from __future__ import annotations

import functools
import http.client
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from bot.adapters.watchdog import Watchdog

_CHUNK = 64 * 1024


class FetchError(Exception):
    """The URL could not be fetched in time or within the size cap; the message is safe to log
    only after :func:`redact_source`."""


def redact_source(text: str, source: str) -> str:
    """Removes the source, its path and its query from *text* (error messages may echo them)."""
    parts = urlsplit(source)
    secrets = [source, parts.path, parts.query, parts.netloc if "@" in parts.netloc else ""]
    for secret in sorted((s for s in secrets if s and len(s) > 1), key=len, reverse=True):
        text = text.replace(secret, "…")
    return text


def fetch_bytes(
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    headers: dict[str, str] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> bytes:
    """The body at *url*, within *timeout* seconds in total and *max_bytes*; FetchError otherwise.

    The socket timeout alone bounds each read, not the fetch: a server sending a byte a
    second would never trip it. So the body is read in chunks against one deadline, and a
    watchdog shuts the socket down at that deadline to end a read that blocks meanwhile
    (trickled headers, a stalled body). The TLS handshake is bounded by the socket timeout.
    """
    req = urllib.request.Request(url, headers=headers or {})
    timed_out = FetchError(f"timed out after {timeout:g} s")
    deadline = clock() + timeout
    watchdog = Watchdog()
    opener = urllib.request.build_opener(_WatchedHTTP(watchdog), _WatchedHTTPS(watchdog))
    timer = threading.Timer(timeout, watchdog.fire)
    timer.daemon = True
    timer.start()
    try:
        with opener.open(req, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length", "")
            if length.isdigit() and int(length) > max_bytes:
                raise FetchError(f"feed larger than {max_bytes} bytes")
            chunks: list[bytes] = []
            size = 0
            while chunk := resp.read1(_CHUNK):
                size += len(chunk)
                if size > max_bytes:
                    raise FetchError(f"feed larger than {max_bytes} bytes")
                if clock() > deadline:
                    raise timed_out
                chunks.append(chunk)
            # A socket shut down by the watchdog can look like the end of a body.
            if not watchdog.disarm():
                raise timed_out
            if length.isdigit() and size < int(length):
                raise FetchError("connection closed before the end of the feed")
    except FetchError:
        raise
    except urllib.error.HTTPError as exc:
        raise FetchError(f"HTTP {exc.code}") from None
    except (OSError, http.client.HTTPException) as exc:
        if watchdog.fired or isinstance(exc, TimeoutError):
            raise timed_out from None
        if isinstance(exc, urllib.error.URLError):
            raise FetchError(redact_source(f"unreachable: {exc.reason}", url)) from None
        raise FetchError(redact_source(f"connection error: {type(exc).__name__}", url)) from None
    finally:
        watchdog.disarm()
        timer.cancel()
    return b"".join(chunks)


class _WatchedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, host: str, *, watchdog: Watchdog, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()
        self._watchdog.watch(self.sock)


class _WatchedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, host: str, *, watchdog: Watchdog, **kwargs: Any) -> None:
        super().__init__(host, **kwargs)
        self._watchdog = watchdog

    def connect(self) -> None:
        super().connect()
        self._watchdog.watch(self.sock)


class _WatchedHTTP(urllib.request.HTTPHandler):
    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(functools.partial(_WatchedHTTPConnection, watchdog=self._watchdog), req)


class _WatchedHTTPS(urllib.request.HTTPSHandler):
    def __init__(self, watchdog: Watchdog) -> None:
        super().__init__()
        self._watchdog = watchdog

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        conn = functools.partial(_WatchedHTTPSConnection, watchdog=self._watchdog)
        return self.do_open(conn, req)
