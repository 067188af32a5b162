"""Jira back into Slack, and votes into Jira: one look at a filed issue, under a fenced claim.

A look compares the issue's status, assignee and resolution now with what was last announced in
its post's thread (``IssueWatch``) and, when a wanted field moved, says so once in the thread
("IDEA-21 moved to *In Progress* · assigned to Dana"), renders the triage reply again with the
state, and reacts to the post when the issue is resolved. It also writes the post's votes into
the issue's description when they changed. The sync (every ``JIRA_SYNC_MINUTES`` and by hand),
Jira's webhook and vote changes all ask for a look; whoever holds the key's claim does it, and a
request made meanwhile makes the holder look once more, so a burst of changes becomes one
message and the sync and the webhook never both announce a change.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal, Protocol

from bot.domain.filing import FilingResult
from bot.domain.flags import AllOn, Flags
from bot.domain.issue_changes import (
    ANNOUNCE_FIELDS,
    AnnounceField,
    FiledPost,
    IssueChange,
    IssueReader,
    IssueState,
    IssueWatch,
    diff,
)
from bot.domain.metrics import ISSUE_CHANGES, VOTE_WRITES, Metrics, NullMetrics
from bot.domain.models import Triage
from bot.domain.ports import Filings, KeyValue, Notifier, Posts, StoredPost

logger = logging.getLogger(__name__)

Source = Literal["sync", "webhook", "vote"]
# Long enough for one Jira read, one Slack message, a reply update, a reaction and a Jira write,
# each under its own deadline; a holder that died frees the key after it.
CLAIM = timedelta(seconds=90)
MAX_LOOKS = 5  # a key changed again while being looked at is looked at again, this many times
# Set once, the first time the feature runs: issues filed before it get their state recorded
# silently, so turning the feature on does not announce every old issue's history.
STARTED_KEY = "jira-announce:started"
VOTES_KEY = "jira-votes:{key}"  # the vote count last written into the issue


class LoopStore(Posts, Filings, KeyValue, IssueWatch, Protocol):
    """The part of the store this use case needs."""


@dataclass
class AnnounceChanges:
    """The use case behind the sync's changed issues, Jira's webhook and vote changes."""

    store: LoopStore
    issues: IssueReader
    notifier: Notifier
    fields: Sequence[AnnounceField] = ANNOUNCE_FIELDS
    resolved_emoji: str = ""
    votes_in_jira: bool = True
    flags: Flags = field(default_factory=AllOn)
    metrics: Metrics = field(default_factory=NullMetrics)
    clock: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        # The first process with the feature records when it started (see STARTED_KEY).
        raw = self.store.get_value(STARTED_KEY)
        if raw is None:
            raw = self.clock().isoformat()
            self.store.set_value(STARTED_KEY, raw)
        self.started = datetime.fromisoformat(raw)

    def changed(self, keys: Iterable[str], source: Source = "sync") -> dict[str, str]:
        """Looks at each of *keys* filed from a post (others are not ours); returns the
        outcome per looked-at key. One key's failure does not stop the others."""
        filed = self.store.filed_posts(list(dict.fromkeys(keys)))
        out: dict[str, str] = {}
        for key, post in filed.items():
            try:
                out[key] = self._look(post, source)
            except Exception:
                logger.warning("could not look at %s for changes", key, exc_info=True)
                self.metrics.inc(ISSUE_CHANGES, source=source, outcome="failed")
                out[key] = "failed"
        return out

    def look(self, key: str, source: Source = "webhook") -> str:
        """Looks at one issue (a webhook said it changed); "not_ours" unless filed from a post.
        Raises when Jira or Slack failed (the next sync looks again)."""
        post = self.store.filed_posts([key]).get(key)
        if post is None:
            return "not_ours"
        try:
            return self._look(post, source)
        except Exception:
            self.metrics.inc(ISSUE_CHANGES, source=source, outcome="failed")
            raise

    def votes_changed(self, post: StoredPost) -> str:
        """Writes the post's votes into its issue (when filed); "not_filed" otherwise."""
        filing = self.store.get_filing(post.channel, post.ts)
        if filing is None or filing.state != "filed" or not filing.issue_key:
            return "not_filed"
        filed = FiledPost(filing.issue_key, post.channel, post.ts, filing.updated)
        try:
            return self._look(filed, "vote")
        except Exception:
            logger.warning("could not write the votes of %s", filing.issue_key, exc_info=True)
            self.metrics.inc(VOTE_WRITES, outcome="failed")
            return "failed"

    # ------------------------------------------------------------------ one look

    def _look(self, filed: FiledPost, source: Source) -> str:
        outcome = "busy"
        announce = source != "vote"  # a vote alone needs no read of the issue's state
        for _ in range(MAX_LOOKS):
            now = self.clock()
            claim = self.store.claim_issue(filed.key, now + CLAIM, now)
            if claim is None:
                # The holder was told to look again: it will see what we would have.
                outcome = "busy"
                break
            announced: IssueState | None = None
            try:
                if announce:
                    said, announced = self._announce(filed, claim.announced)
                    # Of several looks in a row, one that announced is what the caller hears.
                    outcome = said if outcome in ("busy", "unchanged") else outcome
                else:
                    outcome = "unchanged"
                self._write_votes(filed, announced or claim.announced)
            finally:
                done = self.store.finish_issue(filed.key, claim.token, announced, self.clock())
            if done == "lost":
                logger.warning("lost the claim on %s while looking at it", filed.key)
            if done != "again":
                break
            announce = True  # someone asked meanwhile; we cannot tell what changed
        if source != "vote" or outcome != "unchanged":
            self.metrics.inc(ISSUE_CHANGES, source=source, outcome=outcome)
        logger.info("looked at %s (%s): %s", filed.key, source, outcome)
        return outcome

    def _announce(
        self, filed: FiledPost, before: IssueState | None
    ) -> tuple[str, IssueState | None]:
        """(outcome, the state to record) for one look at the issue."""
        state = self.issues.issue_state(filed.key)
        if state is None:
            return "gone", None
        if before is None:
            if self._filed_before_start(filed):
                return "baseline", state
            before = state.fresh()
        change = diff(before, state, self.fields)
        if change is None:
            return "unchanged", state
        post = self.store.get_post(filed.channel, filed.ts)
        if post is None or post.deleted:
            return "skipped", state
        if not self.flags.enabled("jira-announcements", channel=post.channel):
            return "skipped", state  # recorded: switching it on later does not replay history
        self._tell(post, filed, change)
        return "announced", state

    def _tell(self, post: StoredPost, filed: FiledPost, change: IssueChange) -> None:
        filing = self.store.get_filing(filed.channel, filed.ts)
        url = filing.issue_url if filing is not None else None
        self.notifier.issue_changed(post, change, url)
        self.refresh_reply(post, change.after)
        if change.resolved_now and self.resolved_emoji:
            try:
                self.notifier.react(post, self.resolved_emoji)
            except Exception:  # the message said it; a missing reaction is cosmetic
                logger.warning("could not react to %s:%s", post.channel, post.ts, exc_info=True)

    def refresh_reply(self, post: StoredPost, state: IssueState | None = None) -> None:
        """Renders the post's triage reply again: triage, votes, ticket and its state."""
        post = self.store.get_post(post.channel, post.ts) or post
        triage = Triage.from_stored(post.triage_json)
        filing = self.store.get_filing(post.channel, post.ts)
        if not post.reply_ts or triage is None or post.deleted or filing is None:
            return
        if filing.state != "filed" or not filing.issue_key:
            return
        if state is None:
            state = self.store.announced_state(filing.issue_key)
        filed = FilingResult("already", key=filing.issue_key, url=filing.issue_url)
        self.notifier.update_triage_reply(post, triage, filed, issue=state)

    def _write_votes(self, filed: FiledPost, _state: IssueState | None) -> None:
        if not self.votes_in_jira:
            return
        post = self.store.get_post(filed.channel, filed.ts)
        if post is None or post.deleted:
            return
        if not self.flags.enabled("votes-in-jira", channel=post.channel):
            return
        key = VOTES_KEY.format(key=filed.key)
        written = self.store.get_value(key)
        if post.votes == 0 and written is None:
            return  # nothing to say yet
        if written == str(post.votes):
            return
        try:
            wrote = self.issues.write_votes(filed.key, post.votes)
        except Exception:
            self.metrics.inc(VOTE_WRITES, outcome="failed")
            raise
        self.store.set_value(key, str(post.votes))
        self.metrics.inc(VOTE_WRITES, outcome="written" if wrote else "unchanged")
        logger.info("%s: votes in Slack now %d", filed.key, post.votes)

    def _filed_before_start(self, filed: FiledPost) -> bool:
        return filed.filed_at is not None and filed.filed_at < self.started
