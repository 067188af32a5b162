"""Engagement: who reacted to and replied to an idea post, each person counted once.

The store keeps one record per (person, emoji) and (person, reply) and derives the post's
counts from them, so redelivered events, a second emoji and a second reply change nothing. The
post's author and the bot are not counted: a vote is someone else's. A reaction with one of the
vote emoji (``VOTE_EMOJI``) and a reply are votes (``bot.domain.votes``); when the number of
people who voted changes, the triage reply is rendered again to show it ("👍 3").
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from bot.domain.models import Triage
from bot.domain.ports import Engagement, EngagementChange, Notifier, Posts, StoredPost
from bot.domain.votes import DEFAULT_VOTE_EMOJI, is_vote_emoji
from bot.service.announce import AnnounceChanges
from bot.service.file_message import Reaction
from bot.service.filing import Filer

logger = logging.getLogger(__name__)


class EngagementStore(Posts, Engagement, Protocol):
    """The part of the store this use case needs."""


@dataclass
class RecordEngagement:
    """The use case behind reactions added and removed, and replies posted and deleted."""

    store: EngagementStore
    notifier: Notifier
    filer: Filer | None = None  # to name the ticket when the reply is rendered again
    vote_emoji: Sequence[str] = DEFAULT_VOTE_EMOJI  # VOTE_EMOJI: the reactions that are votes
    # Once filed: renders the reply with the state, and writes the votes into the issue.
    loop: AnnounceChanges | None = None

    def reaction(self, reaction: Reaction, added: bool = True) -> EngagementChange | None:
        """Records (or forgets) one person's emoji on a stored post; None when it does not count
        (the bot's own, the author's own, a message that is not a stored post)."""
        ref = reaction.ref
        if not reaction.user or reaction.by_bot or not reaction.emoji:
            return None
        post = self.store.get_post(ref.channel, ref.ts)
        if post is None or post.deleted or reaction.user == post.user:
            return None
        channel, ts, user, emoji = ref.channel, ref.ts, reaction.user, reaction.emoji
        if added:
            vote = is_vote_emoji(emoji, self.vote_emoji)
            change = self.store.add_engagement(channel, ts, "reaction", user, emoji, vote=vote)
        else:
            change = self.store.remove_engagement(channel, ts, "reaction", user, emoji)
        if change is not None and change.before.votes != change.after.votes:
            self._show_votes(change.after)
        return change

    def reply(
        self, channel: str, thread_ts: str, reply_ts: str, user: str, added: bool = True
    ) -> EngagementChange | None:
        """Records (or forgets, when the reply is deleted) one reply in a stored post's thread."""
        if not user or not thread_ts or thread_ts == reply_ts:
            return None
        post = self.store.get_post(channel, thread_ts)
        if post is None or post.deleted or user == post.user:
            return None
        # A reply by someone else is a vote (bots' messages never reach here).
        if added:
            change = self.store.add_engagement(
                channel, thread_ts, "reply", user, reply_ts, vote=True
            )
        else:
            change = self.store.remove_engagement(channel, thread_ts, "reply", user, reply_ts)
        if change is not None and change.before.votes != change.after.votes:
            self._show_votes(change.after)
        return change

    def _show_votes(self, changed: StoredPost) -> None:
        # Two votes handled at once can send their renders out of order, the older count last:
        # after rendering, read again and render once more while the count moved meanwhile.
        post = self.store.get_post(changed.channel, changed.ts) or changed
        for _ in range(3):
            self._render_votes(post)
            again = self.store.get_post(post.channel, post.ts)
            if again is None or again.deleted or again.votes == post.votes:
                return
            post = again

    def _render_votes(self, post: StoredPost) -> None:
        if self.loop is not None and self.loop.votes_changed(post) != "not_filed":
            self.loop.refresh_reply(post)
            return
        triage = Triage.from_stored(post.triage_json)
        if not post.reply_ts or triage is None or post.deleted:
            return
        filed = self.filer.existing(post.channel, post.ts) if self.filer else None
        self.notifier.update_triage_reply(
            post, triage, filed if filed is not None and filed.status == "already" else None
        )
