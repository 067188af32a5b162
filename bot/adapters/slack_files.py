"""The ``FileSource`` port on Slack: the files of a post and its thread, downloaded with the
bot token (scope ``files:read``).

Downloads go to ``url_private_download`` with ``Authorization: Bearer``, only on Slack's own
hosts (or the API host the client is pointed at), streamed with a size cap and a total deadline:
a slow or huge file never holds a filing past its lease.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from typing import Any
from urllib.parse import urlparse

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.attachments import FileTooLarge
from bot.domain.models import ChatFile

logger = logging.getLogger(__name__)

CHUNK = 64 * 1024
THREAD_PAGE = 200  # replies read for files (one page: the count cap is far below it)


def _file(raw: dict[str, Any]) -> ChatFile | None:
    if raw.get("mode") in ("tombstone", "hidden_by_limit", "external") or raw.get("is_external"):
        return None
    url = raw.get("url_private_download") or raw.get("url_private")
    if not raw.get("id") or not isinstance(url, str):
        return None
    shared = [*raw.get("channels", []), *raw.get("groups", []), *raw.get("ims", [])]
    return ChatFile(
        id=str(raw["id"]),
        name=str(raw.get("name") or raw.get("title") or raw["id"]),
        mimetype=str(raw.get("mimetype") or "application/octet-stream"),
        size=int(raw.get("size") or 0),
        url=url,
        channels=tuple(str(c) for c in shared),
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would carry the token to wherever it points: follow none.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class SlackFiles:
    """Files of Slack messages, and their bytes."""

    def __init__(self, client: WebClient) -> None:
        self.client = client
        api = urlparse(client.base_url or "https://slack.com/api/")
        self._api_host = (api.hostname or "").lower()
        self._opener = urllib.request.build_opener(_NoRedirect)

    def files_for(self, channel: str, ts: str, thread_ts: str | None = None) -> list[ChatFile]:
        """The files of message *ts* and, when it starts a thread, of the replies in it."""
        reply = bool(thread_ts) and thread_ts != ts
        kwargs: dict[str, Any] = {"channel": channel, "limit": THREAD_PAGE}
        kwargs.update({"ts": thread_ts, "latest": ts, "inclusive": True} if reply else {"ts": ts})
        try:
            resp = self.client.conversations_replies(**kwargs)
        except SlackApiError as exc:
            logger.warning("could not read the files of %s: %s", ts, exc.response.get("error"))
            return []
        out: list[ChatFile] = []
        for msg in resp.get("messages") or []:
            if reply and msg.get("ts") != ts:
                continue  # a reply filed on its own brings only its own files
            if msg.get("bot_id"):
                continue
            out.extend(f for f in (_file(x) for x in msg.get("files") or []) if f is not None)
        return out

    def _allowed(self, url: str) -> bool:
        parts = urlparse(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("https", "http"):
            return False
        if host == self._api_host:
            return True
        return parts.scheme == "https" and (host == "slack.com" or host.endswith(".slack.com"))

    def download(self, f: ChatFile, max_bytes: int, deadline: float) -> bytes:
        """The file's bytes; FileTooLarge past *max_bytes*, TimeoutError past *deadline* s."""
        if not self._allowed(f.url):
            raise ValueError(f"not a Slack file URL: {urlparse(f.url).hostname}")
        end = time.monotonic() + deadline
        req = urllib.request.Request(
            f.url, headers={"Authorization": f"Bearer {self.client.token}"}
        )
        with self._opener.open(req, timeout=max(0.1, min(deadline, 10.0))) as resp:
            if resp.status != 200:
                raise ValueError(f"Slack answered {resp.status} for file {f.id}")
            ctype = str(resp.headers.get("Content-Type") or "")
            if ctype.startswith("text/html") and not f.mimetype.startswith("text/html"):
                # Slack's sign-in page: the token lacks files:read.
                raise PermissionError("Slack sent a web page instead of the file (files:read?)")
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > max_bytes:
                raise FileTooLarge(f"{f.id} is {length} bytes")
            chunks: list[bytes] = []
            total = 0
            while True:
                if time.monotonic() > end:
                    raise TimeoutError(f"downloading {f.id} took over {deadline:.0f}s")
                chunk = resp.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise FileTooLarge(f"{f.id} is over {max_bytes} bytes")
                chunks.append(chunk)
        return b"".join(chunks)
