"""The App Home: when someone opens the bot's Home tab, show them where their ideas stand.

Read-only: the person's own ideas (kind, votes, ticket and its status), the team's most-wanted
open ideas of the last seven days and the recently filed ones. Posts from private channels
appear only in their author's own list: the Home tab of someone else may not show them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from bot.domain.home import HomeIdea, HomeView
from bot.domain.ports import Chat, Filings, Posts, PostsByAuthor, StoredPost, TicketStore
from bot.service.channels import IdeaChannels

logger = logging.getLogger(__name__)

IDEA_KINDS = ("idea", "bug", "question")
WEEK = timedelta(days=7)


class HomeStore(Posts, PostsByAuthor, Filings, TicketStore, Protocol):
    """The part of the store the Home tab reads."""


def votes_of(post: StoredPost) -> int:
    """A post's votes: the people who voted for it (VOTE_EMOJI or a reply; bot.domain.votes),
    each once, as the triage reply and the digest count them."""
    return post.votes


@dataclass
class AppHome:
    """The use case behind ``app_home_opened``."""

    store: HomeStore
    chat: Chat
    render: Callable[[HomeView], list[dict[str, Any]]]  # bot.slack.home_blocks.build_home
    channels: IdeaChannels
    project: str = "default"  # the catalogue's namespace, for ticket statuses
    file_emoji: str = "ticket"
    mine_limit: int = 30
    top_limit: int = 10
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def view(self, user: str) -> HomeView:
        """What *user*'s Home tab shows now."""
        now = self.clock()
        mine, total = self.store.posts_by_user(user, self.mine_limit, IDEA_KINDS)
        # The week's most voted; a few more than shown, as some may turn out done already.
        week = sorted(
            (
                p
                for p in self.store.posts_between(now - WEEK, now + timedelta(minutes=1))
                if p.kind in IDEA_KINDS and not p.is_private and votes_of(p) > 0
            ),
            key=lambda p: -votes_of(p),
        )[: self.top_limit * 3]
        filed = [
            f
            for f in self.store.filings_between(now - WEEK, now + timedelta(minutes=1))
            if f.state in ("filed", "commented") and f.issue_key
        ]
        filed_posts = [
            (f, p)
            for f in reversed(filed)  # newest first
            if (p := self.store.get_post(f.channel, f.ts)) is not None
            and not p.deleted
            and not p.is_private
        ][: self.top_limit]
        filings = {(f.channel, f.ts): f for f in filed}
        for post in [*mine, *week]:
            if (post.channel, post.ts) not in filings:
                found = self.store.get_filing(post.channel, post.ts)
                if found is not None and found.issue_key:
                    filings[(post.channel, post.ts)] = found
        statuses = self._statuses({f.issue_key for f in filings.values() if f.issue_key})

        def idea(post: StoredPost) -> HomeIdea:
            filing = filings.get((post.channel, post.ts))
            key = filing.issue_key if filing is not None else None
            return HomeIdea(
                channel=post.channel,
                ts=post.ts,
                title=post.title or post.text[:120] or "(untitled)",
                kind=post.kind or "idea",
                votes=votes_of(post),
                key=key,
                url=filing.issue_url if filing is not None else None,
                status=statuses.get(key) if key else None,
                permalink=post.permalink,
            )

        wanted = sorted(
            (i for i in map(idea, week) if i.open),
            key=lambda i: (-i.votes, i.ts),
        )
        return HomeView(
            user=user,
            mine=[idea(p) for p in mine],
            mine_total=total,
            most_wanted=wanted[: self.top_limit],
            recently_filed=[idea(p) for _, p in filed_posts],
            file_emoji=self.file_emoji,
            channels=tuple(sorted(self.channels.ids)),
        )

    def publish(self, user: str) -> HomeView:
        """Renders *user*'s Home tab and shows it to them."""
        view = self.view(user)
        self.chat.publish_home(user, self.render(view))
        return view

    def _statuses(self, keys: set[str]) -> dict[str, str]:
        if not keys:
            return {}
        try:
            rows = self.store.get_tickets(self.project, sorted(keys))
        except Exception:  # the statuses are a nicety; the tab still shows without them
            logger.warning("could not read ticket statuses for the Home tab", exc_info=True)
            return {}
        return {k: r.ticket.status for k, r in rows.items() if r.ticket and r.ticket.status}
