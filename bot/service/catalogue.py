"""The ticket catalogue's use cases: add tickets, find the closest ones, say when it is ready."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.models import Match, Ticket
from bot.domain.ports import CachedIndex, TicketIndex


@dataclass
class Catalogue:
    """Indexing and similarity search over existing tickets (``index``, ``similar``, readiness).

    Writes go through the index to the catalogue in the database; *cache* is the index's local
    cache of it, when it has one (the composition root checks once).
    """

    index: TicketIndex
    cache: CachedIndex | None = None

    def add(self, tickets: Sequence[Ticket]) -> int:
        """Upserts *tickets* (a repeated key replaces); returns how many were new or changed."""
        return self.index.upsert(tickets)

    def similar(self, texts: Sequence[str], top_k: int = 10) -> list[list[Match]]:
        """The closest tickets to each text, best first."""
        return self.index.search_many(texts, top_k=top_k)

    def count(self) -> int:
        """How many tickets are indexed."""
        return self.index.count()

    def warm_up(self) -> None:
        """Starts loading the local cache in the background (no-op without one)."""
        if self.cache is not None:
            self.cache.warm_up(background=True)

    def stop(self, timeout: float = 5.0) -> None:
        """Stops the cache's background work (re-embedding), handing its lease back."""
        if self.cache is not None:
            self.cache.stop(timeout)

    def ready(self) -> bool:
        """The database answers and the cache caught up once (always True without a cache)."""
        return True if self.cache is None else self.cache.ready()
