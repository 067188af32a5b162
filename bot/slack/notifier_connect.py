"""The Notifier for workspaces with Slack Connect channels (shared with other organisations).

In a shared channel the bot's replies are read by people outside the organisation. What is
internal — similar tickets' titles, Jira keys and links, filing results — goes only to members
of this workspace, as ephemeral messages to the person concerned; the channel gets the part of
the reply that only repeats what the post itself said. Everywhere else the replies are as usual.
"""

from __future__ import annotations

import logging

from bot.domain.filing import FilingJob, FilingResult
from bot.domain.issue_changes import IssueState
from bot.domain.models import Match, MessageRef, Triage
from bot.domain.notes import split_idea_ts
from bot.domain.ports import StoredPost
from bot.slack import blocks
from bot.slack.notes_blocks import build_idea_outcome
from bot.slack.notifier import SlackNotifier

logger = logging.getLogger(__name__)

# Told to someone from outside in a shared channel, instead of a key or a title.
FOR_MEMBERS = (
    "This channel is shared with other organisations, so the Jira details go only to members "
    "of this workspace."
)


class ConnectSafeNotifier(SlackNotifier):
    """``SlackNotifier`` that keeps internal tickets out of Slack Connect channels."""

    def _shared(self, channel: str) -> bool:
        try:
            return self.chat.channel_is_shared(channel)
        except Exception:  # not knowing is treated as shared: never leak
            logger.warning("could not tell whether %s is shared", channel, exc_info=True)
            return True

    def _member(self, user: str | None) -> bool:
        if not user:
            return False
        try:
            return self.chat.person(user).external is False
        except Exception:
            logger.warning("could not tell whether %s is a member", user, exc_info=True)
            return False

    @staticmethod
    def _public(triage: Triage) -> Triage:
        ideas = tuple(i.model_copy(update={"similar": ()}) for i in triage.ideas)
        return triage.model_copy(update={"similar": (), "likely_duplicate": False, "ideas": ideas})

    @staticmethod
    def _keyless(filed: FilingResult | None) -> FilingResult | None:
        if filed is None or not filed.key:
            return filed
        return FilingResult("already")

    def triage_reply(self, post: StoredPost, triage: Triage) -> str:
        if not self._shared(post.channel):
            return super().triage_reply(post, triage)
        ts = super().triage_reply(post, self._public(triage))
        internal = triage.similar or any(i.similar for i in triage.ideas)
        if internal and self._member(post.user):
            text, blks = blocks.build_triage_reply(
                triage, post.channel, post.ts, self.file_emoji, votes=post.reactions
            )
            self.chat.ephemeral(
                post.channel, post.user, text, blks, thread_ts=post.thread_ts or post.ts
            )
        return ts

    def update_triage_reply(
        self,
        post: StoredPost,
        triage: Triage,
        filed: FilingResult | None = None,
        issue: IssueState | None = None,
    ) -> None:
        if not self._shared(post.channel):
            super().update_triage_reply(post, triage, filed, issue)
            return
        # The issue's status is internal too.
        super().update_triage_reply(post, self._public(triage), self._keyless(filed))

    def post_deleted(self, post: StoredPost, filed: FilingResult | None) -> None:
        if not self._shared(post.channel):
            super().post_deleted(post, filed)
            return
        super().post_deleted(post, None)

    def edited_after_filing(
        self, post: StoredPost, filed: FilingResult, commented: bool | None
    ) -> None:
        if not self._shared(post.channel):
            super().edited_after_filing(post, filed, commented)
            return
        if self._member(post.user):
            text, blks = blocks.build_edited_after_filing(filed, commented)
            self.chat.ephemeral(
                post.channel, post.user, text, blks, thread_ts=post.thread_ts or post.ts
            )

    def filing_outcome(self, job: FilingJob, result: FilingResult) -> None:
        quiet = job.thread_comment and result.status in ("commented", "queued")
        if quiet or not self._shared(job.channel):  # (a reply added to its issue: a mark only)
            super().filing_outcome(job, result)
            return
        post_ts, idea = split_idea_ts(job.ts)
        if idea is not None:  # one idea of a notes post
            text, blks = build_idea_outcome(result, job.channel, post_ts, idea, job.title)
        elif result.status == "failed":
            text, blks = blocks.build_filing_failed(result, job.channel, job.ts, job.comment_on)
        else:
            text, blks = blocks.build_filing_result(result)
        if text and self._member(job.requester):
            self.chat.ephemeral(job.channel, job.requester, text, blks, thread_ts=job.reply_ts)
        elif text:
            self.chat.ephemeral(
                job.channel,
                job.requester,
                *blocks.build_notice(FOR_MEMBERS),
                thread_ts=job.reply_ts,
            )
        if result.status in ("filed", "commented"):
            self.chat.react(job.channel, post_ts, self.filed_emoji)

    def duplicate_offer(self, job: FilingJob, match: Match) -> None:
        if not self._shared(job.channel):
            super().duplicate_offer(job, match)
            return
        if self._member(job.requester):
            text, blks = blocks.build_duplicate_offer(match, job.channel, job.ts)
        else:
            text, blks = blocks.build_notice(FOR_MEMBERS)
        self.chat.ephemeral(job.channel, job.requester, text, blks, thread_ts=job.reply_ts)

    def to_requester(
        self, ref: MessageRef, requester: str, thread_ts: str | None, result: FilingResult
    ) -> None:
        if result.key and self._shared(ref.channel) and not self._member(requester):
            text, blks = blocks.build_notice(FOR_MEMBERS)
            self.chat.ephemeral(ref.channel, requester, text, blks, thread_ts=thread_ts)
            return
        super().to_requester(ref, requester, thread_ts, result)
