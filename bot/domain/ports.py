"""Ports: the small interfaces through which the domain reaches the outside world.

Adapters in ``bot.adapters`` implement them; tests implement them with fakes that record calls.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from bot.domain.filing import FilingJob, FilingResult
from bot.domain.issue_changes import IssueChange, IssueState, IssueWatch
from bot.domain.models import (
    Analysis,
    ChatMessage,
    CreatedIssue,
    Match,
    MessageRef,
    NewComment,
    NewIssue,
    Person,
    Post,
    Ticket,
    Triage,
)
from bot.domain.votes import Votes

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


class ChatError(Exception):
    """The chat refused or could not take a message (not in the channel, Slack down, ...)."""


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


# Optional analyzer capabilities. The composition root checks for them once and hands the use
# cases what the analyzer can do; nothing downstream probes for methods.


@runtime_checkable
class BatchAnalyzer(Protocol):
    """Analyses many posts at once (shares the embedding work across them)."""

    def analyze_many(self, posts: Sequence[Post]) -> list[Analysis]: ...


@runtime_checkable
class Warmable(Protocol):
    """Prepares in the background what its first use would otherwise wait for (a model to
    load, a classifier to train)."""

    def warm_up(self) -> None: ...


@runtime_checkable
class DuplicateJudge(Protocol):
    """Analyses a post while reading the similar tickets, and names the one it duplicates."""

    def analyze_with_candidates(
        self, post: Post, candidates: Sequence[Match]
    ) -> tuple[Analysis, str | None]: ...


@runtime_checkable
class Prefetcher(Protocol):
    """Computes ahead what analysing (and searching for) posts will need, their embeddings,
    into the embedder's cache: run in another thread for the next batch while this one is
    searched, the model's work overlaps the search's (the model releases the GIL)."""

    def prefetch(self, posts: Sequence[Post]) -> None: ...


@runtime_checkable
class QueryShaper(Protocol):
    """Says which text to search the index with, so the analyzer's embedding is reused."""

    def embedding_text(self, text: str) -> str: ...


@runtime_checkable
class TicketIndex(Protocol):
    """Existing tickets, searchable by meaning and words.

    Implementations embed with the Embedder they were built with. ``search`` returns matches
    best first with fused scores in [0, 1]. Upserting a key that exists replaces it.
    """

    def upsert(self, tickets: Sequence[Ticket]) -> int: ...

    def delete(self, keys: Sequence[str]) -> None: ...

    def search(
        self, text: str, top_k: int = 10, projects: Sequence[str] | None = None
    ) -> list[Match]:
        """The best matches; with *projects*, only tickets of those Jira projects."""
        ...

    def search_many(
        self, texts: Sequence[str], top_k: int = 10, projects: Sequence[str] | None = None
    ) -> list[list[Match]]: ...

    def count(self) -> int: ...

    def labelled(self) -> list[tuple[Ticket, Vectors]]:
        """Tickets that carry an issue type, with their vectors (for the classifier).

        Each vector is the body's (dim), or the body's followed by the title's (2 x dim).
        """
        ...

    def version(self) -> str:
        """Changes whenever the contents change, so caches know when to refresh."""
        ...


@runtime_checkable
class CachedIndex(Protocol):
    """An index capability: a local cache of the catalogue that catches up with the database.

    The composition root checks for it once (``/readyz`` asks ``ready``; start-up calls
    ``warm_up`` so the first search does not pay for loading the cache).
    """

    def warm_up(self, background: bool = True) -> None:
        """Loads the cache from the catalogue now (in a thread when *background*)."""
        ...

    def ready(self) -> bool:
        """True when the database answers and the cache has caught up at least once. Cheap."""
        ...

    def stop(self, timeout: float = 5.0) -> None:
        """Stops its background work within *timeout* seconds, handing back any lease on shared
        work so another replica takes it at once (a stopping process calls it)."""
        ...


class Tracker(Protocol):
    """The issue tracker (Jira). Formats (JQL, wiki markup, ADF) stay inside the adapter."""

    def create_issue(self, issue: NewIssue) -> CreatedIssue: ...

    def add_comment(self, comment: NewComment) -> str: ...

    def issue_types(self, project: str | None = None) -> list[str]:
        """Names of the issue types *project* (default: the configured one) can create."""
        ...

    def find_by_marker(self, project: str, marker: str) -> CreatedIssue | None:
        """The issue carrying *marker* (see ``NewIssue.marker``), or None."""
        ...

    def find_comment_marker(self, key: str, marker: str) -> bool:
        """True when issue *key* has a comment added with *marker* (see ``NewComment.marker``)."""
        ...

    def updated_since(
        self,
        project: str,
        since: datetime | None,
        page_token: str | None = None,
        page_size: int = 100,
        narrow: str | None = None,
    ) -> tuple[list[Ticket], str | None]:
        """One page of *project*'s issues updated since *since*, oldest first, and the next
        page's token (None at the end). *narrow* is the operator's own filter, passed through."""
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
    reactions: int = 0  # people who reacted (each once), derived from the engagement records
    replies: int = 0  # people who replied in its thread (each once), likewise
    votes: int = 0  # people who voted for it (bot.domain.votes), each once, likewise
    is_private: bool = False
    deleted: bool = False  # deleted in the chat: text and triage purged, row kept


# What a person did on a post: reacted (detail: the emoji) or replied (detail: the reply's ts).
EngagementKind = Literal["reaction", "reply"]


@dataclass(frozen=True)
class EngagementChange:
    """A post before and after one engagement record was added or removed."""

    before: StoredPost
    after: StoredPost

    @property
    def changed(self) -> bool:
        """True when the derived counts moved (a second emoji by the same person does not)."""
        return (self.before.reactions, self.before.replies, self.before.votes) != (
            self.after.reactions,
            self.after.replies,
            self.after.votes,
        )


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
    created: datetime | None = None


@dataclass(frozen=True)
class Fence:
    """A lease held on an outbox item: the item and the token ``Outbox.lease`` returned.

    Every later lease of the item gets a greater token, so a write made with an older one is
    refused: a worker whose lease ran out cannot overwrite what the next holder did.
    """

    item_id: int
    token: int


@dataclass(frozen=True)
class RetryAt:
    """What a fenced filing update does to its outbox item: count a failed attempt and make the
    item due again at *at* (see ``Outbox.retry_later``)."""

    at: datetime
    error: str


# What a fenced filing update does to its outbox item besides checking the lease.
ItemStep = Literal["keep", "finish"] | RetryAt


@dataclass(frozen=True)
class DigestRecord:
    digest: str
    channel: str
    day: date
    state: str  # "claimed" | "posted"
    message_ts: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Posts(Protocol):
    """The posts the bot saw, with what triage made of them.

    A deleted post keeps its row (so a late or repeated event finds it gone) but not its words:
    ``delete_post`` purges text and triage, and the post stays deleted whatever is saved later.
    """

    def save_post(self, post: StoredPost) -> None: ...
    def get_post(self, channel: str, ts: str) -> StoredPost | None: ...
    def update_post(self, channel: str, ts: str, **fields: Any) -> None:
        """Sets the given fields; a deleted post is left as it is."""
        ...

    def posts_between(
        self, start: datetime, end: datetime, channels: Iterable[str] | None = None
    ) -> list[StoredPost]:
        """Posts created in [start, end), oldest first; deleted posts are left out."""
        ...

    def delete_post(
        self, channel: str, ts: str, created: datetime, user: str = ""
    ) -> StoredPost | None:
        """Marks the post deleted and purges its text, triage and engagement; returns it as it
        was (None when it was never stored: a deleted row is written, *created*/*user* fill it)."""
        ...


class Engagement(Protocol):
    """Who reacted to and replied to each stored post; the post's counts are derived from it."""

    def add_engagement(
        self,
        channel: str,
        ts: str,
        kind: EngagementKind,
        user: str,
        detail: str,
        vote: bool = False,
    ) -> EngagementChange | None:
        """Records that *user* reacted (*detail*: emoji) or replied (*detail*: reply ts) on the
        stored post, once however often it is told; None when the post is not stored or deleted.
        *vote*: the record is a vote (``bot.domain.votes``); the post's ``votes`` counts the
        people with at least one."""
        ...

    def remove_engagement(
        self, channel: str, ts: str, kind: EngagementKind, user: str, detail: str
    ) -> EngagementChange | None:
        """Forgets one record (a reaction removed, a reply deleted); None as for adding."""
        ...


INBOX_VERSION = 1  # the envelope's metadata.version


@dataclass(frozen=True)
class InboxEvent:
    """One delivery from the chat, kept until a worker has processed it.

    *envelope* is ``{"metadata": {"version", "event_id", "trace_id", "type", "published_by",
    "published_at"}, "data": {...the chat's payload...}}``. *state* is "pending" until a worker
    finishes it ("done") or gives up on it ("failed"); a pending event is taken by one worker at a
    time (*owner* until *lease_until*).
    """

    event_id: str
    pool: str
    envelope: dict[str, Any]
    state: str
    attempts: int
    received: datetime
    next_at: datetime
    owner: str | None = None
    lease_until: datetime | None = None
    last_error: str | None = None

    @property
    def trace_id(self) -> str:
        """The id that ties this event's log lines together."""
        return str(self.envelope.get("metadata", {}).get("trace_id", ""))


class Inbox(Protocol):
    """Events recorded before they are acknowledged, processed by workers on any replica.

    Recording is a unique insert on the event id, so a redelivered event is recorded once. A worker
    claims pending events with a lease it renews while it works; a lease that ran out (the worker
    died) lets another worker take the event. Finishing is fenced: only the lease holder can.
    """

    def record_event(
        self,
        event_id: str,
        pool: str,
        envelope: dict[str, Any],
        now: datetime,
        *,
        owner: str | None = None,
        lease_until: datetime | None = None,
    ) -> bool:
        """Records a new event (claimed by *owner* until *lease_until* when given); False when
        *event_id* was recorded before. Raises when the store cannot record it."""
        ...

    def claim_events(
        self, pool: str, owner: str, now: datetime, until: datetime, limit: int = 10
    ) -> list[InboxEvent]:
        """Takes up to *limit* pending events of *pool* that are due at *now* and not leased (or
        whose lease ran out), oldest first, for *owner* until *until*."""
        ...

    def renew_events(self, event_ids: Sequence[str], owner: str, until: datetime) -> int:
        """Extends *owner*'s leases on *event_ids* to *until*; returns how many it still held."""
        ...

    def finish_event(self, event_id: str, owner: str, now: datetime) -> bool:
        """Marks the event done; False (and nothing changes) unless *owner* holds it."""
        ...

    def retry_event(self, event_id: str, owner: str, at: datetime, error: str) -> bool:
        """Counts a failed attempt and makes the event due again at *at*, unleased; False unless
        *owner* holds it."""
        ...

    def fail_event(self, event_id: str, owner: str, now: datetime, error: str) -> bool:
        """Gives up on the event (kept with its error for inspection); False unless *owner*
        holds it."""
        ...

    def release_events(self, owner: str, event_ids: Sequence[str] | None = None) -> int:
        """Drops *owner*'s leases (on *event_ids*, default all) without counting an attempt, so
        another worker takes them at once; returns how many."""
        ...

    def get_event(self, event_id: str) -> InboxEvent | None: ...

    def pending_events(self, pool: str | None = None) -> list[InboxEvent]:
        """Every pending event (of *pool*), oldest first."""
        ...

    def ping(self) -> None:
        """Returns when the store answers a trivial query; raises otherwise."""
        ...


class Filings(Protocol):
    """The exactly-once record of each message's filing. The claim is a unique insert."""

    def claim_filing(self, channel: str, ts: str, owner: str) -> bool: ...
    def get_filing(self, channel: str, ts: str) -> Filing | None: ...
    def update_filing(self, channel: str, ts: str, **fields: Any) -> None:
        """Sets *fields* unconditionally: only for a filing no outbox item is working on."""
        ...

    def update_filing_fenced(
        self, fence: Fence, channel: str, ts: str, *, item: ItemStep = "keep", **fields: Any
    ) -> bool:
        """Sets the filing's *fields* and keeps, finishes or reschedules (``RetryAt``) the
        fence's outbox item, in one transaction, only while *fence* is the item's latest lease
        and the item is pending. False, with nothing written, when the lease was lost."""
        ...

    def filings_between(self, start: datetime, end: datetime) -> list[Filing]: ...

    def marker_secret(self) -> str:
        """This install's secret for filing markers: created once (the first caller's value
        wins, whichever replica it is), the same for every caller afterwards."""
        ...


class Outbox(Protocol):
    """Durable work items, retried with back-off, taken by one worker at a time (a lease)."""

    def enqueue(self, topic: str, key: str, payload: dict[str, Any], at: datetime) -> int | None:
        """Adds an item and returns its id; None if an item with (topic, key) is already pending."""
        ...

    def due(self, now: datetime, limit: int = 10) -> list[OutboxItem]: ...
    def get_item(self, item_id: int) -> OutboxItem | None: ...
    def lease(self, item_id: int, until: datetime, *, now: datetime) -> int | None:
        """Takes a pending item for work until *until* unless a lease unexpired at *now* holds
        it; returns the lease's fencing token (greater than any earlier one of the item), or
        None when another worker has it."""
        ...

    def renew_lease(self, item_id: int, token: int, until: datetime) -> bool:
        """Extends the lease made with *token* to *until* (a heartbeat), only while that lease
        is the item's latest and the item is pending; False when the lease was lost."""
        ...

    def finish(self, item_id: int, token: int | None = None) -> bool:
        """Marks the item done; with *token*, only while that lease is the latest. False when
        nothing changed (finished already, or the lease was lost)."""
        ...

    def retry_later(self, item_id: int, at: datetime, error: str, token: int | None = None) -> bool:
        """Counts a failed attempt and makes the item due at *at*; with *token*, only while that
        lease is the latest. False when nothing changed."""
        ...

    def pending(self) -> list[OutboxItem]: ...


class DigestLedger(Protocol):
    """One row per (digest, channel, day): who posts it, and whether it was posted."""

    def claim_digest(
        self,
        digest: str,
        channel: str,
        day: date,
        force: bool = False,
        *,
        stale_after: timedelta | None = None,
        token: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> bool:
        """Atomic claim; *stale_after* takes over an unposted claim older than that (one winner).

        *token*, unique to the claimant, is recorded with the claim (a takeover replaces it), so
        the claimant can check with ``renew_digest_claim`` that the claim is still its own.
        *extra* (the claim's event envelope, ``bot.domain.events``) is stored with it.
        """
        ...

    def get_digest(self, digest: str, channel: str, day: date) -> DigestRecord | None: ...
    def renew_digest_claim(self, digest: str, channel: str, day: date, token: str) -> bool:
        """True while the unposted claim is still the one made with *token*; then it counts as
        fresh again (one conditional write), so it is not stale for another full period."""
        ...

    def mark_digest_posted(
        self,
        digest: str,
        channel: str,
        day: date,
        message_ts: str,
        *,
        extra: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> bool:
        """Records the posted message (and *extra*, its event envelope, when given); with
        *token*, only while that claim holds (False if a takeover made it someone else's).
        Without, also records a post made with no claim."""
        ...

    def release_digest(
        self, digest: str, channel: str, day: date, *, token: str | None = None
    ) -> None:
        """Drops an unposted claim (with *token*: only the claim made with it)."""
        ...


class KeyValue(Protocol):
    """Small named values (sync cursors, ...)."""

    def get_value(self, key: str) -> str | None: ...
    def set_value(self, key: str, value: str) -> None: ...


@dataclass(frozen=True)
class CatalogueRow:
    """One ticket as the catalogue holds it, at the sequence number of its last write.

    *ticket* is None for a tombstone (a deleted key). *vectors* are the stored embedding of the
    ticket's text for the model asked for (see ``TicketStore.tickets_since``), None when absent.
    """

    seq: int
    key: str
    content_hash: str
    ticket: Ticket | None
    vectors: bytes | None = None

    @property
    def deleted(self) -> bool:
        return self.ticket is None


class TicketStore(Protocol):
    """The ticket catalogue: every indexed ticket, per project (an index namespace), and the
    embeddings of their texts per (content hash, embedding model), so a text is embedded once.

    Every write of a ticket (or of its tombstone) takes the next number of one sequence shared
    by all writers, in commit order: a reader that has applied everything up to *seq* catches
    up with ``tickets_since(project, seq)`` and misses nothing. Local indexes are caches of it.
    """

    def put_tickets(self, project: str, tickets: Sequence[Ticket]) -> int:
        """Adds or replaces tickets by key (a repeated key: the last wins); returns how many
        were written. A ticket equal to the stored one is not written and takes no number."""
        ...

    def delete_tickets(self, project: str, keys: Sequence[str]) -> int:
        """Replaces the live tickets of *keys* by tombstones; returns how many there were."""
        ...

    def tickets_since(
        self, project: str, seq: int, *, model: str | None = None, limit: int = 1000
    ) -> list[CatalogueRow]:
        """Rows (tombstones included) written after *seq*, in sequence order, at most *limit*;
        each with the vectors of *model* for its text when *model* is given and they exist."""
        ...

    def get_tickets(self, project: str, keys: Sequence[str]) -> dict[str, CatalogueRow]:
        """The live rows of *keys* (unknown and deleted keys are left out), without vectors."""
        ...

    def catalogue_head(self, project: str) -> int:
        """The sequence number of *project*'s last write (0 when none): cheap, indexed."""
        ...

    def count_tickets(self, project: str) -> int:
        """How many live tickets *project* has."""
        ...

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> None:
        """Stores vectors by content hash for *model*; hashes already stored are kept."""
        ...

    def get_embeddings(self, model: str, hashes: Sequence[str]) -> dict[str, bytes]:
        """The stored vectors of *model* for those of *hashes* that have them."""
        ...

    def embedding_models(self, project: str) -> dict[str, int]:
        """Each embedding model that made vectors for *project*'s live tickets, and for how
        many of them: which model the stored vectors are from, e.g. after a model change."""
        ...

    def lease_reembed(self, project: str, model: str, now: datetime, until: datetime) -> int | None:
        """Takes the fenced lease on re-embedding *project*'s texts with *model* until *until*,
        unless a lease unexpired at *now* holds it; returns its token (greater than any earlier
        one), or None. One replica pays the provider for a model change, not every one."""
        ...

    def put_reembedded(
        self, project: str, model: str, token: int, vectors: Mapping[str, bytes], until: datetime
    ) -> bool:
        """Stores *vectors* of *model* (as ``put_embeddings``) and extends the lease to *until*,
        in one transaction, only while *token* is the latest lease; False, with nothing
        written, when it was lost. Empty *vectors*: a heartbeat."""
        ...


class PostsByAuthor(Protocol):
    """One person's posts (the App Home's "your ideas")."""

    def posts_by_user(
        self, user: str, limit: int, kinds: Sequence[str] | None = None
    ) -> tuple[list[StoredPost], int]:
        """*user*'s top-level posts of *kinds* (all when None), newest first, at most *limit*,
        and how many there are in all; deleted posts are left out."""
        ...


class Store(
    Posts,
    Engagement,
    Inbox,
    Filings,
    Outbox,
    DigestLedger,
    KeyValue,
    TicketStore,
    Votes,
    IssueWatch,
    PostsByAuthor,
    Protocol,
):
    """Everything durable; the SQL adapter implements it all, each use case needs a part."""


class Chat(Protocol):
    """The chat (Slack) as the use cases need it. Blocks are built in ``bot.slack``."""

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        """Posts a message (in a thread when *thread_ts*); returns its ts. *metadata* is
        ``{"event_type": ..., "event_payload": {...}}`` attached to the message."""
        ...

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> None: ...

    def react(self, channel: str, ts: str, name: str) -> None: ...

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        """Replaces the text and blocks of one of the bot's own messages in place. A message
        that is gone is logged, not raised: the thread it belonged to may have been deleted."""
        ...

    def permalink(self, channel: str, ts: str) -> str | None: ...

    def person(self, user: str) -> Person: ...

    def fetch_message(
        self, channel: str, ts: str, thread_ts: str | None = None
    ) -> ChatMessage | None: ...

    def thread_replies(self, channel: str, thread_ts: str, limit: int = 500) -> list[ChatMessage]:
        """The messages of the thread under *thread_ts* (root included), oldest first, at most
        *limit*; empty when it cannot be read (the filing goes on without its thread)."""
        ...

    def channel_is_private(self, channel: str) -> bool:
        """True for private channels and DMs, and when it cannot be told (never leak)."""
        ...

    def usergroup_members(self, group: str) -> frozenset[str]: ...

    def channel_is_shared(self, channel: str) -> bool:
        """True for channels shared with other organisations (Slack Connect), and when it
        cannot be told: what is internal is then shown only to members, never posted."""
        ...

    def resolve_channels(self, names_or_ids: Sequence[str]) -> set[str]:
        """Channel ids for ids or names (with or without '#'); unknown names are logged."""
        ...

    def publish_home(self, user: str, blocks: list[dict[str, Any]]) -> None:
        """Shows *blocks* as *user*'s Home tab of the app (replacing what it showed)."""
        ...

    def find_by_metadata(
        self,
        channel: str,
        event_type: str,
        key: str,
        oldest: float,
        *,
        thread_ts: str | None = None,
    ) -> str | None:
        """The ts of the newest message since *oldest* tagged (*event_type*, key), or None;
        with *thread_ts*, among that thread's replies. Raises when it could not look: "could
        not look" is not "not there"."""
        ...


class Notifier(Protocol):
    """What the bot says in the chat about posts and filings.

    The use cases decide *what* to say; ``bot.slack.notifier`` renders it (Block Kit) and sends it.
    """

    def triage_reply(self, post: StoredPost, triage: Triage) -> str:
        """Answers an idea post in its thread; returns the reply's ts."""
        ...

    def find_triage_reply(self, post: StoredPost) -> str | None:
        """The ts of a triage reply already in the post's thread (one whose sender died before
        recording it), or None. Raises when it could not look."""
        ...

    def filing_outcome(self, job: FilingJob, result: FilingResult) -> None:
        """Says in the post's thread what became of a filing (filed, queued, refused...)."""
        ...

    def duplicate_offer(self, job: FilingJob, match: Match) -> None:
        """Asks in the thread whether to comment on *match* instead of filing a new ticket."""
        ...

    def to_requester(
        self, ref: MessageRef, requester: str, thread_ts: str | None, result: FilingResult
    ) -> None:
        """Tells only the person who asked (denied, already filed, in progress, ...)."""
        ...

    def idea_posted(self, channel: str, user: str, text: str) -> str:
        """Posts an idea sent with the slash command on *user*'s behalf; returns its ts."""
        ...

    def update_triage_reply(
        self,
        post: StoredPost,
        triage: Triage,
        filed: FilingResult | None = None,
        issue: IssueState | None = None,
    ) -> None:
        """Renders the triage reply (``post.reply_ts``) again in place: the triage of the current
        text, the votes (``post.votes``), the ticket once *filed* (status "already") and its
        state in the tracker (*issue*) when known."""
        ...

    def issue_changed(self, post: StoredPost, change: IssueChange, url: str | None) -> None:
        """Says in the post's thread that its issue changed (status, assignee, resolution)."""
        ...

    def react(self, post: StoredPost, emoji: str) -> None:
        """Adds the bot's reaction *emoji* to the post."""
        ...

    def edited_after_filing(
        self, post: StoredPost, filed: FilingResult, commented: bool | None
    ) -> None:
        """Says in the post's thread that it changed after it was filed (*filed* "already") or
        while it was being filed ("in_progress"); *commented*: the new text was added to the
        ticket (True), could not be (False), or was not tried (None)."""
        ...

    def post_deleted(self, post: StoredPost, filed: FilingResult | None) -> None:
        """Replaces a deleted post's triage reply with a short note (its summary must go too)."""
        ...


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
