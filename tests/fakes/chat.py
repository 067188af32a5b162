"""An in-memory Chat port: records what the use cases say, remembers message metadata."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.domain.events import message_key
from bot.domain.models import ChatMessage, Person


@dataclass
class RecordingChat:
    """Records posts, ephemerals, updates and reactions; ``fail_next`` posts raise; ``private``
    lists the private channels; ``people`` and ``groups`` answer identity and user-group questions.
    ``update`` changes the recorded post in place (and is recorded in ``updates``)."""

    private: set[str] = field(default_factory=set)
    shared: set[str] = field(default_factory=set)  # Slack Connect channels
    posts: list[dict[str, Any]] = field(default_factory=list)
    ephemerals: list[dict[str, Any]] = field(default_factory=list)
    reactions: list[tuple[str, str, str]] = field(default_factory=list)
    updates: list[dict[str, Any]] = field(default_factory=list)
    messages: dict[tuple[str, str], ChatMessage] = field(default_factory=dict)
    people: dict[str, Person] = field(default_factory=dict)
    groups: dict[str, frozenset[str]] = field(default_factory=dict)
    names: dict[str, str] = field(default_factory=dict)  # channel name -> id
    fail_next: int = 0
    homes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # user -> Home blocks
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _ts: Any = field(default_factory=lambda: itertools.count(1))

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> str:
        with self._lock:
            if self.fail_next:
                self.fail_next -= 1
                raise ConnectionError("chat is down")
            ts = f"1700000000.{next(self._ts):06d}"
            self.posts.append(
                {
                    "channel": channel,
                    "text": text,
                    "blocks": blocks,
                    "thread_ts": thread_ts,
                    "metadata": metadata,
                    "ts": ts,
                }
            )
            return ts

    def ephemeral(
        self,
        channel: str,
        user: str,
        text: str,
        blocks: list[dict[str, Any]] | None = None,
        thread_ts: str | None = None,
    ) -> None:
        with self._lock:
            self.ephemerals.append(
                {"channel": channel, "user": user, "text": text, "thread_ts": thread_ts}
            )

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict[str, Any]] | None = None
    ) -> None:
        with self._lock:
            self.updates.append({"channel": channel, "ts": ts, "text": text, "blocks": blocks})
            for p in self.posts:
                if p["channel"] == channel and p["ts"] == ts:
                    p["text"], p["blocks"] = text, blocks

    def react(self, channel: str, ts: str, name: str) -> None:
        with self._lock:
            self.reactions.append((channel, ts, name))

    def permalink(self, channel: str, ts: str) -> str | None:
        return f"https://slack.example/archives/{channel}/p{ts.replace('.', '')}"

    def person(self, user: str) -> Person:
        return self.people.get(user, Person())

    def fetch_message(
        self, channel: str, ts: str, thread_ts: str | None = None
    ) -> ChatMessage | None:
        return self.messages.get((channel, ts))

    def thread_replies(self, channel: str, thread_ts: str, limit: int = 500) -> list[ChatMessage]:
        with self._lock:
            found = [
                m
                for (c, ts), m in self.messages.items()
                if c == channel and (ts == thread_ts or m.thread_ts == thread_ts)
            ]
        return sorted(found, key=lambda m: float(m.ts))[:limit]

    def publish_home(self, user: str, blocks: list[dict[str, Any]]) -> None:
        with self._lock:
            self.homes[user] = blocks

    def channel_is_private(self, channel: str) -> bool:
        return channel in self.private

    def usergroup_members(self, group: str) -> frozenset[str]:
        return self.groups.get(group, frozenset())

    def channel_is_shared(self, channel: str) -> bool:
        return channel in self.shared

    def resolve_channels(self, names_or_ids: Sequence[str]) -> set[str]:
        return {self.names[n.lstrip("#")] for n in names_or_ids if n.lstrip("#") in self.names}

    def find_by_metadata(
        self,
        channel: str,
        event_type: str,
        key: str,
        oldest: float,
        *,
        thread_ts: str | None = None,
    ) -> str | None:
        with self._lock:
            for p in reversed(self.posts):
                meta = p.get("metadata") or {}
                if (
                    p["channel"] == channel
                    and (thread_ts is None or p["thread_ts"] == thread_ts)
                    and meta.get("event_type") == event_type
                    and message_key(meta.get("event_payload") or {}) == key
                ):
                    return str(p["ts"])
        return None

    def in_thread(self, channel: str, thread_ts: str) -> list[dict[str, Any]]:
        """The posts made in one thread, in order."""
        return [p for p in self.posts if p["channel"] == channel and p["thread_ts"] == thread_ts]
