"""``POST /jira/webhook``: Jira says an issue changed; the bot looks at it at once.

Authenticated before anything is read from the body's meaning: Jira's HMAC signature
(``X-Hub-Signature: sha256=<hex>`` of the raw body with ``JIRA_WEBHOOK_SECRET``, what Jira sends
when the webhook has a secret) or the secret itself in ``X-Ideabot-Webhook-Secret`` (for an
automation rule's "Send web request"), compared in constant time. The payload only names the
issue: its state is read from Jira again (``AnnounceChanges.look``), so a replayed or forged-but-
signed payload can make the bot look, never say something Jira does not. Answers: 202 with the
outcome, 401 unauthenticated, 400 unreadable, 404 when not configured, 503 when the look failed
(Jira retries; the sync is the safety net either way).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import re
from collections.abc import Callable, Iterable
from typing import Any

from bot.domain.metrics import JIRA_WEBHOOKS, Metrics, NullMetrics
from bot.service.announce import AnnounceChanges

logger = logging.getLogger(__name__)

WEBHOOK_PATH = "/jira/webhook"
SECRET_HEADER = "HTTP_X_IDEABOT_WEBHOOK_SECRET"
SIGNATURE_HEADER = "HTTP_X_HUB_SIGNATURE"
MAX_BODY = 1024 * 1024  # Jira's issue payloads are a few KB; more is refused unread
_KEY = re.compile(r"^[A-Z][A-Z0-9_]{0,49}-[1-9][0-9]{0,12}$")
# The events that can change what is announced; others (comments, worklogs) are acknowledged.
_EVENTS = {"jira:issue_updated", "jira:issue_created", "issue_updated", ""}

StartResponse = Callable[..., Any]


def signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature`` value Jira sends for *body*: ``sha256=<hex HMAC>``."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class JiraWebhook:
    """A small WSGI app for the webhook; ``BotWsgi`` routes ``POST /jira/webhook`` to it."""

    def __init__(
        self, announce: AnnounceChanges, secret: str, metrics: Metrics | None = None
    ) -> None:
        if not secret:
            raise ValueError("a Jira webhook needs a secret")
        self.announce = announce
        self._secret = secret
        self.metrics: Metrics = metrics or NullMetrics()

    def authentic(self, environ: dict[str, Any], body: bytes) -> bool:
        """True when the request carries the shared secret or a valid signature of *body*."""
        given = str(environ.get(SECRET_HEADER) or "")
        if given and hmac.compare_digest(given.encode(), self._secret.encode()):
            return True
        sig = str(environ.get(SIGNATURE_HEADER) or "").strip()
        return bool(sig) and hmac.compare_digest(
            sig.lower().encode(), signature(self._secret, body).encode()
        )

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            return self._answer(start_response, 413, "too large", "bad_request")
        body = environ["wsgi.input"].read(length) if length else b""
        if not self.authentic(environ, body):
            return self._answer(start_response, 401, "unauthorised", "unauthorised")
        try:
            payload = json.loads(body)
            key = payload["issue"]["key"]
            event = str(payload.get("webhookEvent") or "")
        except (ValueError, KeyError, TypeError):
            return self._answer(start_response, 400, "no issue key", "bad_request")
        if not isinstance(key, str) or not _KEY.match(key):
            return self._answer(start_response, 400, "no issue key", "bad_request")
        if event not in _EVENTS:
            return self._answer(start_response, 202, "ignored", "ignored")
        try:
            outcome = self.announce.look(key, source="webhook")
        except Exception:
            logger.warning("Jira webhook for %s: the look failed", key, exc_info=True)
            return self._answer(start_response, 503, "try again", "failed")
        logger.info("Jira webhook for %s: %s", key, outcome)
        return self._answer(start_response, 202, outcome, "accepted")

    def _answer(
        self, start_response: StartResponse, status: int, text: str, outcome: str
    ) -> list[bytes]:
        self.metrics.inc(JIRA_WEBHOOKS, outcome=outcome)
        reasons = {
            202: "202 Accepted",
            400: "400 Bad Request",
            401: "401 Unauthorized",
            413: "413 Payload Too Large",
            503: "503 Service Unavailable",
        }
        data = (text + "\n").encode()
        start_response(
            reasons[status], [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))]
        )
        return [data]


def jira_webhook_app(bot: Any) -> JiraWebhook | None:
    """The webhook for *bot* (a ``Bot``), or None unless JIRA_WEBHOOK_SECRET and Jira are set."""
    secret = bot.settings.jira_webhook_secret
    if secret is None or not secret.get_secret_value() or bot.announce is None:
        return None
    return JiraWebhook(bot.announce, secret.get_secret_value(), bot.adapters.metrics)
