"""The Notifier port on Slack: what the use cases say, rendered by ``blocks`` and sent on Chat."""

from __future__ import annotations

import logging
from typing import Any

from bot.domain.envelope import derived_id
from bot.domain.events import message_event
from bot.domain.filing import FilingJob, FilingResult
from bot.domain.issue_changes import IssueChange, IssueState
from bot.domain.models import Match, MessageRef, Triage
from bot.domain.notes import split_idea_ts
from bot.domain.ports import Chat, StoredPost
from bot.observability.context import current_context
from bot.slack import blocks, loop_blocks
from bot.slack.mrkdwn import escape_mrkdwn, truncate
from bot.slack.notes_blocks import build_idea_outcome

logger = logging.getLogger(__name__)

# Every triage reply is tagged with its post (message metadata), so that a worker that takes over
# a post whose first worker died between posting the reply and recording it finds the reply
# instead of posting a second one.
TRIAGE_REPLY_EVENT = "ideabot_triage_reply"


def triage_reply_key(channel: str, ts: str) -> str:
    return f"{channel}:{ts}"


class SlackNotifier:
    """Renders outcomes with the Block Kit builders and sends them through the Chat port."""

    def __init__(
        self, chat: Chat, file_emoji: str, filed_emoji: str, vote_emoji: str = "+1"
    ) -> None:
        self.chat = chat
        self.file_emoji = file_emoji
        self.filed_emoji = filed_emoji
        self.vote_emoji = vote_emoji  # the first VOTE_EMOJI: how votes are shown

    def triage_reply(self, post: StoredPost, triage: Triage) -> str:
        text, blks = blocks.build_triage_reply(
            triage,
            post.channel,
            post.ts,
            self.file_emoji,
            votes=post.votes,
            vote_emoji=self.vote_emoji,
        )
        # The envelope like every other message of the bot's; data.key is what a worker taking
        # over the post looks for (find_triage_reply).
        meta = _meta(
            TRIAGE_REPLY_EVENT,
            post.channel,
            post.ts,
            kind=triage.kind,
            key=triage_reply_key(post.channel, post.ts),
        )
        return self.chat.post(
            post.channel, text, blks, thread_ts=post.thread_ts or post.ts, metadata=meta
        )

    def find_triage_reply(self, post: StoredPost) -> str | None:
        thread = post.thread_ts or post.ts
        return self.chat.find_by_metadata(
            post.channel,
            TRIAGE_REPLY_EVENT,
            triage_reply_key(post.channel, post.ts),
            float(post.ts) - 1 if _is_ts(post.ts) else 0.0,
            thread_ts=thread,
        )

    def update_triage_reply(
        self,
        post: StoredPost,
        triage: Triage,
        filed: FilingResult | None = None,
        issue: IssueState | None = None,
    ) -> None:
        if not post.reply_ts:
            return
        text, blks = blocks.build_triage_reply(
            triage,
            post.channel,
            post.ts,
            self.file_emoji,
            votes=post.votes,
            filed=filed,
            issue=issue,
            vote_emoji=self.vote_emoji,
        )
        self.chat.update(post.channel, post.reply_ts, text, blks)

    def issue_changed(self, post: StoredPost, change: IssueChange, url: str | None) -> None:
        text, blks = loop_blocks.build_issue_change(change, url)
        self.chat.post(post.channel, text, blks, thread_ts=post.thread_ts or post.ts)

    def react(self, post: StoredPost, emoji: str) -> None:
        self.chat.react(post.channel, post.ts, emoji)

    def edited_after_filing(
        self, post: StoredPost, filed: FilingResult, commented: bool | None
    ) -> None:
        text, blks = blocks.build_edited_after_filing(filed, commented)
        meta = _meta("ideabot_edit_notice", post.channel, post.ts, key=filed.key)
        self.chat.post(post.channel, text, blks, thread_ts=post.thread_ts or post.ts, metadata=meta)

    def post_deleted(self, post: StoredPost, filed: FilingResult | None) -> None:
        if not post.reply_ts:
            return
        text, blks = blocks.build_post_deleted(filed)
        self.chat.update(post.channel, post.reply_ts, text, blks)

    def filing_outcome(self, job: FilingJob, result: FilingResult) -> None:
        if job.thread_comment and result.status in ("commented", "queued"):
            # A reply added to its post's issue: the mark on the reply says so, without a
            # message after every reply (the shortcut's user is told on their own).
            if result.status == "commented":
                self.chat.react(job.channel, job.ts, self.filed_emoji)
            return
        post_ts, idea = split_idea_ts(job.ts)
        if idea is not None:
            # One idea of a notes post: named in the message, retried by its own button.
            text, blks = build_idea_outcome(result, job.channel, post_ts, idea, job.title)
        elif result.status == "failed":
            text, blks = blocks.build_filing_failed(result, job.channel, job.ts, job.comment_on)
        else:
            text, blks = blocks.build_filing_result(result)
        if result.status == "rejected" and result.fields and not job.comment_on:
            # A refused field can be given in the review form (bot.slack.review_blocks).
            from bot.slack.review_blocks import complete_actions

            blks.append(complete_actions(job.channel, job.ts))
        if not text:
            return
        meta = _meta(
            "ideabot_filing_outcome", job.channel, job.ts, status=result.status, key=result.key
        )
        self.chat.post(job.channel, text, blks, thread_ts=job.reply_ts, metadata=meta)
        if result.status in ("filed", "commented"):
            self.chat.react(job.channel, post_ts, self.filed_emoji)

    def needs_fields(self, job: FilingJob, project: str, names: list[str]) -> None:
        from bot.slack.review_blocks import build_needs_fields

        text, blks = build_needs_fields(project, names, job.channel, job.ts)
        self.chat.post(job.channel, text, blks, thread_ts=job.reply_ts)

    def duplicate_offer(self, job: FilingJob, match: Match) -> None:
        text, blks = blocks.build_duplicate_offer(match, job.channel, job.ts)
        meta = _meta("ideabot_duplicate_offer", job.channel, job.ts, key=match.key)
        self.chat.post(job.channel, text, blks, thread_ts=job.reply_ts, metadata=meta)

    def to_requester(
        self, ref: MessageRef, requester: str, thread_ts: str | None, result: FilingResult
    ) -> None:
        if result.status == "denied":
            text, blks = blocks.build_denied()
        elif result.status == "unreadable":
            text, blks = blocks.build_notice("I could not read that message, so nothing was filed.")
        else:
            text, blks = blocks.build_filing_result(result)
        if text:
            self.chat.ephemeral(ref.channel, requester, text, blks, thread_ts=thread_ts)

    def idea_posted(self, channel: str, user: str, text: str) -> str:
        quoted = truncate(escape_mrkdwn(text), 2800).replace("\n", "\n>")
        meta = _meta("ideabot_idea_posted", channel, None)
        return self.chat.post(channel, f"<@{user}> shared an idea:\n>{quoted}", metadata=meta)


def _meta(event_type: str, channel: str, ts: str | None, **data: str | None) -> dict[str, Any]:
    """The Slack metadata of one of the bot's own messages: the event envelope, carrying the
    flow's trace id (the logs of the work that wrote it), about the message at (*channel*,
    *ts*). One event per (type, message), so a repeated reply has the same event id."""
    event = message_event(
        event_type,
        {"channel": channel, "ts": ts, **data},
        trace_id=current_context().get("trace_id"),
        event_id=derived_id(event_type, channel, ts) if ts else None,
    )
    return {"event_type": event_type, "event_payload": event.to_dict()}


def _is_ts(ts: str) -> bool:
    try:
        float(ts)
    except ValueError:
        return False
    return True
