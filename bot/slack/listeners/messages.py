"""New messages in idea channels: triage them and answer in the thread."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from bot.domain.models import Post
from bot.domain.ports import StoredPost
from bot.slack import blocks
from bot.slack.listeners.common import Deps

logger = logging.getLogger(__name__)

# Subtypes that are still a person's new post; edits, deletes, joins and bot posts are not.
HUMAN_SUBTYPES = frozenset({None, "file_share", "thread_broadcast"})


def is_triage_candidate(event: dict[str, Any], deps: Deps, bot_user_id: str | None) -> bool:
    """True for a new human message in an idea channel (threads only with TRIAGE_THREADS)."""
    if event.get("subtype") not in HUMAN_SUBTYPES:
        return False
    if event.get("bot_id") or event.get("bot_profile") or not event.get("user"):
        return False
    if bot_user_id and event.get("user") == bot_user_id:
        return False
    if not deps.is_idea_channel(str(event.get("channel", ""))):
        return False
    thread_ts = event.get("thread_ts")
    is_reply = bool(thread_ts) and thread_ts != event.get("ts")
    return not (is_reply and not deps.settings.triage_threads)


def handle_message(event: dict[str, Any], deps: Deps, bot_user_id: str | None) -> None:
    """Triage one message and reply in its thread unless it is chit-chat."""
    if not is_triage_candidate(event, deps, bot_user_id):
        return
    channel, ts, user = str(event["channel"]), str(event["ts"]), str(event["user"])
    text = str(event.get("text") or "")
    if not text.strip():
        return
    thread_ts = event.get("thread_ts")
    channel_type = event.get("channel_type")
    private = (
        channel_type in ("group", "im", "mpim")
        if channel_type
        else deps.chat.channel_is_private(channel)
    )
    deps.store.save_post(
        StoredPost(
            channel=channel,
            ts=ts,
            user=user,
            text=text,
            created=datetime.fromtimestamp(float(ts), UTC),
            thread_ts=thread_ts,
            is_private=private,
        )
    )
    triage = deps.triage.triage(
        Post(
            id=f"{channel}:{ts}", text=text, channel=channel, user=user, ts=ts, thread_ts=thread_ts
        )
    )
    fields: dict[str, Any] = {
        "kind": triage.kind,
        "title": triage.title,
        "summary": triage.summary,
        "triage_json": triage.model_dump_json(),
    }
    if triage.kind == "other":
        deps.store.update_post(channel, ts, **fields)
        return
    reply_text, reply_blocks = blocks.build_triage_reply(
        triage, channel, ts, deps.settings.file_emoji
    )
    reply_ts = deps.chat.post(channel, reply_text, reply_blocks, thread_ts=thread_ts or ts)
    deps.store.update_post(channel, ts, reply_ts=reply_ts, **fields)
    logger.info("triaged %s:%s as %s", channel, ts, triage.kind)


def register(app: Any, deps: Deps) -> None:
    """Registers the message listener on *app*."""

    @app.event("message")
    def on_message(body: dict[str, Any], event: dict[str, Any], context: Any) -> None:
        if is_triage_candidate(event, deps, context.get("bot_user_id")) and deps.first_delivery(
            body
        ):
            handle_message(event, deps, context.get("bot_user_id"))
