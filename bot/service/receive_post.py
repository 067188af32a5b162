"""An idea post arrives: record it, triage it, and answer in its thread unless it is chit-chat."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal, Protocol

from bot.domain.flags import AllOn, Flags
from bot.domain.models import Frozen, Post, Triage
from bot.domain.ports import Chat, Notifier, Posts, StoredPost
from bot.service.channels import IdeaChannels
from bot.service.engagement import RecordEngagement
from bot.service.triage import Triager
from bot.service.work_fence import still_ours

if TYPE_CHECKING:  # thread_comments reads this module's created_at
    from bot.service.thread_comments import ThreadComments

logger = logging.getLogger(__name__)


class IncomingPost(Frozen):
    """A person's new message, as the entry point parsed it from the chat event."""

    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    broadcast: bool = False  # a thread reply also sent to the channel: a post like any other
    is_private: bool | None = None  # None: the event did not say; ask the chat
    event_id: str | None = None

    @property
    def is_reply(self) -> bool:
        """True for a message in a thread that is not the thread's first message."""
        return bool(self.thread_ts) and self.thread_ts != self.ts


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
    engagement: RecordEngagement | None = None  # counts replies on the post they answer
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    flags: Flags = field(default_factory=AllOn)
    thread_comments: ThreadComments | None = None  # later replies to a filed post's issue

    def wants(self, post: IncomingPost) -> bool:
        """True for a post in an idea channel: a top-level message or a reply also sent to the
        channel; other thread replies only with TRIAGE_THREADS."""
        if post.channel not in self.channels or not post.text.strip():
            return False
        return self.triage_threads or post.broadcast or not post.is_reply

    def __call__(self, post: IncomingPost) -> PostOutcome:
        if post.is_reply and post.thread_ts and self.engagement is not None:
            self.engagement.reply(post.channel, post.thread_ts, post.ts, post.user)
        if post.is_reply and post.thread_ts and self.thread_comments is not None:
            self.thread_comments.on_reply(
                post.channel, post.thread_ts, post.ts, post.user, post.text
            )
        if not self.wants(post):
            return PostOutcome("ignored")
        known = self.store.get_post(post.channel, post.ts)
        if known is not None and known.deleted:
            # The deletion overtook the message (a retried delivery): nothing to triage.
            return PostOutcome("ignored")
        if known is not None and known.reply_ts:
            # Answered already: the inbox replays an event whose worker died after replying.
            return PostOutcome("ignored")
        stored = StoredPost(
            channel=post.channel,
            ts=post.ts,
            user=post.user,
            text=post.text,
            created=created_at(post.ts, self.clock),
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
        if not self.flags.enabled("triage-replies", post.channel, post.user):
            # Recorded and triaged (digests, filing and edits still use it), just not answered.
            self.store.update_post(post.channel, post.ts, **fields)
            logger.info("triaged %s:%s; no reply (flag triage-replies off)", post.channel, post.ts)
            return PostOutcome("quiet", triage)
        now = self.store.get_post(post.channel, post.ts)
        if now is None or now.deleted:  # deleted while triage ran: no reply under a tombstone
            return PostOutcome("ignored", triage)
        if known is not None:
            # An earlier attempt got as far as recording the post, so it may have replied and
            # died before recording the reply: the reply's tag (message metadata) says so.
            found = self.notifier.find_triage_reply(now)
            if found is not None:
                self.store.update_post(post.channel, post.ts, reply_ts=found, **fields)
                logger.info("triaged %s:%s; its reply was there already", post.channel, post.ts)
                return PostOutcome("replied", triage, found)
        if not still_ours():
            # This worker's hold on the event ended (its replica's grace ran out, or the event
            # was taken over): the next holder replies, after looking for a reply from here.
            logger.info(
                "%s:%s was handed over before its reply; not replying", post.channel, post.ts
            )
            return PostOutcome("ignored", triage)
        reply_ts = self.notifier.triage_reply(now, triage)
        self.store.update_post(post.channel, post.ts, reply_ts=reply_ts, **fields)
        logger.info("triaged %s:%s as %s", post.channel, post.ts, triage.kind)
        return PostOutcome("replied", triage, reply_ts)


def created_at(ts: str, clock: Callable[[], datetime]) -> datetime:
    """When a message was posted, read from its Slack ts ("1700000000.000100"); the clock's
    time when the ts does not read as a time (Slack's are always epoch seconds)."""
    try:
        seconds = float(ts)
        if seconds != seconds or not 0 <= seconds < 1e11:  # NaN, negative, past year 5138
            raise ValueError(ts)
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError):
        return clock()
