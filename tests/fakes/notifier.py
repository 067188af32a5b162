"""A Notifier that records what the use cases would say in Slack."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

from bot.domain.filing import FilingJob, FilingResult
from bot.domain.issue_changes import IssueChange, IssueState
from bot.domain.models import Match, MessageRef, Triage
from bot.domain.ports import ChatError, StoredPost


@dataclass
class RecordingNotifier:
    """Every call is appended to ``said`` as (what, details); ``cannot_post`` fails /idea posts."""

    said: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    cannot_post: bool = False
    _ts: Any = field(default_factory=lambda: itertools.count(1))

    def _next_ts(self) -> str:
        return f"1800000000.{next(self._ts):06d}"

    def triage_reply(self, post: StoredPost, triage: Triage) -> str:
        ts = self._next_ts()
        self.said.append(
            ("triage_reply", {"ref": (post.channel, post.ts), "kind": triage.kind, "ts": ts})
        )
        return ts

    def find_triage_reply(self, post: StoredPost) -> str | None:
        """A reply recorded here for the post (as Slack would show it), the first one."""
        for what, details in self.said:
            if what == "triage_reply" and details["ref"] == (post.channel, post.ts):
                return str(details["ts"])
        return None

    def filing_outcome(self, job: FilingJob, result: FilingResult) -> None:
        self.said.append(("filing_outcome", {"job": job, "result": result}))

    def duplicate_offer(self, job: FilingJob, match: Match) -> None:
        self.said.append(("duplicate_offer", {"job": job, "match": match}))

    def to_requester(
        self, ref: MessageRef, requester: str, thread_ts: str | None, result: FilingResult
    ) -> None:
        self.said.append(("to_requester", {"ref": ref, "requester": requester, "result": result}))

    def idea_posted(self, channel: str, user: str, text: str) -> str:
        if self.cannot_post:
            raise ChatError("not_in_channel")
        self.said.append(("idea_posted", {"channel": channel, "user": user, "text": text}))
        return self._next_ts()

    def update_triage_reply(
        self,
        post: StoredPost,
        triage: Triage,
        filed: FilingResult | None = None,
        issue: IssueState | None = None,
    ) -> None:
        self.said.append(
            (
                "update_triage_reply",
                {
                    "ref": (post.channel, post.ts),
                    "reply_ts": post.reply_ts,
                    "kind": triage.kind,
                    "title": triage.title,
                    "votes": post.votes,
                    "filed": filed,
                    "issue": issue,
                },
            )
        )

    def issue_changed(self, post: StoredPost, change: IssueChange, url: str | None) -> None:
        self.said.append(
            ("issue_changed", {"ref": (post.channel, post.ts), "change": change, "url": url})
        )

    def react(self, post: StoredPost, emoji: str) -> None:
        self.said.append(("react", {"ref": (post.channel, post.ts), "emoji": emoji}))

    def edited_after_filing(
        self, post: StoredPost, filed: FilingResult, commented: bool | None
    ) -> None:
        self.said.append(
            (
                "edited_after_filing",
                {"ref": (post.channel, post.ts), "filed": filed, "commented": commented},
            )
        )

    def post_deleted(self, post: StoredPost, filed: FilingResult | None) -> None:
        self.said.append(
            ("post_deleted", {"ref": (post.channel, post.ts), "reply_ts": post.reply_ts})
        )

    def kinds(self) -> list[str]:
        """What was said, in order (the first element of each entry)."""
        return [k for k, _ in self.said]

    def outcomes(self) -> list[str]:
        """The statuses of the filing outcomes told in threads, in order."""
        return [d["result"].status for k, d in self.said if k == "filing_outcome"]
