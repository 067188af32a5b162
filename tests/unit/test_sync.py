"""sync-jira: pages, cursor and incremental JQL, with recording fakes of the ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.domain.models import Ticket
from bot.service.sync_jira import JiraSync
from tests.fakes.memory_store import MemoryStore
from tests.fakes.tracker import FakeTracker


class RecordingIndex:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        self.keys.extend(t.key for t in tickets)
        return len(tickets)


def test_sync_pages_through_everything_then_goes_incremental() -> None:
    tickets = [Ticket(key=f"IDEA-{i}", title=f"t{i}") for i in range(1, 251)]
    tracker, index, store = FakeTracker(tickets, page=100), RecordingIndex(), MemoryStore()
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    sync = JiraSync(tracker, index, store, "IDEA", clock=lambda: now)  # type: ignore[arg-type]

    first = sync.sync()
    assert (first.seen, first.pages, first.since) == (250, 3, None)
    assert index.keys == [t.key for t in tickets]
    assert [q[3] for q in tracker.queries] == [None, "100", "200"]
    assert tracker.queries[0][1] is None

    tracker.tickets = tickets[:5]
    tracker.queries.clear()
    second = sync.sync()
    assert second.seen == 5
    # The cursor is the start of the previous run, minus a safety margin.
    assert tracker.queries[0][1] == datetime(2026, 11, 26, 11, 50, tzinfo=UTC)

    tracker.queries.clear()
    sync.sync(full=True)
    assert tracker.queries[0][1] is None
