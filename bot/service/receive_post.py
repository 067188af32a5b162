"""An idea post arrives: record it, triage it, and answer in its thread unless it is chit-chat."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal, Protocol

from bot.domain.models import Frozen, Post, Triage
from bot.domain.ports import Chat, Notifier, Posts, StoredPost
from bot.service.channels import IdeaChannels
from bot.service.triage import Triager

logger = logging.getLogger(__name__)


class IncomingPost(Frozen):
    """A person's new message, as the entry point parsed it from the chat event."""

    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    is_private: bool | None = None  # None: the event did not say; ask the chat
    event_id: str | None = None


@dataclass(frozen=True)
class PostOutcome:
    """What receiving a post did: ``replied`` (with the reply's ts), ``quiet`` (kind other) or
    ``ignored`` (not an idea post, or empty). Redeliveries never get here: the inbox records each
    event id once (``bot.domain.ports.Inbox``)."""

    status: Literal["replied", "quiet", "ignored"]
    triage: Triage | None = None
    reply_ts: str | None = None


class ReceiveStore(Posts, Protocol):
    """The part of the store this use case needs."""


@dataclass
class ReceivePost:
    """The use case behind a new message in a channel."""

    store: ReceiveStore
    triager: Triager
    notifier: Notifier
    chat: Chat
    channels: IdeaChannels
    triage_threads: bool = False

    def wants(self, post: IncomingPost) -> bool:
        """True for a post in an idea channel (thread replies only with TRIAGE_THREADS)."""
        if post.channel not in self.channels or not post.text.strip():
            return False
        is_reply = bool(post.thread_ts) and post.thread_ts != post.ts
        return self.triage_threads or not is_reply

    def __call__(self, post: IncomingPost) -> PostOutcome:
        if not self.wants(post):
            return PostOutcome("ignored")
        stored = StoredPost(
            channel=post.channel,
            ts=post.ts,
            user=post.user,
            text=post.text,
            created=datetime.fromtimestamp(float(post.ts), UTC),
            thread_ts=post.thread_ts,
            is_private=(
                post.is_private
                if post.is_private is not None
                else self.chat.channel_is_private(post.channel)
            ),
        )
        self.store.save_post(stored)
        triage = self.triager.triage(
            Post(
                id=f"{post.channel}:{post.ts}",
                text=post.text,
                channel=post.channel,
                user=post.user,
                ts=post.ts,
                thread_ts=post.thread_ts,
            )
        )
        fields: dict[str, object] = {
            "kind": triage.kind,
            "title": triage.title,
            "summary": triage.summary,
            "triage_json": triage.model_dump_json(),
        }
        if triage.kind == "other":
            self.store.update_post(post.channel, post.ts, **fields)
            return PostOutcome("quiet", triage)
        reply_ts = self.notifier.triage_reply(stored, triage)
        self.store.update_post(post.channel, post.ts, reply_ts=reply_ts, **fields)
        logger.info("triaged %s:%s as %s", post.channel, post.ts, triage.kind)
        return PostOutcome("replied", triage, reply_ts)
