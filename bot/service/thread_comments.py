"""A reply in the thread of a filed post becomes a comment on its issue, once.

Two ways in: the message shortcut "Add to Jira ticket" on the reply (anyone may use it who may
file), or, where the ``thread-comments`` flag is on, every later reply by a person on its own.
Both go through the exactly-once filing engine (``bot.service.filing``) as a comment job keyed by
the *reply*: its claim is unique per message, and the comment carries the reply's marker, so a
second request, a redelivery or a retry after a lost answer adds nothing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

from bot.domain.filing import FilingJob, FilingResult
from bot.domain.flags import Flags
from bot.domain.models import Frozen, MessageRef
from bot.domain.ports import Chat, Notifier, Posts
from bot.service.file_message import FILING_OFF, FileMessage
from bot.service.filing import Filer
from bot.service.receive_post import created_at

logger = logging.getLogger(__name__)

_NEVER = datetime.max.replace(tzinfo=UTC)  # a reply whose ts does not read as a time

NOT_A_REPLY = "Use this on a reply in the thread of a filed post."
NOT_FILED = "The post this thread belongs to is not filed yet: file it first, then add replies."
ALREADY = "That reply is on {key} already."
IN_DESCRIPTION = "That reply was in the thread when {key} was filed: it is in its description."


class ReplyToAdd(Frozen):
    """A reply someone asked to add to the issue of its thread's post."""

    ref: MessageRef  # the reply
    thread_ts: str | None  # its thread (the filed post)
    requester: str
    text: str | None = None
    author: str | None = None


class CommentStore(Posts, Protocol):
    """The part of the store this use case reads besides the filer's."""


@dataclass
class ThreadComments:
    """The use case behind "Add to KEY" and the ``thread-comments`` flag."""

    store: CommentStore
    chat: Chat
    notifier: Notifier
    filer: Filer
    file_message: FileMessage  # who may file, and the filing flag
    flags: Flags

    def add(self, req: ReplyToAdd) -> FilingResult:
        """The shortcut: adds the reply to its post's issue, or tells the requester why not."""
        result = self._add(req)
        thread = req.thread_ts or req.ref.ts
        if result.status == "already" and result.key:  # asked before (or filed on its own)
            result = FilingResult(
                "unavailable", message=ALREADY.format(key=result.key), key=result.key
            )
        if result.status != "queued":
            self.notifier.to_requester(req.ref, req.requester, thread, result)
        return result

    def _add(self, req: ReplyToAdd) -> FilingResult:
        ref = req.ref
        if not req.thread_ts or req.thread_ts == ref.ts:
            return FilingResult("unavailable", message=NOT_A_REPLY)
        if not self.file_message.may_file(req.requester):
            return FilingResult("denied")
        if not self.flags.enabled("filing", ref.channel, req.requester):
            return FilingResult("unavailable", message=FILING_OFF)
        root = self.filer.existing(ref.channel, req.thread_ts)
        if root is None or root.status != "already" or not root.key:
            return FilingResult("unavailable", message=NOT_FILED)
        mine = self.filer.existing(ref.channel, ref.ts)
        if mine is not None:
            return mine
        filed_at = self.store_filed_at(ref.channel, req.thread_ts)
        if filed_at is not None and created_at(ref.ts, lambda: _NEVER) < filed_at:
            # Replies there when the post was filed went into the description.
            return FilingResult(
                "unavailable", message=IN_DESCRIPTION.format(key=root.key), key=root.key
            )
        text, author = req.text, req.author
        if not text:
            found = self.chat.fetch_message(ref.channel, ref.ts, req.thread_ts)
            if found is None or not found.text:
                return FilingResult("unreadable")
            text, author = found.text, author or found.user
        return self.filer.submit(
            self._job(ref, req.thread_ts, root.key, req.requester, text, author)
        )

    def on_reply(self, channel: str, thread_ts: str, ts: str, user: str, text: str) -> bool:
        """A person replied in a thread: where the flag is on and the thread's post is filed,
        queues the reply as a comment (the outbox worker adds it; Jira never delays triage).
        True when it was queued."""
        if not text.strip() or not self.flags.enabled("thread-comments", channel, user):
            return False
        post = self.store.get_post(channel, thread_ts)
        if post is None or post.deleted:
            return False
        root = self.filer.existing(channel, thread_ts)
        if root is None or root.status != "already" or not root.key:
            return False
        job = self._job(MessageRef(channel=channel, ts=ts), thread_ts, root.key, user, text, user)
        result = self.filer.submit(job, at_once=False)
        logger.info("reply %s:%s to %s: %s", channel, ts, root.key, result.status)
        return result.status == "queued"

    def store_filed_at(self, channel: str, ts: str) -> datetime | None:
        """When the post's filing was recorded (its last change), if it is known."""
        filing = self.filer.store.get_filing(channel, ts)
        return filing.updated if filing is not None else None

    def _job(
        self,
        ref: MessageRef,
        thread_ts: str,
        key: str,
        requester: str,
        text: str,
        author: str | None,
    ) -> FilingJob:
        person = self.chat.person(author) if author else None
        return FilingJob(
            channel=ref.channel,
            ts=ref.ts,
            reply_ts=thread_ts,
            requester=requester,
            text=text,
            author=author or "",
            author_name=person.name if person else None,
            permalink=self.chat.permalink(ref.channel, ref.ts),
            is_private=self.chat.channel_is_private(ref.channel),
            comment_on=key,
            thread_comment=True,
        )
