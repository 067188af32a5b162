"""The ticket index for the batch command line: add tickets, find the closest ones."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.domain.models import Match, Ticket
from bot.domain.ports import TicketIndex


@dataclass
class Catalogue:
    """Indexing and similarity search over existing tickets (``index`` and ``similar``)."""

    index: TicketIndex

    def add(self, tickets: Sequence[Ticket]) -> int:
        """Upserts *tickets* (a repeated key replaces); returns how many were new or changed."""
        return self.index.upsert(tickets)

    def similar(self, texts: Sequence[str], top_k: int = 10) -> list[list[Match]]:
        """The closest tickets to each text, best first."""
        return self.index.search_many(texts, top_k=top_k)

    def count(self) -> int:
        return self.index.count()
