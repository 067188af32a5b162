"""``MemoryStore``: every store port in memory, with the SQL store's semantics, for fast unit tests.

The store contract tests (``tests/adapters/test_store.py``) run against this fake as well as
SQLite and PostgreSQL, so what a use-case test learns from the fake holds for the real store:

- claims (filings, digests, inbox event ids) are unique: of racing callers exactly one wins;
- an inbox event is leased by one worker at a time; settling it is fenced on the owner;
- an outbox (topic, key) is unique among *pending* items; a finished key may be enqueued again;
- a lease is taken by one caller until it expires and returns a token greater than any before;
  fenced writes (``update_filing_fenced``, ``finish``/``retry_later`` with a token) change
  nothing once a later lease exists; ``due`` orders by (next_at, id);
- digest claims honour ``force`` (posted or abandoned for ``STALE_DIGEST_CLAIM``) and
  ``stale_after`` (only an old unposted claim), exactly as the conditional UPDATEs do, and
  record the claimant's token (``renew_digest_claim``, fenced ``mark_digest_posted``);
- datetimes must be aware and come back in UTC; payloads and digest extras round-trip as JSON;
- the ticket catalogue numbers every write (tombstones too) from one sequence, skips a ticket
  equal to the stored one, and keeps the first vectors stored per (model, content hash).

Wherever the SQL store reads the wall clock, this one calls *clock* (``ManualClock`` lets a test
move time). One lock serialises every call, which is the strongest isolation SQL offers.

Known, deliberate differences: settled inbox events are pruned on every claim and finished outbox
items on every finish, instead of opportunistically (neither may be relied upon beyond the
retention period), and
there is no ``schema_version`` value (there is no schema).
"""

from __future__ import annotations

import dataclasses
import json
import secrets
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from bot.adapters.store_sql import (
    DONE_OUTBOX_KEEP,
    ERROR_MAX,
    EVENT_KEEP,
    FILING_STATES,
    STALE_DIGEST_CLAIM,
)
from bot.domain.issue_changes import FiledPost, FinishOutcome, IssueClaim, IssueState
from bot.domain.models import Ticket
from bot.domain.ports import (
    CatalogueRow,
    DigestRecord,
    EngagementChange,
    EngagementKind,
    Fence,
    Filing,
    InboxEvent,
    ItemStep,
    OutboxItem,
    RetryAt,
    StoredPost,
)

Clock = Callable[[], datetime]

_POST_FIELDS = frozenset(f.name for f in dataclasses.fields(StoredPost)) - {"channel", "ts"}
# Same columns the SQL upsert keeps when a re-save carries None.
_POST_KEEP_IF_NONE = (
    "thread_ts",
    "permalink",
    "kind",
    "title",
    "summary",
    "triage_json",
    "reply_ts",
)
_POST_NOT_NULL = frozenset(
    {"user", "text", "created", "reactions", "replies", "votes", "is_private", "deleted"}
)
_FILING_FIELDS = frozenset({"state", "owner", "issue_key", "issue_url", "error", "attempts"})
_FILING_NOT_NULL = frozenset({"state", "owner", "attempts"})


def wall_clock() -> datetime:
    """The real time, aware UTC (the default clock, like the SQL store's)."""
    return datetime.now(UTC)


@dataclass
class ManualClock:
    """A clock a test moves by hand: ``clock()`` is ``clock.now``; ``advance`` moves it."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        """Moves the clock forward by *delta* and returns the new time."""
        self.now += delta
        return self.now


@dataclass
class _Item:
    id: int
    topic: str
    key: str
    payload: str  # JSON, as the SQL column: what comes back is a copy, never the caller's dict
    attempts: int
    next_at: datetime
    created: datetime
    lease_until: datetime | None = None
    last_error: str | None = None
    done_at: datetime | None = None
    lease_token: int = 0

    def public(self) -> OutboxItem:
        return OutboxItem(
            id=self.id,
            topic=self.topic,
            key=self.key,
            payload=json.loads(self.payload),
            attempts=self.attempts,
            next_at=self.next_at,
            last_error=self.last_error,
            created=self.created,
        )

    def held(self, token: int | None) -> bool:
        """Pending and, with *token*, still leased with it (the SQL WHERE of fenced writes)."""
        return self.done_at is None and (token is None or self.lease_token == token)


@dataclass
class _Digest:
    state: str
    claimed_at: datetime
    message_ts: str | None = None
    extra: str = "{}"  # JSON, as the SQL column
    posted_at: datetime | None = None
    token: str | None = None

    def held_by(self, token: str) -> bool:
        return self.state == "claimed" and self.message_ts is None and self.token == token


@dataclass
class _IssueRow:
    seen: bool = False
    status: str | None = None
    status_category: str | None = None
    assignee: str | None = None
    resolution: str | None = None
    claim_until: datetime | None = None
    token: int = 0
    dirty: bool = False

    def state(self, key: str) -> IssueState | None:
        if not self.seen:
            return None
        return IssueState(key, self.status, self.status_category, self.assignee, self.resolution)


class MemoryStore:
    """The ``Store`` port (all narrow ports) in memory. Thread-safe; *clock* replaces "now"."""

    def __init__(self, clock: Clock = wall_clock) -> None:
        """An empty store reading the time from *clock* (aware datetimes)."""
        self._clock = clock
        self._lock = threading.Lock()
        self._posts: dict[tuple[str, str], StoredPost] = {}
        # (channel, ts) -> {(kind, user, detail)}: who reacted and replied, as the SQL table
        self._people: dict[tuple[str, str], set[tuple[str, str, str]]] = {}
        self._voting: dict[tuple[str, str], set[tuple[str, str, str]]] = {}  # records that vote
        self._issues: dict[str, _IssueRow] = {}  # issue_states
        self._inbox: dict[str, InboxEvent] = {}
        self._inbox_done: dict[str, datetime] = {}  # when each settled event was settled
        self._filings: dict[tuple[str, str], Filing] = {}
        self._items: dict[int, _Item] = {}
        self._last_id = 0
        self._digests: dict[tuple[str, str, date], _Digest] = {}
        self._values: dict[str, str] = {}
        self._marker_secret: str | None = None
        self._seq = 0
        self._catalogue: dict[str, dict[str, CatalogueRow]] = {}  # project -> key -> row
        self._embeddings: dict[tuple[str, str], bytes] = {}  # (model, content hash) -> vectors
        # (project, model) -> (latest token, until): the re-embedding leases
        self._reembed_leases: dict[tuple[str, str], tuple[int, datetime | None]] = {}

    def close(self) -> None:
        """Nothing to release; here so the fake drops in where a ``SqlStore`` is closed."""

    def _now(self) -> datetime:
        return _utc(self._clock())

    # ------------------------------------------------------------------ posts

    def save_post(self, post: StoredPost) -> None:
        """Inserts or replaces the post; enrichment already stored survives a re-save with None.

        Reaction/reply counts are only overwritten by a non-zero value, as in the SQL upsert.
        """
        post = dataclasses.replace(post, created=_utc(post.created))
        with self._lock:
            old = self._posts.get((post.channel, post.ts))
            if old is not None:
                keep: dict[str, Any] = {
                    name: getattr(old, name)
                    for name in _POST_KEEP_IF_NONE
                    if getattr(post, name) is None
                }
                keep.update(
                    {
                        n: getattr(old, n)
                        for n in ("reactions", "replies", "votes")
                        if getattr(post, n) == 0
                    }
                )
                if old.deleted:  # deleted stays deleted and wordless, as in the SQL upsert
                    keep.update({name: getattr(old, name) for name in _POST_KEEP_IF_NONE})
                    keep.update(text="", deleted=True)
                post = dataclasses.replace(post, **keep)
            self._posts[(post.channel, post.ts)] = post

    def get_post(self, channel: str, ts: str) -> StoredPost | None:
        """The stored post, or None."""
        with self._lock:
            return self._posts.get((channel, ts))

    def update_post(self, channel: str, ts: str, **fields: Any) -> None:
        """Sets the given fields (kind, title, summary, triage_json, reply_ts, reactions, ...)."""
        bad = set(fields) - _POST_FIELDS
        if bad:
            raise ValueError(f"unknown post fields: {sorted(bad)}")
        _refuse_nulls(fields, _POST_NOT_NULL)
        if "created" in fields:
            fields["created"] = _utc(fields["created"])
        with self._lock:
            old = self._posts.get((channel, ts))
            if old is not None and not old.deleted and fields:
                self._posts[(channel, ts)] = dataclasses.replace(old, **fields)

    def posts_between(
        self, start: datetime, end: datetime, channels: Iterable[str] | None = None
    ) -> list[StoredPost]:
        """Posts with start <= created < end, oldest first, optionally only in *channels*."""
        start, end = _utc(start), _utc(end)
        wanted = None if channels is None else set(channels)
        with self._lock:
            found = [
                p
                for p in self._posts.values()
                if start <= p.created < end
                and (wanted is None or p.channel in wanted)
                and not p.deleted
            ]
        return sorted(found, key=lambda p: (p.created, p.ts))

    def posts_by_user(
        self, user: str, limit: int, kinds: Sequence[str] | None = None
    ) -> tuple[list[StoredPost], int]:
        """*user*'s top-level posts of *kinds*, newest first (at most *limit*), and their count."""
        with self._lock:
            found = [
                p
                for p in self._posts.values()
                if p.user == user
                and not p.deleted
                and p.thread_ts in (None, p.ts)
                and (kinds is None or p.kind in kinds)
            ]
        found.sort(key=lambda p: (p.created, float(p.ts)), reverse=True)
        return found[: max(0, limit)], len(found)

    def delete_post(
        self, channel: str, ts: str, created: datetime, user: str = ""
    ) -> StoredPost | None:
        """Marks the post deleted, purging text, triage and engagement; returns it as it was
        (None when never stored: a deleted row is written)."""
        created = _utc(created)
        with self._lock:
            old = self._posts.get((channel, ts))
            self._people.pop((channel, ts), None)
            self._voting.pop((channel, ts), None)
            if old is None:
                self._posts[(channel, ts)] = StoredPost(
                    channel=channel, ts=ts, user=user, text="", created=created, deleted=True
                )
                return None
            self._posts[(channel, ts)] = dataclasses.replace(
                old,
                text="",
                kind=None,
                title=None,
                summary=None,
                triage_json=None,
                reactions=0,
                replies=0,
                votes=0,
                deleted=True,
            )
            return old

    # ------------------------------------------------------------------ engagement

    def add_engagement(
        self,
        channel: str,
        ts: str,
        kind: EngagementKind,
        user: str,
        detail: str,
        vote: bool = False,
    ) -> EngagementChange | None:
        """Records one reaction or reply by *user* (a vote when *vote*); the post's counts are
        derived again."""
        return self._engage(channel, ts, (kind, user, detail), add=True, vote=vote)

    def remove_engagement(
        self, channel: str, ts: str, kind: EngagementKind, user: str, detail: str
    ) -> EngagementChange | None:
        """Forgets one reaction or reply by *user*; the post's counts are derived again."""
        return self._engage(channel, ts, (kind, user, detail), add=False)

    def _engage(
        self, channel: str, ts: str, record: tuple[str, str, str], *, add: bool, vote: bool = False
    ) -> EngagementChange | None:
        with self._lock:
            before = self._posts.get((channel, ts))
            if before is None or before.deleted:
                return None
            people = self._people.setdefault((channel, ts), set())
            voting = self._voting.setdefault((channel, ts), set())
            if add:
                people.add(record)
                if vote:
                    voting.add(record)
            else:
                people.discard(record)
                voting.discard(record)
            after = dataclasses.replace(
                before,
                reactions=len({u for k, u, _ in people if k == "reaction"}),
                replies=len({u for k, u, _ in people if k == "reply"}),
                votes=len({u for _, u, _ in voting}),
            )
            self._posts[(channel, ts)] = after
            return EngagementChange(before=before, after=after)

    # ------------------------------------------------------------------ votes

    def top_voted(
        self,
        since: datetime,
        limit: int = 10,
        *,
        until: datetime | None = None,
        channels: Iterable[str] | None = None,
        kinds: Iterable[str] | None = None,
    ) -> list[StoredPost]:
        """Open posts created since *since* with votes, most first, as the SQL query."""
        since = _utc(since)
        end = None if until is None else _utc(until)
        wanted = None if channels is None else set(channels)
        wanted_kinds = None if kinds is None else set(kinds)
        with self._lock:
            found = []
            for p in self._posts.values():
                if p.deleted or p.votes <= 0 or p.created < since:
                    continue
                if (end is not None and p.created >= end) or (
                    wanted is not None and p.channel not in wanted
                ):
                    continue
                if wanted_kinds is not None and p.kind not in wanted_kinds:
                    continue
                filing = self._filings.get((p.channel, p.ts))
                row = self._issues.get(filing.issue_key or "") if filing is not None else None
                if filing is not None and filing.state == "filed" and row and row.resolution:
                    continue
                found.append(p)
        found.sort(key=lambda p: (-p.votes, p.created, p.ts))
        return found[:limit]

    # ------------------------------------------------------------------ issue watch

    def filed_posts(self, keys: Sequence[str]) -> dict[str, FiledPost]:
        """Of *keys*, the issues filed from a post, by key (the earliest filing wins)."""
        wanted = set(keys)
        with self._lock:
            filed = sorted(
                (f for f in self._filings.values() if f.state == "filed"),
                key=lambda f: f.updated or datetime.min.replace(tzinfo=UTC),
            )
        out: dict[str, FiledPost] = {}
        for f in filed:
            if f.issue_key is not None and f.issue_key in wanted:
                out.setdefault(f.issue_key, FiledPost(f.issue_key, f.channel, f.ts, f.updated))
        return out

    def claim_issue(self, key: str, until: datetime, now: datetime) -> IssueClaim | None:
        """Takes the fenced claim on *key*, or marks it changed for the holder (None)."""
        until, now = _utc(until), _utc(now)
        with self._lock:
            row = self._issues.setdefault(key, _IssueRow())
            if row.claim_until is not None and row.claim_until > now:
                row.dirty = True
                return None
            row.claim_until, row.token, row.dirty = until, row.token + 1, False
            return IssueClaim(key, row.token, row.state(key))

    def finish_issue(
        self, key: str, token: int, announced: IssueState | None, now: datetime
    ) -> FinishOutcome:
        """Records *announced* and releases the claim while *token* is the latest."""
        with self._lock:
            row = self._issues.get(key)
            if row is None or row.token != token:
                return "lost"
            dirty = row.dirty
            if announced is not None:
                row.seen = True
                row.status, row.status_category = announced.status, announced.status_category
                row.assignee, row.resolution = announced.assignee, announced.resolution
            row.claim_until, row.dirty = None, False
            return "again" if dirty else "done"

    def announced_state(self, key: str) -> IssueState | None:
        """The state last announced for *key*, or None."""
        with self._lock:
            row = self._issues.get(key)
            return None if row is None else row.state(key)

    # ------------------------------------------------------------------ slack events
    # ------------------------------------------------------------------ inbox

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
        """Records a new pending event (claimed by *owner* until *lease_until* when given);
        False when *event_id* was recorded before."""
        now = _utc(now)
        held = owner is not None and lease_until is not None
        with self._lock:
            if event_id in self._inbox:
                return False
            self._inbox[event_id] = InboxEvent(
                event_id=event_id,
                pool=pool,
                envelope=json.loads(json.dumps(envelope)),  # stored as JSON, like the column
                state="pending",
                attempts=0,
                received=now,
                next_at=now,
                owner=owner if held else None,
                lease_until=_utc(lease_until) if held and lease_until else None,
            )
            return True

    def claim_events(
        self, pool: str, owner: str, now: datetime, until: datetime, limit: int = 10
    ) -> list[InboxEvent]:
        """Takes up to *limit* due, unleased (or lease expired) pending events of *pool*."""
        now, until = _utc(now), _utc(until)
        with self._lock:
            for old in [i for i, at in self._inbox_done.items() if at < now - EVENT_KEEP]:
                del self._inbox[old]
                del self._inbox_done[old]
            found = [
                e
                for e in self._inbox.values()
                if e.state == "pending"
                and e.pool == pool
                and e.next_at <= now
                and (e.lease_until is None or e.lease_until <= now)
            ]
            found.sort(key=lambda e: (e.next_at, e.received, e.event_id))
            taken = []
            for e in found[: max(0, limit)]:
                e = dataclasses.replace(e, owner=owner, lease_until=until)
                self._inbox[e.event_id] = e
                taken.append(e)
            return taken

    def renew_events(self, event_ids: Sequence[str], owner: str, until: datetime) -> int:
        """Extends *owner*'s leases on *event_ids* to *until*; returns how many it still held."""
        until = _utc(until)
        n = 0
        with self._lock:
            for event_id in event_ids:
                e = self._inbox.get(event_id)
                if e is not None and e.owner == owner and e.state == "pending":
                    self._inbox[event_id] = dataclasses.replace(e, lease_until=until)
                    n += 1
        return n

    def finish_event(self, event_id: str, owner: str, now: datetime) -> bool:
        """Marks the event done; False unless *owner* holds it."""
        return self._settle(event_id, owner, _utc(now), state="done", last_error=None)

    def retry_event(self, event_id: str, owner: str, at: datetime, error: str) -> bool:
        """Counts a failed attempt; the event is due again at *at*, unleased."""
        at = _utc(at)
        with self._lock:
            e = self._inbox.get(event_id)
            if e is None or e.owner != owner or e.state != "pending":
                return False
            self._inbox[event_id] = dataclasses.replace(
                e,
                attempts=e.attempts + 1,
                next_at=at,
                owner=None,
                lease_until=None,
                last_error=_clip(error),
            )
            return True

    def fail_event(self, event_id: str, owner: str, now: datetime, error: str) -> bool:
        """Gives up on the event; it is kept (state "failed") with its error."""
        with self._lock:
            e = self._inbox.get(event_id)
            attempts = e.attempts + 1 if e is not None else 0
        return self._settle(
            event_id, owner, _utc(now), state="failed", last_error=_clip(error), attempts=attempts
        )

    def release_events(self, owner: str, event_ids: Sequence[str] | None = None) -> int:
        """Drops *owner*'s leases (on *event_ids*, default all) without counting an attempt."""
        n = 0
        with self._lock:
            ids = list(self._inbox) if event_ids is None else list(event_ids)
            for event_id in ids:
                e = self._inbox.get(event_id)
                if e is not None and e.owner == owner and e.state == "pending":
                    self._inbox[event_id] = dataclasses.replace(e, owner=None, lease_until=None)
                    n += 1
        return n

    def get_event(self, event_id: str) -> InboxEvent | None:
        """One event by id (done and failed ones too, while they are kept)."""
        with self._lock:
            return self._inbox.get(event_id)

    def pending_events(self, pool: str | None = None) -> list[InboxEvent]:
        """Every pending event (of *pool*), oldest first."""
        with self._lock:
            found = [
                e
                for e in self._inbox.values()
                if e.state == "pending" and (pool is None or e.pool == pool)
            ]
        return sorted(found, key=lambda e: (e.received, e.event_id))

    def ping(self) -> None:
        """Always answers (there is no server); here so the fake drops in for readiness."""

    def _settle(self, event_id: str, owner: str, now: datetime, **fields: Any) -> bool:
        with self._lock:
            e = self._inbox.get(event_id)
            if e is None or e.owner != owner or e.state != "pending":
                return False
            self._inbox[event_id] = dataclasses.replace(e, owner=None, lease_until=None, **fields)
            self._inbox_done[event_id] = now
            return True

    # ------------------------------------------------------------------ filings

    def claim_filing(self, channel: str, ts: str, owner: str) -> bool:
        """Creates the filing record in state "claimed"; False if the message is already claimed."""
        with self._lock:
            if (channel, ts) in self._filings:
                return False
            self._filings[(channel, ts)] = Filing(
                channel=channel, ts=ts, state="claimed", owner=owner, updated=self._now()
            )
            return True

    def get_filing(self, channel: str, ts: str) -> Filing | None:
        """The filing record for one message, or None."""
        with self._lock:
            return self._filings.get((channel, ts))

    def update_filing(self, channel: str, ts: str, **fields: Any) -> None:
        """Sets the given fields (state, issue_key, issue_url, error, attempts, owner); bumps
        ``updated``."""
        fields = _filing_fields(fields)
        with self._lock:
            self._set_filing(channel, ts, fields)

    def update_filing_fenced(
        self, fence: Fence, channel: str, ts: str, *, item: ItemStep = "keep", **fields: Any
    ) -> bool:
        """Sets the filing's *fields* and keeps, finishes or reschedules the fence's item, all at
        once, only while the fence's token is the item's latest lease; else changes nothing."""
        fields = _filing_fields(fields)
        if item not in ("keep", "finish") and not isinstance(item, RetryAt):
            raise ValueError(f"unknown outbox step {item!r}")
        with self._lock:
            found = self._items.get(fence.item_id)
            if found is None or not found.held(fence.token):
                return False
            if item == "finish":
                self._finish(found)
            elif isinstance(item, RetryAt):
                self._retry(found, _utc(item.at), item.error)
            self._set_filing(channel, ts, fields)
            return True

    def _set_filing(self, channel: str, ts: str, fields: dict[str, Any]) -> None:
        old = self._filings.get((channel, ts))
        if old is not None and fields:
            self._filings[(channel, ts)] = dataclasses.replace(old, **fields, updated=self._now())

    def marker_secret(self) -> str:
        """The marker secret: made on the first call, the same ever after."""
        with self._lock:
            if self._marker_secret is None:
                self._marker_secret = secrets.token_hex(32)
            return self._marker_secret

    def filings_between(self, start: datetime, end: datetime) -> list[Filing]:
        """Filings last updated in [start, end), oldest first."""
        start, end = _utc(start), _utc(end)
        with self._lock:
            found = [
                f
                for f in self._filings.values()
                if f.updated is not None and start <= f.updated < end
            ]
        return sorted(found, key=lambda f: f.updated or start)

    # ------------------------------------------------------------------ outbox

    def enqueue(self, topic: str, key: str, payload: dict[str, Any], at: datetime) -> int | None:
        """Adds an item due at *at* and returns its id; None if (topic, key) is already pending."""
        body = json.dumps(payload, separators=(",", ":"))
        at = _utc(at)
        with self._lock:
            if any(
                i.topic == topic and i.key == key and i.done_at is None
                for i in self._items.values()
            ):
                return None
            # Ids are never reused (like a PostgreSQL sequence).
            self._last_id += 1
            self._items[self._last_id] = _Item(
                id=self._last_id,
                topic=topic,
                key=key,
                payload=body,
                attempts=0,
                next_at=at,
                created=self._now(),
            )
            return self._last_id

    def get_item(self, item_id: int) -> OutboxItem | None:
        """One outbox item by id (finished ones too, while they are kept)."""
        with self._lock:
            item = self._items.get(item_id)
            return None if item is None else item.public()

    def due(self, now: datetime, limit: int = 10) -> list[OutboxItem]:
        """Pending, unleased (or lease expired) items with next_at <= now, earliest first."""
        now = _utc(now)
        with self._lock:
            found = [
                i
                for i in self._items.values()
                if i.done_at is None and i.next_at <= now and _lease_free(i, now)
            ]
            found.sort(key=lambda i: (i.next_at, i.id))
            return [i.public() for i in found[:limit]]

    def lease(self, item_id: int, until: datetime, *, now: datetime | None = None) -> int | None:
        """Takes a pending item until *until* unless a lease unexpired at *now* holds it; returns
        the new fencing token (one more than the last), or None."""
        until = _utc(until)
        with self._lock:
            now = self._now() if now is None else _utc(now)
            item = self._items.get(item_id)
            if item is None or item.done_at is not None or not _lease_free(item, now):
                return None
            item.lease_until = until
            item.lease_token += 1
            return item.lease_token

    def renew_lease(self, item_id: int, token: int, until: datetime) -> bool:
        """Extends the lease made with *token* to *until*; False when a later lease exists or
        the item is done."""
        until = _utc(until)
        with self._lock:
            item = self._items.get(item_id)
            if item is None or not item.held(token):
                return False
            item.lease_until = until
            return True

    def finish(self, item_id: int, token: int | None = None) -> bool:
        """Marks the item done (kept a few days); its key may be enqueued again. With *token*,
        only while that lease is the latest; False when nothing changed."""
        with self._lock:
            item = self._items.get(item_id)
            if item is None or not item.held(token):
                self._prune_items()
                return False
            self._finish(item)
            return True

    def _finish(self, item: _Item) -> None:
        item.done_at, item.lease_until = self._now(), None
        self._prune_items()

    def _prune_items(self) -> None:
        now = self._now()
        for old in [
            i.id
            for i in self._items.values()
            if i.done_at is not None and i.done_at < now - DONE_OUTBOX_KEEP
        ]:
            del self._items[old]

    def retry_later(self, item_id: int, at: datetime, error: str, token: int | None = None) -> bool:
        """Counts a failed attempt, records the error and makes the item due again at *at*.
        With *token*, only while that lease is the latest; False when nothing changed."""
        at = _utc(at)
        with self._lock:
            item = self._items.get(item_id)
            if item is None or not item.held(token):
                return False
            self._retry(item, at, error)
            return True

    @staticmethod
    def _retry(item: _Item, at: datetime, error: str) -> None:
        item.attempts += 1
        item.next_at, item.lease_until, item.last_error = at, None, _clip(error)

    def pending(self) -> list[OutboxItem]:
        """Every item not finished yet, earliest due first."""
        with self._lock:
            found = [i for i in self._items.values() if i.done_at is None]
            found.sort(key=lambda i: (i.next_at, i.id))
            return [i.public() for i in found]

    # ------------------------------------------------------------------ digests

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
        """Claims one digest for one channel and day; False if it is claimed or posted already.

        *force* takes over a posted digest or a claim abandoned for STALE_DIGEST_CLAIM;
        *stale_after* (without *force*) takes over only an unposted claim older than that.
        *token* becomes the claim's own (a takeover replaces it); so does *extra* when given.
        """
        body = None if extra is None else json.dumps(extra, separators=(",", ":"))
        with self._lock:
            now = self._now()
            rec = self._digests.get((digest, channel, day))
            if rec is None:
                self._digests[(digest, channel, day)] = _Digest(
                    state="claimed", claimed_at=now, token=token, extra=body or "{}"
                )
                return True
            if stale_after is not None and not force:
                if (
                    rec.state == "claimed"
                    and rec.message_ts is None
                    and rec.claimed_at < now - stale_after
                ):
                    rec.claimed_at, rec.token = now, token
                    if body is not None:
                        rec.extra = body
                    return True
                return False
            if not force:
                return False
            abandoned = rec.state == "claimed" and rec.claimed_at < now - STALE_DIGEST_CLAIM
            if rec.state != "posted" and not abandoned:
                return False
            # Like the SQL UPDATE: the state resets, the extra details stay unless given anew.
            rec.state, rec.claimed_at, rec.message_ts, rec.posted_at = "claimed", now, None, None
            rec.token = token
            if body is not None:
                rec.extra = body
            return True

    def renew_digest_claim(self, digest: str, channel: str, day: date, token: str) -> bool:
        """True while the unposted claim is still the one made with *token*; it is then as
        fresh as a claim made now."""
        with self._lock:
            rec = self._digests.get((digest, channel, day))
            if rec is None or not rec.held_by(token):
                return False
            rec.claimed_at = self._now()
            return True

    def get_digest(self, digest: str, channel: str, day: date) -> DigestRecord | None:
        """The digest record, or None."""
        with self._lock:
            rec = self._digests.get((digest, channel, day))
            if rec is None:
                return None
            return DigestRecord(
                digest=digest,
                channel=channel,
                day=day,
                state=rec.state,
                message_ts=rec.message_ts,
                extra=json.loads(rec.extra),
            )

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
        """Records that the digest was posted as *message_ts* (with optional *extra* details);
        with *token* only while that claim holds (False otherwise)."""
        body = None if extra is None else json.dumps(extra, separators=(",", ":"))
        with self._lock:
            now = self._now()
            rec = self._digests.get((digest, channel, day))
            if token is not None and (rec is None or not rec.held_by(token)):
                return False
            if rec is None:
                # Posted without a claim (manual run): recorded so that a later claim sees it.
                rec = self._digests[(digest, channel, day)] = _Digest("posted", claimed_at=now)
            rec.state, rec.message_ts, rec.posted_at = "posted", message_ts, now
            if body is not None:
                rec.extra = body
            return True

    def release_digest(
        self, digest: str, channel: str, day: date, *, token: str | None = None
    ) -> None:
        """Drops a claim that never posted (with *token*: only the claim made with it)."""
        with self._lock:
            rec = self._digests.get((digest, channel, day))
            if rec is not None and rec.state == "claimed" and (token is None or rec.token == token):
                del self._digests[(digest, channel, day)]

    # ------------------------------------------------------------------ key/value

    def get_value(self, key: str) -> str | None:
        """The stored value, or None."""
        with self._lock:
            return self._values.get(key)

    def set_value(self, key: str, value: str) -> None:
        """Stores *value* under *key*, replacing any previous value."""
        with self._lock:
            self._values[key] = value

    # ------------------------------------------------------------------ ticket catalogue

    def _write_rows(self, project: str, rows: list[tuple[str, str, Ticket | None]]) -> None:
        table = self._catalogue.setdefault(project, {})
        for key, content_hash, ticket in rows:
            self._seq += 1
            table[key] = CatalogueRow(self._seq, key, content_hash, ticket)

    def put_tickets(self, project: str, tickets: Sequence[Ticket]) -> int:
        """Adds or replaces tickets by key; an unchanged ticket is skipped (no number)."""
        latest = {t.key: t for t in tickets}
        with self._lock:
            table = self._catalogue.get(project, {})
            changed = [
                t for t in latest.values() if (row := table.get(t.key)) is None or row.ticket != t
            ]
            # As the SQL column type does: naive times are refused, the rest come back in UTC.
            stored = [
                t if t.updated is None else t.model_copy(update={"updated": _utc(t.updated)})
                for t in changed
            ]
            self._write_rows(project, [(t.key, t.content_hash(), t) for t in stored])
            return len(changed)

    def delete_tickets(self, project: str, keys: Sequence[str]) -> int:
        """Turns the live tickets of *keys* into tombstones."""
        with self._lock:
            table = self._catalogue.get(project, {})
            live = [table[k] for k in dict.fromkeys(keys) if k in table and not table[k].deleted]
            self._write_rows(project, [(r.key, r.content_hash, None) for r in live])
            return len(live)

    def tickets_since(
        self, project: str, seq: int, *, model: str | None = None, limit: int = 1000
    ) -> list[CatalogueRow]:
        """Rows written after *seq* in sequence order, with *model*'s vectors when asked."""
        with self._lock:
            rows = sorted(
                (r for r in self._catalogue.get(project, {}).values() if r.seq > seq),
                key=lambda r: r.seq,
            )[:limit]
            if model is None:
                return rows
            return [
                r
                if r.deleted
                else dataclasses.replace(r, vectors=self._embeddings.get((model, r.content_hash)))
                for r in rows
            ]

    def get_tickets(self, project: str, keys: Sequence[str]) -> dict[str, CatalogueRow]:
        """The live rows of *keys*."""
        with self._lock:
            table = self._catalogue.get(project, {})
            return {k: table[k] for k in keys if k in table and not table[k].deleted}

    def catalogue_head(self, project: str) -> int:
        """The number of *project*'s last write, 0 when none."""
        with self._lock:
            return max((r.seq for r in self._catalogue.get(project, {}).values()), default=0)

    def count_tickets(self, project: str) -> int:
        """How many live tickets *project* has."""
        with self._lock:
            return sum(not r.deleted for r in self._catalogue.get(project, {}).values())

    def put_embeddings(self, model: str, vectors: Mapping[str, bytes]) -> None:
        """Stores vectors by content hash; a hash already stored for *model* is kept."""
        with self._lock:
            for h, v in vectors.items():
                self._embeddings.setdefault((model, h), bytes(v))

    def get_embeddings(self, model: str, hashes: Sequence[str]) -> dict[str, bytes]:
        """The stored vectors of *model* for those of *hashes* that have them."""
        with self._lock:
            return {h: v for h in hashes if (v := self._embeddings.get((model, h))) is not None}

    def embedding_models(self, project: str) -> dict[str, int]:
        """Model -> how many of *project*'s live tickets have its vectors."""
        with self._lock:
            live = Counter(
                r.content_hash for r in self._catalogue.get(project, {}).values() if not r.deleted
            )
            out: Counter[str] = Counter()
            for model, h in self._embeddings:
                out[model] += live.get(h, 0)
            return {m: n for m, n in out.items() if n}

    def lease_reembed(self, project: str, model: str, now: datetime, until: datetime) -> int | None:
        """Takes the re-embedding lease unless an unexpired one holds it."""
        with self._lock:
            token, held_until = self._reembed_leases.get((project, model), (0, None))
            if held_until is not None and held_until > _utc(now):
                return None
            self._reembed_leases[(project, model)] = (token + 1, _utc(until))
            return token + 1

    def put_reembedded(
        self, project: str, model: str, token: int, vectors: Mapping[str, bytes], until: datetime
    ) -> bool:
        """Stores *vectors* and renews the lease while *token* is the latest lease."""
        with self._lock:
            if self._reembed_leases.get((project, model), (0, None))[0] != token:
                return False
            self._reembed_leases[(project, model)] = (token, _utc(until))
            for h, v in vectors.items():
                self._embeddings.setdefault((model, h), bytes(v))
            return True


def _utc(value: datetime) -> datetime:
    """*value* in UTC; naive datetimes are refused, as the SQL store's column type does."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value.isoformat()} given to the store; use UTC")
    return value.astimezone(UTC)


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:ERROR_MAX]


def _filing_fields(fields: dict[str, Any]) -> dict[str, Any]:
    bad = set(fields) - _FILING_FIELDS
    if bad:
        raise ValueError(f"unknown filing fields: {sorted(bad)}")
    if "state" in fields and fields["state"] not in FILING_STATES:
        raise ValueError(f"unknown filing state {fields['state']!r}")
    _refuse_nulls(fields, _FILING_NOT_NULL)
    if "error" in fields:
        fields = {**fields, "error": _clip(fields["error"])}
    return fields


def _lease_free(item: _Item, now: datetime) -> bool:
    return item.lease_until is None or item.lease_until <= now


def _refuse_nulls(fields: dict[str, Any], not_null: frozenset[str]) -> None:
    # SQL refuses these with an IntegrityError; a fake that accepted them would hide the bug.
    nulls = sorted(name for name in not_null & set(fields) if fields[name] is None)
    if nulls:
        raise ValueError(f"fields may not be None: {nulls}")
