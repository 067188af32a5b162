"""Someone asks to file a Slack message: by emoji, button, message shortcut or ``/idea``.

The rules before the exactly-once engine (``bot.service.filing``): the reaction must be the file
emoji in an idea channel and not on the bot's own reply; the person must be allowed to file; the
post is read (stored, from the event, or fetched); triage is reused or run; a likely duplicate
is offered instead of filed unless the person chose. Every outcome is told through the Notifier.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from bot.domain.filing import FilingJob, FilingResult, is_duplicate_verdict, may_file
from bot.domain.flags import AllOn, Flags
from bot.domain.models import Frozen, MessageRef, Post, ThreadContext, Triage
from bot.domain.ports import Chat, ChatError, Notifier, Posts, StoredPost
from bot.domain.threads import ThreadLimits, thread_context, with_thread
from bot.service.channels import IdeaChannels
from bot.service.file_idea import IdeaRequest, file_idea, pick_instead
from bot.service.filing import Filer
from bot.service.triage import Triager

if TYPE_CHECKING:  # edit_post reaches this module through engagement's Reaction
    from bot.service.edit_post import EditPost

FILING_OFF = "Filing is switched off here, so nothing was filed."
DELETED = "That post was deleted, so there is nothing to file."
NO_OFFER = (
    "I no longer see a likely duplicate for this post, so I did not add it anywhere. "
    "File it, or ask again."
)

logger = logging.getLogger(__name__)


class FileRequest(Frozen):
    """A request to file one message, as the entry point parsed it."""

    ref: MessageRef
    requester: str
    text: str | None = None  # the message text when the payload carried it
    author: str | None = None
    thread_ts: str | None = None
    force: bool = False  # "File anyway": the person saw the duplicate offer
    comment_on: str | None = None  # "Comment on KEY instead"
    # "Comment instead" whose button could not carry the key: the offered match is looked up
    comment_on_offered: bool = False
    event_id: str | None = None  # Slack's event id (redeliveries are dropped by the inbox)
    whole: bool = False  # file the post as one even when it holds several ideas (/idea)


class Reaction(Frozen):
    """An emoji added to a message."""

    ref: MessageRef
    user: str
    emoji: str
    item_user: str | None = None  # the message's author
    by_bot: bool = False  # the bot itself reacted
    on_bot_message: bool = False  # the message is the bot's own
    event_id: str | None = None


@dataclass(frozen=True)
class FilingAccess:
    """Who may file: both lists empty means everybody."""

    users: Sequence[str] = ()
    groups: Sequence[str] = ()


class FileStore(Posts, Protocol):
    """The part of the store this use case needs besides the filer's."""


@dataclass
class FileMessage:
    """The use case behind every "file this" gesture."""

    store: FileStore
    chat: Chat
    notifier: Notifier
    filer: Filer
    triager: Triager
    channels: IdeaChannels
    file_emoji: str = "ticket"
    access: FilingAccess = field(default_factory=FilingAccess)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    edits: EditPost | None = None  # applies an edit the shortcut's payload shows first
    flags: Flags = field(default_factory=AllOn)
    thread_limits: ThreadLimits = field(default_factory=ThreadLimits)

    def on_reaction(self, reaction: Reaction) -> FilingResult:
        """Files the message when *reaction* is the file emoji on a post in an idea channel."""
        ref = reaction.ref
        if (
            reaction.emoji != self.file_emoji
            or not reaction.user
            or reaction.by_bot
            or ref.channel not in self.channels
        ):
            return FilingResult("ignored")
        author = reaction.item_user
        # The bot's own messages (triage replies, "Filed as …") are not ideas; the one exception
        # is the post /idea made on someone's behalf, which the store knows.
        if reaction.on_bot_message:
            if self.store.get_post(ref.channel, ref.ts) is None:
                return FilingResult("ignored")
            author = None  # the stored post names the real author
        return self(
            FileRequest(ref=ref, requester=reaction.user, author=author, event_id=reaction.event_id)
        )

    def __call__(self, req: FileRequest) -> FilingResult:
        """Access check, the post, the duplicate question, then one exactly-once filing."""
        ref = req.ref
        if not self.may_file(req.requester):
            result = FilingResult("denied")
            self.notifier.to_requester(ref, req.requester, req.thread_ts, result)
            return result
        if not self.flags.enabled("filing", ref.channel, req.requester):
            result = FilingResult("unavailable", message=FILING_OFF)
            self.notifier.to_requester(ref, req.requester, req.thread_ts, result)
            return result
        if not self.filer.configured:
            result = FilingResult("unavailable", message="Jira is not configured for this bot.")
            self.notifier.to_requester(ref, req.requester, req.thread_ts, result)
            return result
        job_or_result = self._job(req)
        if isinstance(job_or_result, FilingResult):
            self.notifier.to_requester(ref, req.requester, req.thread_ts, job_or_result)
            return job_or_result
        job, triage = job_or_result
        picking = None if req.whole else pick_instead(triage)
        if picking is not None:
            # A notes post: each idea is filed by its own button (bot.service.file_idea).
            self.notifier.to_requester(ref, req.requester, req.thread_ts, picking)
            return picking
        if req.comment_on_offered and not req.comment_on:
            offered = is_duplicate_verdict(triage)
            if offered is None:
                result = FilingResult("unavailable", message=NO_OFFER)
                self.notifier.to_requester(ref, req.requester, req.thread_ts, result)
                return result
            job = job.model_copy(update={"comment_on": offered.key})
        match = (
            None
            if (req.force or job.comment_on or not self._offers_duplicates(ref, req.requester))
            else is_duplicate_verdict(triage)
        )
        if match is not None and self.filer.existing(ref.channel, ref.ts) is None:
            self.notifier.duplicate_offer(job, match)
            return FilingResult("duplicate", key=match.key, url=match.url, match=match)
        result = self.filer.submit(job)
        if result.status in ("already", "in_progress", "unavailable"):
            thread = job.reply_ts if job.reply_ts != ref.ts else None
            self.notifier.to_requester(ref, req.requester, thread, result)
        return result

    def submit_idea(self, channel: str, user: str, text: str) -> FilingResult:
        """``/idea <text>``: posts the idea in *channel* for *user* (so it has a thread and a
        permalink), records it, and files it. A refusal before posting (not allowed, no Jira,
        cannot post here) is returned for the caller to tell; the rest is told in the thread."""
        if not self.may_file(user):
            return FilingResult("denied")
        if not self.flags.enabled("filing", channel, user):
            return FilingResult("unavailable", message=FILING_OFF)
        if not self.filer.configured:
            return FilingResult("unavailable", message="Jira is not configured for this bot.")
        try:
            ts = self.notifier.idea_posted(channel, user, text)
        except ChatError as exc:
            logger.warning("/idea could not post in %s: %s", channel, exc)
            return FilingResult(
                "unavailable",
                message="I cannot post in this channel; invite me first (/invite @ideabot).",
            )
        self.store.save_post(
            StoredPost(
                channel=channel,
                ts=ts,
                user=user,
                text=text,
                created=self.clock(),
                is_private=self.chat.channel_is_private(channel),
            )
        )
        return self(
            FileRequest(
                ref=MessageRef(channel=channel, ts=ts), requester=user, text=text, whole=True
            )
        )

    def file_idea(self, req: IdeaRequest) -> FilingResult:
        """Files one idea of a notes post (its button in the notes reply); see ``file_idea``."""
        return file_idea(self, req)

    @staticmethod
    def _edited(stored: StoredPost, req: FileRequest) -> bool:
        # Only the author's own message can be an edit of the post: the message /idea posted
        # for someone is the bot's (it quotes the idea), and its words are the stored ones.
        return bool(req.text) and req.text != stored.text and req.author == stored.user

    def _offers_duplicates(self, ref: MessageRef, requester: str) -> bool:
        # The offer is "Comment on KEY instead" / "File anyway": without the duplicate check or
        # without comment-instead there is nothing to offer, so the post is filed directly. A
        # stored triage may predate the flag change, hence the check here and not only in triage.
        return self.flags.enabled("duplicate-check", ref.channel, requester) and self.flags.enabled(
            "comment-instead", ref.channel, requester
        )

    def may_file(self, user: str) -> bool:
        return may_file(user, self.access.users, self.access.groups, self.chat.usergroup_members)

    # ------------------------------------------------------------------ gathering the post

    def _job(self, req: FileRequest) -> tuple[FilingJob, Triage] | FilingResult:
        ref = req.ref
        stored = self.store.get_post(ref.channel, ref.ts)
        if stored is not None and stored.deleted:
            return FilingResult("unavailable", message=DELETED)
        text, author, thread_ts = req.text, req.author, req.thread_ts
        triage = Triage.from_stored(stored.triage_json) if stored else None
        permalink = stored.permalink if stored else None
        if stored is not None and self._edited(stored, req):
            # The shortcut's payload is the message as it is now: an edit the store has not
            # seen yet (its event may come later, or never). File what the post says now.
            assert req.text is not None
            triage = None
            if self.edits is not None and self.filer.existing(ref.channel, ref.ts) is None:
                triage = self.edits.retriage(stored, req.text)
            author = stored.user
            thread_ts = thread_ts or stored.thread_ts
        elif stored is not None:
            text = stored.text or text
            author = author or stored.user
            thread_ts = thread_ts or stored.thread_ts
        if text is None:
            found = self.chat.fetch_message(ref.channel, ref.ts, thread_ts)
            if found is not None:
                text = found.text
                author = author or found.user
                thread_ts = thread_ts or found.thread_ts
        if not text:
            return FilingResult("unreadable")
        author = author or ""
        is_reply = bool(thread_ts) and thread_ts != ref.ts
        thread = None if is_reply else self.thread_of(ref)
        if triage is None or (thread is not None and thread.replies):
            # The discussion under the post is part of the idea: the analyzer reads it too. The
            # title people saw in the triage reply stays (a reply is not the idea's headline).
            seen = triage
            triage = self.triager.triage(
                Post(
                    id=ref.key,
                    text=with_thread(text, thread),
                    channel=ref.channel,
                    user=author,
                    ts=ref.ts,
                )
            )
            if seen is not None:
                triage = triage.model_copy(update={"title": seen.title})
        person = self.chat.person(author) if author else None
        job = FilingJob(
            channel=ref.channel,
            ts=ref.ts,
            reply_ts=thread_ts if is_reply and thread_ts else ref.ts,
            requester=req.requester,
            text=text,
            kind=triage.kind,
            title=triage.title,
            summary=triage.summary,
            labels=triage.labels,
            author=author,
            author_name=person.name if person else None,
            author_email=person.email if person else None,
            permalink=permalink or self.chat.permalink(ref.channel, ref.ts),
            is_private=self.chat.channel_is_private(ref.channel),
            comment_on=req.comment_on,
            thread=thread if thread is not None and thread.replies else None,
        )
        return job, triage

    def thread_of(self, ref: MessageRef) -> ThreadContext:
        """The replies under *ref* as a filing carries them (bounded; mentions neutralised)."""
        replies = self.chat.thread_replies(ref.channel, ref.ts)
        return thread_context(
            replies, ref.ts, lambda user: self.chat.person(user).name, self.thread_limits
        )
