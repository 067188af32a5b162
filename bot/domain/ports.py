"""Ports: the small interfaces through which the domain reaches the outside world.

Adapters in ``bot.adapters`` implement them; tests implement them with fakes that record calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from bot.domain.models import Analysis, CreatedIssue, LabelledText, Match, NewIssue, Post, Ticket

if TYPE_CHECKING:  # numpy is a plain array library, not an SDK; only the type is needed here
    import numpy as np
    import numpy.typing as npt

    Vectors = npt.NDArray[np.float32]
else:
    Vectors = Any


# --------------------------------------------------------------------------- errors


class TrackerError(Exception):
    """Base for tracker failures the domain knows how to handle."""


class TrackerRetryable(TrackerError):
    """5xx, 429, timeouts, connection errors: retry later (after *retry_after* s if known)."""

    def __init__(
        self, message: str, retry_after: float | None = None, ambiguous: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        # True when the request may have taken effect anyway (a timeout after sending, a 504):
        # a retry must first look for what the lost answer would have told us.
        self.ambiguous = ambiguous


class TrackerRejected(TrackerError):
    """4xx: the request itself is wrong (missing required field, bad issue type). Do not retry.

    *fields* maps Jira field names to Jira's message for each, when Jira said which.
    """

    def __init__(self, message: str, fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or {}


class AnalyzerError(Exception):
    """The analyzer could not produce a valid analysis (timeout, provider error, invalid output)."""


# --------------------------------------------------------------------------- ports


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors of a fixed dimension."""

    model_id: str
    dim: int

    def embed(self, texts: Sequence[str]) -> Vectors: ...


@runtime_checkable
class Analyzer(Protocol):
    """Classifies and summarises one post."""

    name: str

    def analyze(self, post: Post) -> Analysis: ...


@runtime_checkable
class TicketIndex(Protocol):
    """Existing tickets, searchable by meaning and words.

    Implementations embed with the Embedder they were built with. ``search`` returns matches
    best first with fused scores in [0, 1]. Upserting a key that exists replaces it.
    """

    def upsert(self, tickets: Sequence[Ticket]) -> int: ...

    def delete(self, keys: Sequence[str]) -> None: ...

    def search(self, text: str, top_k: int = 10) -> list[Match]: ...

    def search_many(self, texts: Sequence[str], top_k: int = 10) -> list[list[Match]]: ...

    def count(self) -> int: ...

    def labelled(self) -> list[tuple[Ticket, Vectors]]:
        """Tickets that carry an issue type, with their vectors (for the classifier).

        Each vector is the body's (dim), or the body's followed by the title's (2 x dim).
        """
        ...

    def version(self) -> str:
        """Changes whenever the contents change, so caches know when to refresh."""
        ...


class Tracker(Protocol):
    """The issue tracker (Jira)."""

    def create_issue(self, issue: NewIssue) -> CreatedIssue: ...

    def add_comment(self, key: str, body: str, link_url: str | None = None) -> str: ...

    def issue_types(self) -> list[str]: ...

    def search(
        self, jql: str, page_token: str | None = None, page_size: int = 100
    ) -> tuple[list[Ticket], str | None]:
        """One page of issues and the token of the next page (None at the end)."""
        ...

    def browse_url(self, key: str) -> str: ...


@dataclass(frozen=True)
class StoredPost:
    """A Slack message the bot saw in an idea channel, with what triage made of it."""

    channel: str
    ts: str
    user: str
    text: str
    created: datetime
    thread_ts: str | None = None
    permalink: str | None = None
    kind: str | None = None
    title: str | None = None
    summary: str | None = None
    triage_json: str | None = None
    reply_ts: str | None = None
    reactions: int = 0
    replies: int = 0
    is_private: bool = False


@dataclass(frozen=True)
class Filing:
    """The exactly-once record for one Slack message -> one Jira issue."""

    channel: str
    ts: str
    state: str  # "claimed" | "queued" | "filed" | "failed" | "commented"
    owner: str
    issue_key: str | None = None
    issue_url: str | None = None
    error: str | None = None
    attempts: int = 0
    updated: datetime | None = None


@dataclass(frozen=True)
class OutboxItem:
    id: int
    topic: str
    key: str
    payload: dict[str, Any]
    attempts: int
    next_at: datetime
    last_error: str | None = None


@dataclass(frozen=True)
class DigestRecord:
    digest: str
    channel: str
    day: date
    state: str  # "claimed" | "posted"
    message_ts: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Store(Protocol):
    """Durable state. Every exactly-once decision is a unique key here."""

    # posts
    def save_post(self, post: StoredPost) -> None: ...
    def get_post(self, channel: str, ts: str) -> StoredPost | None: ...
    def update_post(self, channel: str, ts: str, **fields: Any) -> None: ...
    def posts_between(
        self, start: datetime, end: datetime, channels: Iterable[str] | None = None
    ) -> list[StoredPost]: ...

    # Slack event de-duplication (event_id); True the first time only
    def first_delivery(self, event_id: str) -> bool: ...

    # filing: claim is atomic (INSERT ... unique); False means someone else owns it
    def claim_filing(self, channel: str, ts: str, owner: str) -> bool: ...
    def get_filing(self, channel: str, ts: str) -> Filing | None: ...
    def update_filing(self, channel: str, ts: str, **fields: Any) -> None: ...
    def filings_between(self, start: datetime, end: datetime) -> list[Filing]: ...

    # outbox
    def enqueue(self, topic: str, key: str, payload: dict[str, Any], at: datetime) -> bool:
        """Adds an item; False if an item with the same (topic, key) is already pending."""
        ...

    def due(self, now: datetime, limit: int = 10) -> list[OutboxItem]: ...
    def lease(self, item_id: int, until: datetime) -> bool:
        """Takes an item for work until *until*; False when another worker has it."""
        ...

    def finish(self, item_id: int) -> None: ...
    def retry_later(self, item_id: int, at: datetime, error: str) -> None: ...
    def pending(self) -> list[OutboxItem]: ...

    # digests
    def claim_digest(
        self,
        digest: str,
        channel: str,
        day: date,
        force: bool = False,
        *,
        stale_after: timedelta | None = None,
    ) -> bool:
        """Atomic claim; *stale_after* takes over an unposted claim older than that (one winner)."""
        ...

    def get_digest(self, digest: str, channel: str, day: date) -> DigestRecord | None: ...
    def mark_digest_posted(self, digest: str, channel: str, day: date, message_ts: str) -> None: ...
    def release_digest(self, digest: str, channel: str, day: date) -> None: ...

    # small key/value state (sync cursors, ...)
    def get_value(self, key: str) -> str | None: ...
    def set_value(self, key: str, value: str) -> None: ...


class Chat(Protocol):
    """Posting to the chat (Slack) for digests and replies outside a listener."""

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> str: ...

    def channel_is_private(self, channel: str) -> bool: ...


@dataclass(frozen=True)
class Meeting:
    title: str
    start: datetime
    end: datetime
    all_day: bool = False
    location: str | None = None
    video_url: str | None = None
    calendar: str = ""


@dataclass(frozen=True)
class CalendarDay:
    meetings: list[Meeting]
    failed_feeds: list[str]  # display names only, never the secret URL


class Calendar(Protocol):
    def meetings_on(self, day: date) -> CalendarDay: ...


class LabelledSource(Protocol):
    """Where the offline classifier's fallback examples come from."""

    def examples(self) -> Iterator[LabelledText]: ...
