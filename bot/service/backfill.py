"""History: triage a channel's past posts, and file the ones people wanted, exactly once.

Each post of an export (``bot.domain.backfill.HistoryPost``) is triaged with its thread, as
filing would read it; its votes are the people who reacted or replied. With a vote threshold the
qualifying ideas are filed through the same filer as the live bot, keyed by the same message
(channel and ts), so a later reaction on that post, or a second run, files nothing new. A likely
duplicate of an existing ticket is reported, not filed. A dry run files nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from bot.domain.backfill import HistoryPost, People
from bot.domain.filing import FilingJob, FilingResult
from bot.domain.models import Post, ThreadContext, Triage
from bot.domain.ports import Posts, StoredPost
from bot.domain.threads import ThreadLimits, thread_context, with_thread
from bot.service.filing import Filer
from bot.service.triage import Triager

logger = logging.getLogger(__name__)

FILEABLE_KINDS = ("idea", "bug", "question")

Action = Literal[
    "none",  # not asked to file, or not an idea
    "below_min_votes",
    "likely_duplicate",  # qualifies, but resembles an existing ticket: left for a person
    "would_file",  # dry run
    "filed",
    "already",  # filed before (by the bot, a reaction, an earlier run)
    "in_progress",
    "queued",  # Jira did not answer: the outbox files it later
    "rejected",
    "failed",
    "unavailable",
]


@dataclass(frozen=True)
class BackfillLine:
    """What the backfill made of one post."""

    post: HistoryPost
    triage: Triage
    permalink: str | None
    action: Action
    key: str | None = None
    url: str | None = None


@dataclass
class Backfill:
    """The use case behind ``python -m bot backfill``."""

    triager: Triager
    filer: Filer  # with a notifier that says nothing in Slack (old threads stay quiet)
    store: Posts
    limits: ThreadLimits = field(default_factory=ThreadLimits)

    def run(
        self,
        posts: Iterable[HistoryPost],
        people: People,
        permalink: Callable[[str, str], str | None],
        min_votes: int | None = None,
        apply: bool = False,
    ) -> Iterator[BackfillLine]:
        """One line per post, in the order given; files only with *min_votes* and *apply*."""
        for post in posts:
            if not post.text.strip():
                continue
            thread = thread_context(post.replies, post.ts, people.name_of, self.limits)
            triage = self.triager.triage(
                Post(
                    id=f"{post.channel}:{post.ts}",
                    text=with_thread(post.text, thread),
                    channel=post.channel,
                    user=post.user,
                    ts=post.ts,
                )
            )
            link = permalink(post.channel, post.ts)
            action, result = self._decide(post, triage, thread, link, people, min_votes, apply)
            key = result.key if result is not None else None
            url = result.url if result is not None else None
            yield BackfillLine(post, triage, link, action, key, url)

    def _decide(
        self,
        post: HistoryPost,
        triage: Triage,
        thread: ThreadContext,
        link: str | None,
        people: People,
        min_votes: int | None,
        apply: bool,
    ) -> tuple[Action, FilingResult | None]:
        done = self.filer.existing(post.channel, post.ts)
        if done is not None and done.status == "already":
            return "already", done
        if min_votes is None or triage.kind not in FILEABLE_KINDS:
            return "none", None
        if post.votes < min_votes:
            return "below_min_votes", None
        if triage.likely_duplicate and triage.similar:
            match = triage.similar[0]
            return "likely_duplicate", FilingResult("duplicate", key=match.key, url=match.url)
        if not apply:
            return "would_file", None
        if done is not None:  # someone's request for it is under way right now
            return "in_progress", done
        # Stored like a live post, so the Home tab and a later reaction see it.
        self.store.save_post(
            StoredPost(
                channel=post.channel,
                ts=post.ts,
                user=post.user,
                text=post.text,
                created=post.created,
                permalink=link,
                kind=triage.kind,
                title=triage.title,
                summary=triage.summary,
                triage_json=triage.model_dump_json(),
                is_private=post.is_private,
            )
        )
        person = people.person(post.user)
        job = FilingJob(
            channel=post.channel,
            ts=post.ts,
            reply_ts=post.ts,
            requester="backfill",
            text=post.text,
            kind=triage.kind,
            title=triage.title,
            summary=triage.summary,
            labels=triage.labels,
            author=post.user,
            author_name=person.name,
            author_email=person.email,
            permalink=link,
            is_private=post.is_private,
            thread=thread if thread.replies else None,
        )
        result = self.filer.submit(job)
        logger.info("backfill %s:%s: %s %s", post.channel, post.ts, result.status, result.key or "")
        return _ACTIONS.get(result.status, "failed"), result


_ACTIONS: dict[str, Action] = {
    "filed": "filed",
    "commented": "filed",
    "already": "already",
    "in_progress": "in_progress",
    "queued": "queued",
    "rejected": "rejected",
    "failed": "failed",
    "unavailable": "unavailable",
}
