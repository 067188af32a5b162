"""A post changed after the bot saw it: edited, or deleted.

Edited before it was filed: the current text is triaged again and stored, and the triage reply
is rendered again in place, so what gets filed (by emoji, button or shortcut) is what the post
says now. Edited after it was filed (or while being filed): the ticket keeps the text it was
filed with; the thread says so, and with COMMENT_ON_EDIT the new text is added to the issue as
a comment. Deleted: the post's words are purged from the store (the row stays, so it cannot be
filed or triaged later), and its triage reply is replaced by a short note.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, Protocol

from bot.domain.filing import FilingResult
from bot.domain.models import Frozen, IssueText, NewComment, Post, Triage, slack_unescape
from bot.domain.notes import idea_ts
from bot.domain.ports import (
    Engagement,
    Notifier,
    Posts,
    StoredPost,
    Tracker,
    TrackerError,
)
from bot.service.channels import IdeaChannels
from bot.service.engagement import RecordEngagement
from bot.service.filing import Filer
from bot.service.receive_post import created_at
from bot.service.triage import Triager

logger = logging.getLogger(__name__)


class PostEdit(Frozen):
    """A message's new text, as the entry point parsed it from the chat's change event."""

    channel: str
    ts: str
    user: str
    text: str
    thread_ts: str | None = None
    event_id: str | None = None


class PostDeletion(Frozen):
    """A message that was deleted (or left as a tombstone above its thread)."""

    channel: str
    ts: str
    user: str | None = None  # its author, when the event said
    thread_ts: str | None = None
    event_id: str | None = None


@dataclass(frozen=True)
class EditOutcome:
    """``retriaged`` (edited before filing), ``noted`` (after filing: told in the thread),
    ``deleted`` or ``ignored`` (not a stored post, unchanged text, a redelivery)."""

    status: Literal["retriaged", "noted", "deleted", "ignored"]
    triage: Triage | None = None


class EditStore(Posts, Engagement, Protocol):
    """The part of the store this use case needs besides the filer's."""


@dataclass
class EditPost:
    """The use case behind edited and deleted messages."""

    store: EditStore
    triager: Triager
    notifier: Notifier
    filer: Filer
    channels: IdeaChannels
    tracker: Tracker | None = None
    engagement: RecordEngagement | None = None  # a deleted reply stops counting
    comment_on_edit: bool = False
    triage_threads: bool = False
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def edited(self, edit: PostEdit) -> EditOutcome:
        """Applies an edit to a stored post: triage again before filing, a note after."""
        stored = self.store.get_post(edit.channel, edit.ts)
        # Slack also sends "message_changed" when only the thread or an unfurl changed.
        if stored is None or stored.deleted or edit.text == stored.text:
            return EditOutcome("ignored")
        whole = self.filer.existing(edit.channel, edit.ts)
        filed = whole or self._idea_filed(stored)
        if filed is None:
            return EditOutcome("retriaged", self.retriage(stored, edit.text))
        self.store.update_post(edit.channel, edit.ts, text=edit.text)
        commented: bool | None = None
        # The whole notes text is no comment for one idea's issue.
        if (
            whole is not None
            and filed.status == "already"
            and filed.key
            and self.comment_on_edit
            and self.tracker
        ):
            commented = self._comment(stored, edit.text, filed.key)
        self.notifier.edited_after_filing(stored, filed, commented)
        logger.info("%s:%s edited after filing (%s)", edit.channel, edit.ts, filed.status)
        return EditOutcome("noted")

    def _idea_filed(self, stored: StoredPost) -> FilingResult | None:
        # A notes post with an idea filed keeps its list: triaging it again could renumber the
        # ideas under the buttons, and a button must keep filing the idea it showed.
        triage = Triage.from_stored(stored.triage_json)
        for n in range(len(triage.ideas) if triage is not None else 0):
            filed = self.filer.existing(stored.channel, idea_ts(stored.ts, n))
            if filed is not None:
                return filed
        return None

    def retriage(self, stored: StoredPost, text: str) -> Triage | None:
        """Stores *text* as the post's current text with a fresh triage, and renders the triage
        reply again (or answers now, when the post was chit-chat before). None for blank text."""
        if not text.strip():
            self.store.update_post(stored.channel, stored.ts, text=text)
            return None
        triage = self.triager.triage(
            Post(
                id=f"{stored.channel}:{stored.ts}",
                text=text,
                channel=stored.channel,
                user=stored.user,
                ts=stored.ts,
                thread_ts=stored.thread_ts,
            )
        )
        self.store.update_post(
            stored.channel,
            stored.ts,
            text=text,
            kind=triage.kind,
            title=triage.title,
            summary=triage.summary,
            triage_json=triage.model_dump_json(),
        )
        now = self.store.get_post(stored.channel, stored.ts)
        if now is None or now.deleted:
            return triage
        if now.reply_ts:
            self.notifier.update_triage_reply(now, triage)
        elif triage.kind != "other":
            reply_ts = self.notifier.triage_reply(now, triage)
            self.store.update_post(stored.channel, stored.ts, reply_ts=reply_ts)
        logger.info("re-triaged edited %s:%s as %s", stored.channel, stored.ts, triage.kind)
        return triage

    def deleted(self, gone: PostDeletion) -> EditOutcome:
        """Purges a deleted post's words, keeps its row, and replaces its triage reply."""
        is_reply = bool(gone.thread_ts) and gone.thread_ts != gone.ts
        if is_reply and gone.thread_ts and gone.user and self.engagement is not None:
            self.engagement.reply(gone.channel, gone.thread_ts, gone.ts, gone.user, added=False)
        stored = self.store.get_post(gone.channel, gone.ts)
        if stored is None and not self._could_be_a_post(gone, is_reply):
            return EditOutcome("ignored")
        # A message never stored still gets its deleted row in an idea channel: the message
        # event may yet arrive (a retry) and must not be triaged then.
        was = self.store.delete_post(
            gone.channel, gone.ts, created_at(gone.ts, self.clock), gone.user or ""
        )
        if was is None or was.deleted:
            return EditOutcome("ignored")
        filed = self.filer.existing(gone.channel, gone.ts)
        self.notifier.post_deleted(was, filed if filed and filed.status == "already" else None)
        logger.info("%s:%s deleted; its text was purged", gone.channel, gone.ts)
        return EditOutcome("deleted")

    def _could_be_a_post(self, gone: PostDeletion, is_reply: bool) -> bool:
        return gone.channel in self.channels and (self.triage_threads or not is_reply)

    def _comment(self, post: StoredPost, text: str, key: str) -> bool:
        assert self.tracker is not None
        body = IssueText(
            summary="The Slack post was edited after it was filed. Its text now reads:",
            original=slack_unescape(text),
            permalink=post.permalink,
        )
        try:
            self.tracker.add_comment(NewComment(key=key, body=body, link_url=post.permalink))
        except TrackerError as exc:
            logger.warning(
                "could not add the edited text of %s:%s to %s: %s", post.channel, post.ts, key, exc
            )
            return False
        return True
