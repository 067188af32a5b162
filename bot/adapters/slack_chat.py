"""The ``Chat`` port on ``slack_sdk.WebClient``.

Slack's 429 answers carry ``Retry-After``; the client gets the SDK's ``RateLimitErrorRetryHandler``
so they are waited out and retried rather than lost.
"""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Sequence
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.domain.events import message_key
from bot.domain.metrics import API_CALL_SECONDS, API_CALLS, Metrics, NullMetrics
from bot.domain.models import ChatMessage, Person
from bot.domain.tracing import SPAN_SLACK, NoopTracer, Tracer

logger = logging.getLogger(__name__)

# Channel names are lower-case; ids (C…, G…, D…) are upper-case letters and digits.
_CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]+$")
_CACHE_SECONDS = 600.0


def with_rate_limit_retries(client: WebClient, retries: int = 3) -> WebClient:
    """Adds the SDK's 429 handler to *client* unless it already has one; returns *client*."""
    if not any(isinstance(h, RateLimitErrorRetryHandler) for h in client.retry_handlers):
        client.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=retries))
    return client


def slack_status(exc: BaseException) -> str:
    """The ``status`` label of a failed Slack call (``bot.domain.metrics``)."""
    if isinstance(exc, SlackApiError):
        code = getattr(exc.response, "status_code", 200)
        if code == 429:
            return "rate_limited"
        return "server_error" if code >= 500 else "client_error"
    if isinstance(exc, TimeoutError | socket.timeout):
        return "timeout"
    if isinstance(exc, OSError):  # URLError, ConnectionError
        return "connection_error"
    return "error"


def metered(client: WebClient, metrics: Metrics, tracer: Tracer | None = None) -> WebClient:
    """Counts and times every Web API call *client* makes, by method and status, each in a
    ``slack.call`` span when *tracer* is given (Bolt's calls on the same client too).

    Every ``WebClient`` method goes through ``api_call``; the SDK has no hook for it, so the
    instance's own ``api_call`` is wrapped (once: a second call leaves it as it is).
    """
    if getattr(client, "_ideabot_metered", False):
        return client
    inner = client.api_call
    spans: Tracer = tracer or NoopTracer()

    def api_call(api_method: str, *args: Any, **kwargs: Any) -> Any:
        status = "ok"
        started = time.perf_counter()
        try:
            with spans.span(SPAN_SLACK, method=api_method) as span:
                try:
                    return inner(api_method, *args, **kwargs)
                except BaseException as exc:
                    status = slack_status(exc)
                    span.set_attribute("status", status)
                    raise
        finally:
            took = time.perf_counter() - started
            metrics.inc(API_CALLS, service="slack", method=api_method, status=status)
            metrics.observe(API_CALL_SECONDS, took, service="slack", method=api_method)
            logger.debug("slack: %s: %s in %.0f ms", api_method, status, took * 1000)

    client.api_call = api_call  # type: ignore[method-assign]
    client._ideabot_metered = True  # type: ignore[attr-defined]
    return client


class SlackChat:
    """Slack Web API calls the bot makes outside Bolt's request handling (and some inside)."""

    def __init__(
        self, client: WebClient, metrics: Metrics | None = None, tracer: Tracer | None = None
    ) -> None:
        self.client = with_rate_limit_retries(client)
        tracing = tracer is not None and not isinstance(tracer, NoopTracer)
        if tracing or (metrics is not None and not isinstance(metrics, NullMetrics)):
            metered(self.client, metrics or NullMetrics(), tracer)
        self._lock = threading.Lock()
        self._info: dict[str, tuple[float, dict[str, Any]]] = {}
        self._team: str | None = None  # this workspace's team id (auth.test), once known
        self._groups: dict[str, tuple[float, frozenset[str]]] = {}
        self._people: dict[str, tuple[float, Person]] = {}

    # ------------------------------------------------------------------ Chat port

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Posts a message (in a thread when *thread_ts*); returns its ts.

        *metadata* is Slack message metadata (``{"event_type": ..., "event_payload": {...}}``);
        the payload is an event envelope (``bot.domain.events.message_event``), sent in the
        shape Slack accepts (``slack_metadata``).
        """
        kwargs: dict[str, Any] = {"channel": channel, "text": text, "unfurl_links": False}
        if blocks:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        if metadata:
            kwargs["metadata"] = slack_metadata(metadata)
        resp = self.client.chat_postMessage(**kwargs)
        return str(resp["ts"])

    def _channel_info(self, channel: str) -> dict[str, Any] | None:
        """conversations.info of *channel* (cached ten minutes); None when Slack will not say."""
        now = time.monotonic()
        with self._lock:
            hit = self._info.get(channel)
        if hit and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        try:
            info = dict(self.client.conversations_info(channel=channel)["channel"])
        except SlackApiError as exc:
            logger.warning(
                "conversations.info failed for %s: %s", channel, exc.response.get("error")
            )
            return None
        with self._lock:
            self._info[channel] = (now, info)
        return info

    def channel_is_private(self, channel: str) -> bool:
        """True for private channels, DMs and group DMs (cached for ten minutes)."""
        info = self._channel_info(channel)
        if info is None:
            return True  # unknown means private: never risk repeating private content in public
        return bool(info.get("is_private") or info.get("is_im") or info.get("is_mpim"))

    def channel_is_shared(self, channel: str) -> bool:
        """True for Slack Connect channels (shared with other organisations, or about to be),
        and when it cannot be told: internal tickets must never reach external guests."""
        info = self._channel_info(channel)
        if info is None:
            return True
        return bool(
            info.get("is_ext_shared")
            or info.get("is_pending_ext_shared")
            or (info.get("is_shared") and not info.get("is_org_shared"))
        )

    def _home_team(self) -> str | None:
        if self._team is None:
            try:
                self._team = str(self.client.auth_test().get("team_id") or "")
            except SlackApiError as exc:
                logger.warning("auth.test failed: %s", exc.response.get("error"))
                return None
        return self._team or None

    def find_by_metadata(
        self,
        channel: str,
        event_type: str,
        key: str,
        oldest: float,
        max_pages: int = 10,
        *,
        thread_ts: str | None = None,
    ) -> str | None:
        """The ts of the newest top-level message in *channel* since *oldest* (epoch seconds)
        whose metadata is *event_type* with ``event_payload.key == key``; None when there is none.
        With *thread_ts*, the first such reply in that thread (conversations.replies).

        Slack API errors propagate: "could not look" must not be mistaken for "not there".
        """
        cursor: str | None = None
        for _ in range(max_pages):
            if thread_ts:
                resp = self.client.conversations_replies(
                    channel=channel,
                    ts=thread_ts,
                    oldest=f"{oldest:.6f}",
                    limit=200,
                    include_all_metadata=True,
                    cursor=cursor,
                )
            else:
                resp = self.client.conversations_history(
                    channel=channel,
                    oldest=f"{oldest:.6f}",
                    limit=200,
                    include_all_metadata=True,
                    cursor=cursor,
                )
            for msg in resp.get("messages") or []:
                meta = msg.get("metadata") or {}
                payload = meta.get("event_payload") or {}
                # The envelope's data.key, or the bare key of a digest the previous release posted.
                if meta.get("event_type") == event_type and message_key(payload) == key:
                    return str(msg["ts"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or not resp.get("has_more", True):
                return None
        # Not "not found": an older match may lie beyond what was read, and posting again
        # on a guess is the double post this lookup exists to prevent.
        raise LookupError(f"{channel}: {event_type} lookup gave up after {max_pages} pages")

    # ------------------------------------------------------------------ helpers

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> None:
        """An ephemeral message only *user* sees."""
        kwargs: dict[str, Any] = {"channel": channel, "user": user, "text": text}
        if blocks:
            kwargs["blocks"] = blocks
        if thread_ts:
            kwargs["thread_ts"] = thread_ts
        try:
            self.client.chat_postEphemeral(**kwargs)
        except SlackApiError as exc:
            logger.warning("chat.postEphemeral failed: %s", exc.response.get("error"))

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """Replaces one of the bot's messages in place (``chat.update``); a message that is gone
        or cannot be edited any more is logged, not raised."""
        # Without "blocks" chat.update keeps the old ones: an empty list is sent to clear them.
        kwargs: dict[str, Any] = {
            "channel": channel,
            "ts": ts,
            "text": text,
            "blocks": blocks or [],
        }
        try:
            self.client.chat_update(**kwargs)
        except SlackApiError as exc:
            logger.warning("chat.update failed: %s", exc.response.get("error"))

    def permalink(self, channel: str, ts: str) -> str | None:
        """The message's permalink, or None when Slack will not say."""
        try:
            return str(self.client.chat_getPermalink(channel=channel, message_ts=ts)["permalink"])
        except SlackApiError as exc:
            logger.warning("chat.getPermalink failed: %s", exc.response.get("error"))
            return None

    def react(self, channel: str, ts: str, name: str) -> None:
        """Adds the bot's reaction *name* to a message (already there is fine)."""
        try:
            self.client.reactions_add(channel=channel, timestamp=ts, name=name)
        except SlackApiError as exc:
            if exc.response.get("error") != "already_reacted":
                logger.warning("reactions.add failed: %s", exc.response.get("error"))

    def fetch_message(
        self, channel: str, ts: str, thread_ts: str | None = None
    ) -> ChatMessage | None:
        """One message by ts: from the channel history, or from its thread when it is a reply."""
        try:
            if thread_ts and thread_ts != ts:
                resp = self.client.conversations_replies(
                    channel=channel, ts=thread_ts, latest=ts, inclusive=True, limit=200
                )
            else:
                resp = self.client.conversations_history(
                    channel=channel, latest=ts, inclusive=True, limit=1
                )
        except SlackApiError as exc:
            logger.warning(
                "could not read message %s in %s: %s", ts, channel, exc.response.get("error")
            )
            return None
        for msg in resp.get("messages") or []:
            if msg.get("ts") == ts:
                return _message(msg)
        if not thread_ts:
            # A reply in a thread is not in the history: look it up as a thread of its own.
            try:
                resp = self.client.conversations_replies(
                    channel=channel, ts=ts, latest=ts, inclusive=True, limit=1
                )
            except SlackApiError:
                return None
            for msg in resp.get("messages") or []:
                if msg.get("ts") == ts:
                    return _message(msg)
        return None

    def thread_replies(self, channel: str, thread_ts: str, limit: int = 500) -> list[ChatMessage]:
        """The thread under *thread_ts* (root first), read page by page up to *limit* messages;
        empty when Slack will not say (the filing then goes on without the thread)."""
        out: list[ChatMessage] = []
        cursor: str | None = None
        try:
            while len(out) < limit:
                resp = self.client.conversations_replies(
                    channel=channel, ts=thread_ts, limit=min(200, limit - len(out)), cursor=cursor
                )
                out += [_message(m) for m in resp.get("messages") or [] if isinstance(m, dict)]
                cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
                if not cursor or not resp.get("has_more", False):
                    break
        except SlackApiError as exc:
            logger.warning(
                "could not read the thread %s in %s: %s",
                thread_ts,
                channel,
                exc.response.get("error"),
            )
            return []
        return out[:limit]

    def publish_home(self, user: str, blocks: list[dict[str, Any]]) -> None:
        """Shows *blocks* as *user*'s Home tab (``views.publish``; no scope beyond the bot's).
        Slack's refusal is raised: a Home tab that did not change must not pass for shown."""
        self.client.views_publish(user_id=user, view={"type": "home", "blocks": blocks})

    def person(self, user: str) -> Person:
        """Name and e-mail of a user (cached ten minutes); empty when Slack will not say."""
        now = time.monotonic()
        with self._lock:
            hit = self._people.get(user)
        if hit and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        try:
            u = self.client.users_info(user=user)["user"]
        except SlackApiError as exc:
            logger.warning("users.info failed: %s", exc.response.get("error"))
            return Person()
        profile = u.get("profile") or {}
        name = profile.get("real_name") or u.get("real_name") or u.get("name")
        home = self._home_team()
        # Someone from another organisation (Slack Connect), or a guest of ours: not a member.
        external = bool(
            u.get("is_stranger")
            or u.get("is_restricted")
            or u.get("is_ultra_restricted")
            or home is None
            or (u.get("team_id") and u.get("team_id") != home)
        )
        value = Person(name=name, email=profile.get("email"), external=external)
        with self._lock:
            self._people[user] = (now, value)
        return value

    def usergroup_members(self, group: str) -> frozenset[str]:
        """The user ids in a user group (cached for ten minutes)."""
        now = time.monotonic()
        with self._lock:
            hit = self._groups.get(group)
        if hit and now - hit[0] < _CACHE_SECONDS:
            return hit[1]
        members = frozenset(self.client.usergroups_users_list(usergroup=group)["users"] or [])
        with self._lock:
            self._groups[group] = (now, members)
        return members

    def resolve_channels(self, names_or_ids: Sequence[str]) -> set[str]:
        """Channel ids for *names_or_ids*; names (with or without '#') are looked up once.

        Unknown names are logged and skipped, so a typo does not stop the bot.
        """
        ids = {c for c in names_or_ids if _CHANNEL_ID.match(c)}
        names = {c.lstrip("#").lower() for c in names_or_ids if not _CHANNEL_ID.match(c)}
        if not names:
            return ids
        cursor: str | None = None
        found: dict[str, str] = {}
        for _ in range(100):
            resp = self.client.conversations_list(
                types="public_channel,private_channel",
                exclude_archived=True,
                limit=1000,
                cursor=cursor,
            )
            for ch in resp.get("channels") or []:
                if str(ch.get("name", "")).lower() in names:
                    found[str(ch["name"]).lower()] = str(ch["id"])
            cursor = (resp.get("response_metadata") or {}).get("next_cursor") or None
            if not cursor or len(found) == len(names):
                break
        for missing in sorted(names - set(found)):
            logger.error(
                "IDEA_CHANNELS: no channel named %r that the bot can see; invite the bot or use "
                "the channel id",
                missing,
            )
        return ids | set(found.values())


def _message(raw: dict[str, Any]) -> ChatMessage:
    return ChatMessage(
        ts=str(raw.get("ts") or ""),
        text=str(raw.get("text") or ""),
        user=raw.get("user"),
        thread_ts=raw.get("thread_ts"),
        by_bot=bool(raw.get("bot_id") or raw.get("bot_profile")),
    )


_Scalar = (str, int, float, bool)


def slack_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """*metadata* as Slack takes it: ``event_payload`` values are scalars, objects of scalars or
    lists of such objects, never null. The envelope (``{"metadata": {...}, "data": {...}}``)
    already is one level deep; a None is left out and anything deeper is sent as JSON text."""
    payload = metadata.get("event_payload")
    if not isinstance(payload, dict):
        return metadata

    def flat(obj: dict[str, Any]) -> dict[str, Any]:
        return {
            str(k): v if isinstance(v, _Scalar) else json.dumps(v, default=str)
            for k, v in obj.items()
            if v is not None
        }

    out: dict[str, Any] = {}
    for k, v in payload.items():
        if v is None:
            continue
        out[str(k)] = flat(v) if isinstance(v, dict) else v
    return {**metadata, "event_payload": out}
