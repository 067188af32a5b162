"""Filing rules: who may file, what a filing request carries, how long to wait before a retry.

Pure values and functions; the use case that runs them is ``bot.service.filing``.
"""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from bot.domain.models import (
    LABEL_MAX,
    RESERVED_LABEL_PREFIX,
    Frozen,
    Match,
    MessageRef,
    ThreadContext,
    Triage,
    clean_label,
)

logger = logging.getLogger(__name__)

TOPIC = "jira.file"
MARKER_PREFIX = "ideabot-"
AMBIGUOUS_RETRY_SECONDS = 30.0

Status = Literal[
    "filed",  # created now (key, url)
    "commented",  # the post was added to an existing issue
    "already",  # filed (or commented) before: key, url
    "in_progress",  # someone else's request is being processed
    "queued",  # Jira is unavailable; the outbox will retry
    "duplicate",  # a likely duplicate exists: ask the user (match)
    "rejected",  # Jira refused the issue (message, fields)
    "failed",  # gave up after too many attempts or too long (message); a retry may be asked
    "denied",  # the user may not file
    "unreadable",  # the message could not be read, so there is nothing to file
    "unavailable",  # no tracker configured
    "ignored",  # not a filing request after all (e.g. a reaction on the bot's own reply)
]


class FilingJob(Frozen):
    """One message to file (or to add as a comment), as stored in the outbox item.

    Everything the attempt needs is here, so a worker on any replica can run it after a restart.
    """

    channel: str
    ts: str
    reply_ts: str  # the thread the bot answers in
    requester: str
    text: str
    kind: str = "idea"
    title: str = ""
    summary: str = ""
    labels: tuple[str, ...] = ()
    author: str = ""
    author_name: str | None = None
    author_email: str | None = None
    permalink: str | None = None
    is_private: bool = False
    comment_on: str | None = None
    trace_id: str | None = None  # the flow it belongs to (logs, the Jira footer)
    thread: ThreadContext | None = None  # the replies under the post, for the description
    thread_comment: bool = False  # a reply added to its filed post's issue ("Add to KEY")

    @property
    def ref(self) -> MessageRef:
        return MessageRef(channel=self.channel, ts=self.ts)

    @property
    def key(self) -> str:
        return self.ref.key


@dataclass(frozen=True)
class FilingResult:
    """What a filing request or attempt came to; see :data:`Status`."""

    status: Status
    key: str | None = None
    url: str | None = None
    match: Match | None = None
    message: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    retry_at: datetime | None = None


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with full jitter: attempt *n* waits U(0, min(cap, base * 2**n)).

    The floor keeps the first retry "within seconds" but not instantaneous; ``Retry-After`` from
    Jira is honoured as a lower bound (capped at *max_retry_after*).
    """

    base: float = 2.0
    cap: float = 300.0
    floor: float = 1.0
    max_retry_after: float = 3600.0

    def delay(
        self, attempt: int, retry_after: float | None, rng: Callable[[float, float], float]
    ) -> float:
        """Seconds to wait before retry number *attempt* (0 = the first retry)."""
        ceiling = min(self.cap, self.base * (2 ** min(attempt, 30)))
        wait = max(self.floor, rng(0.0, ceiling))
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def marker_label(channel: str, ts: str, secret: str) -> str:
    """The label that identifies the issue (or comment) filed for one Slack message, across
    restarts and replicas.

    An HMAC of the message's id under the install's *secret* (kept in the store): anyone can
    read a message's channel and ts from its permalink, and a marker computable from them could
    be planted on another issue for a retry to adopt.
    """
    mac = hmac.new(secret.encode(), f"{channel}:{ts}".encode(), hashlib.sha256)
    return f"{MARKER_PREFIX}{mac.hexdigest()[:32]}"


@dataclass(frozen=True)
class RetryLimits:
    """When the outbox stops retrying one filing: after *max_attempts* failed attempts, or once
    its work item is older than *max_age*. The filing is then "failed" and may be retried."""

    max_attempts: int = 20
    max_age: timedelta = timedelta(hours=24)

    def exhausted(self, attempts: int, age: timedelta) -> bool:
        """True when *attempts* failed attempts over *age* are enough to give up."""
        return attempts >= self.max_attempts or age >= self.max_age


@dataclass(frozen=True)
class LabelPolicy:
    """Which labels from triage (an analyzer, a model) reach Jira.

    Labels are normalised (``clean_label``); with *allow* set only the listed ones pass; *deny*
    always wins; anything starting with ``RESERVED_LABEL_PREFIX`` is always denied. Entries are
    label names, or shell-style patterns (``team-*``), compared after normalising.
    """

    allow: tuple[str, ...] = ()
    deny: tuple[str, ...] = ()

    def filter(self, labels: Iterable[str]) -> tuple[str, ...]:
        """The labels of *labels* that may be set on an issue, normalised, at most LABEL_MAX."""
        allow = [a for a in (_pattern(x) for x in self.allow) if a]
        deny = [d for d in (_pattern(x) for x in self.deny) if d]
        out: list[str] = []
        for raw in labels:
            label = clean_label(raw)
            if not label or label in out or label.startswith(RESERVED_LABEL_PREFIX):
                continue
            if any(fnmatch.fnmatchcase(label, d) for d in deny):
                continue
            if allow and not any(fnmatch.fnmatchcase(label, a) for a in allow):
                continue
            out.append(label)
        return tuple(out[:LABEL_MAX])


def _pattern(entry: str) -> str:
    # Compared with normalised labels: lower case, whitespace as "-" (wildcards kept).
    return "-".join(entry.lower().split())


def is_duplicate_verdict(triage: Triage | None) -> Match | None:
    """The ticket to offer instead of filing, when triage called the best match a duplicate."""
    if triage is None or not triage.likely_duplicate or not triage.similar:
        return None
    return triage.similar[0]


def may_file(
    user: str,
    allowed_users: Iterable[str],
    allowed_groups: Iterable[str],
    members_of: Callable[[str], Iterable[str]],
) -> bool:
    """True when *user* may file: both lists empty, or listed, or in a listed group."""
    users = {u.strip() for u in allowed_users if u.strip()}
    groups = [g.strip() for g in allowed_groups if g.strip()]
    if not users and not groups:
        return True
    if user in users:
        return True
    for group in groups:
        try:
            if user in set(members_of(group)):
                return True
        except Exception:
            logger.warning("could not read the members of user group %s", group, exc_info=True)
    return False


def check_issue_types(mapping: dict[str, str], available: Iterable[str]) -> list[str]:
    """Problems with the kind -> issue type *mapping* given the project's types (empty: fine)."""
    names = {a.lower(): a for a in available}
    problems = []
    for kind, issue_type in sorted(mapping.items()):
        if issue_type.lower() not in names:
            problems.append(
                f"JIRA_ISSUE_TYPES: {kind}={issue_type} is not an issue type of the project "
                f"(available: {', '.join(sorted(names.values())) or 'none'})"
            )
    return problems
