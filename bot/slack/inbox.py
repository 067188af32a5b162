"""Slack deliveries through the inbox: recorded before the acknowledgement, replayed by workers.

``InboxMiddleware`` is the Bolt app's last global middleware, so it runs after the signature
check, authorization and Bolt's own filters (the bot's own messages, URL verification), and
before any listener. For a fresh delivery (HTTP or Socket Mode) it records the body in the inbox
and answers at once: 200 when recorded (or already recorded: a redelivery), 503 when the store
could not take it, so that Slack delivers it again rather than losing it. It never lets the
listeners run in the request thread.

The workers replay each recorded event through the same app (:func:`replayer`), marked so that
the middleware lets it through to the listeners. The replay is a Socket-Mode-style request: the
signature was checked when the event arrived and its timestamp is stale by now.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware

from bot.domain.envelope import derived_id, new_id
from bot.domain.metrics import ACK_SECONDS, EVENTS_RECEIVED, Metrics, NullMetrics
from bot.domain.ports import INBOX_VERSION, InboxEvent
from bot.domain.tracing import SPAN_EVENT, NoopTracer, Tracer
from bot.observability.context import log_context
from bot.workers import FILING, TRIAGE, InboxWorkers

logger = logging.getLogger(__name__)

REPLAY_KEY = "ideabot_inbox_event"  # in a replayed request's context: the inbox event id
ERROR_KEY = "ideabot_listener_error"  # set by the app's error handler on a replayed request
MAX_ID = 120


class ListenerFailed(Exception):
    """A listener raised while processing a replayed event (the app's error handler logged it)."""


def event_type(body: dict[str, Any]) -> str:
    """What kind of delivery *body* is: ``event:message``, ``block_actions``, ``slash_command``…"""
    if body.get("type") == "event_callback":
        return f"event:{(body.get('event') or {}).get('type', 'unknown')}"
    if "command" in body and "type" not in body:
        return "slash_command"
    return str(body.get("type") or "unknown")


def event_id_of(body: dict[str, Any]) -> str:
    """A stable id for one delivery: Slack's ``event_id`` for Events API callbacks; for
    interactive payloads and commands their ``trigger_id`` (one per click or command), else a
    hash of the body. Redeliveries of the same delivery get the same id."""
    if body.get("type") == "event_callback" and body.get("event_id"):
        key = str(body["event_id"])
    elif body.get("trigger_id"):
        key = f"{event_type(body)}:{body['trigger_id']}"
    else:
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
        key = f"{event_type(body)}:{hashlib.sha256(canonical.encode()).hexdigest()[:40]}"
    if len(key) > MAX_ID:
        key = "h:" + hashlib.sha256(key.encode()).hexdigest()
    return key


def pool_of(body: dict[str, Any]) -> str:
    """Message events are triaged; everything else (reactions, buttons, the shortcut, the
    command) is filing work, which waits on Jira."""
    if body.get("type") == "event_callback" and (body.get("event") or {}).get("type") == "message":
        return TRIAGE.name
    return FILING.name


def envelope(
    body: dict[str, Any],
    event_id: str,
    published_by: str,
    now: str,
    trace_id: str | None = None,
) -> dict[str, Any]:
    """The inbox envelope around one Slack *body* (a fresh trace id unless *trace_id*)."""
    return {
        "metadata": {
            "version": INBOX_VERSION,
            "event_id": event_id,
            "trace_id": trace_id or uuid.uuid4().hex,
            "type": event_type(body),
            "published_by": published_by,
            "published_at": now,
        },
        "data": body,
    }


class InboxMiddleware(Middleware):
    """Records fresh deliveries in the inbox and answers them; lets replays through."""

    def __init__(self, workers: InboxWorkers, metrics: Metrics | None = None) -> None:
        self.workers = workers
        self.metrics: Metrics = metrics or NullMetrics()

    def process(
        self,
        *,
        req: BoltRequest,
        resp: BoltResponse,
        next: Callable[[], BoltResponse],
    ) -> BoltResponse | None:
        """Bolt's middleware hook (see the module docstring)."""
        if req.context.get(REPLAY_KEY) or answers_at_once(req.body):
            return next()
        started = time.perf_counter()
        body = req.body
        event_id = event_id_of(body)
        kind = event_type(body)
        outcome = "error"
        try:
            now = self.workers.clock().isoformat()
            channel, ts = where(body)
            trace = message_trace(channel, ts)
            wrapped = envelope(body, event_id, self.workers.owner, now, trace)
            with log_context(event_id=event_id, trace_id=trace, channel=channel, ts=ts):
                new = self.workers.record(event_id, pool_of(body), wrapped)
                logger.debug("inbox: recorded %s (%s)", event_id, kind)
            outcome = "accepted" if new else "duplicate"
        except Exception as exc:
            # Not recorded means not acknowledged: Slack delivers it again later.
            outcome = "rejected"
            logger.warning(
                "inbox: could not record %s (%s): %s; answering 503 so Slack retries",
                event_id,
                kind,
                type(exc).__name__,
            )
            return BoltResponse(status=503, body="")
        finally:
            self.metrics.inc(EVENTS_RECEIVED, type=kind, outcome=outcome)
            self.metrics.observe(ACK_SECONDS, time.perf_counter() - started, type=kind)
        return BoltResponse(status=200, body="")


def message_trace(channel: str | None, ts: str | None) -> str:
    """The trace id of a delivery: derived from the message it is about, so that a post, the
    reaction that files it and the filing's Jira call and reply all log under one id (found from
    the Jira issue's footer); a fresh one for deliveries about no message."""
    if channel and ts:
        return derived_id("trace", channel, ts)
    return new_id()


def where(body: dict[str, Any]) -> tuple[str | None, str | None]:
    """The channel and message ts a delivery is about, for the log context (either may be
    None): a message's own, a reaction's item, a button's message."""
    event = body.get("event") if isinstance(body.get("event"), dict) else None
    if event is not None:
        item = event.get("item") if isinstance(event.get("item"), dict) else None
        if item is not None:
            return _text(item.get("channel")), _text(item.get("ts"))
        return _text(event.get("channel")), _text(event.get("ts"))
    channel = body.get("channel")
    channel_id = channel.get("id") if isinstance(channel, dict) else body.get("channel_id")
    message = body.get("message")
    container = body.get("container")
    ts = (message.get("ts") if isinstance(message, dict) else None) or (
        container.get("message_ts") if isinstance(container, dict) else None
    )
    return _text(channel_id), _text(ts)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def answers_at_once(body: Any) -> bool:
    """True for a request with nothing durable to do, answered in its acknowledgement by the
    listener itself: ``/idea help`` (and an empty ``/idea``) only shows the usage."""
    from bot.slack.listeners.commands import is_help
    from bot.slack.listeners.review import answered_at_once

    if answered_at_once(body):  # the review form: a trigger to use within 3 s, field errors
        return True
    return isinstance(body, dict) and "command" in body and is_help(body.get("text"))


def replayer(app: App, tracer: Tracer | None = None) -> Callable[[InboxEvent], None]:
    """The inbox workers' handler: runs *app*'s listeners on one recorded event, in an
    ``ideabot.event`` span whose trace id is the event's (the one in the logs)."""
    spans: Tracer = tracer or NoopTracer()

    def replay(event: InboxEvent) -> None:
        body = event.envelope.get("data")
        if not isinstance(body, dict):
            raise ValueError(f"inbox event {event.event_id} has no data")
        req = BoltRequest(body=body, mode="socket_mode", context={REPLAY_KEY: event.event_id})
        channel, ts = where(body)
        trace = event.trace_id or None
        with (
            log_context(event_id=event.event_id, trace_id=trace, channel=channel, ts=ts),
            spans.span(SPAN_EVENT, trace_id=trace, type=event_type(body)) as span,
        ):
            resp = app.dispatch(req)
            span.set_attribute("status", resp.status)
        if resp.status >= 500:
            raise ListenerFailed(str(req.context.get(ERROR_KEY) or f"status {resp.status}"))
        if resp.status == 404:
            # No listener for it (e.g. a link button): nothing to do, nothing to retry.
            logger.debug("inbox: no listener for %s (%s)", event.event_id, event_type(body))

    return replay
