"""Signing Slack requests like Slack does (v0 HMAC-SHA256) and posting them to a Bolt endpoint."""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from typing import Any
from urllib.parse import urlencode, urlparse


def signed_request(
    secret: str,
    body: str | bytes,
    timestamp: int | None = None,
    content_type: str = "application/json",
) -> dict[str, str]:
    """Headers Slack would send with *body*: timestamp, ``v0=`` signature and content type."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    raw = body.decode("utf-8") if isinstance(body, bytes) else body
    base = f"v0:{ts}:{raw}".encode()
    sig = "v0=" + hmac.new(secret.encode("utf-8"), base, hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig,
        "Content-Type": content_type,
    }


def event_body(
    event: dict[str, Any], event_id: str = "Ev1", team_id: str = "T1", api_app_id: str = "A1"
) -> str:
    """An Events API ``event_callback`` envelope around *event*, as JSON text."""
    return json.dumps(
        {
            "token": "legacy",
            "team_id": team_id,
            "api_app_id": api_app_id,
            "event": event,
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {"team_id": team_id, "user_id": "UBOT", "is_bot": True, "enterprise_id": None}
            ],
        }
    )


def interactive_body(payload: dict[str, Any]) -> str:
    """A form-encoded interactivity request body (``payload=<json>``)."""
    return urlencode({"payload": json.dumps(payload)})


def command_body(fields: dict[str, str]) -> str:
    """A form-encoded slash command request body."""
    return urlencode(fields)


def post(
    url: str,
    body: str,
    headers: dict[str, str],
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, bytes]:
    """POSTs *body* to *url* with *headers*; returns (status, response body)."""
    u = urlparse(url)
    own = conn is None
    c = conn or http.client.HTTPConnection(u.hostname or "127.0.0.1", u.port or 80, timeout=30)
    try:
        data = body.encode("utf-8")
        c.request(
            "POST", u.path or "/", body=data, headers={**headers, "Content-Length": str(len(data))}
        )
        resp = c.getresponse()
        return resp.status, resp.read()
    finally:
        if own:
            c.close()
