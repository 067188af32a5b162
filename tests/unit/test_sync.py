"""sync-jira: pages, the cursor in Jira's own terms and incremental JQL, on recording fakes."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bot.domain.models import Ticket
from bot.service.sync_jira import CURSOR_KEY, JiraSync
from tests.fakes.memory_store import MemoryStore
from tests.fakes.tracker import FakeTracker

JIRA_T0 = datetime(2026, 11, 26, 7, 0, tzinfo=UTC)  # Jira's clock: hours behind ours below
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


class RecordingIndex:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        self.keys.extend(t.key for t in tickets)
        return len(tickets)

    def count(self) -> int:
        return len(set(self.keys))


def dated(n: int) -> list[Ticket]:
    return [
        Ticket(key=f"IDEA-{i}", title=f"t{i}", updated=JIRA_T0 + timedelta(minutes=i))
        for i in range(1, n + 1)
    ]


def make(tickets: list[Ticket]) -> tuple[JiraSync, FakeTracker, RecordingIndex, MemoryStore]:
    tracker, index, store = FakeTracker(tickets, page=100), RecordingIndex(), MemoryStore()
    sync = JiraSync(tracker, index, store, "IDEA", clock=lambda: NOW)  # type: ignore[arg-type]
    return sync, tracker, index, store


def test_sync_pages_through_everything_then_goes_incremental_from_jiras_newest_time() -> None:
    tickets = dated(250)
    sync, tracker, index, store = make(tickets)

    first = sync.sync()
    assert (first.seen, first.pages, first.since) == (250, 3, None)
    assert index.keys == [t.key for t in tickets]
    assert [q[3] for q in tracker.queries] == [None, "100", "200"]
    assert tracker.queries[0][1] is None
    newest = JIRA_T0 + timedelta(minutes=250)
    assert store.get_value(CURSOR_KEY.format(project="IDEA")) == newest.isoformat()

    tracker.tickets = tickets[:5]
    tracker.queries.clear()
    second = sync.sync()
    assert second.seen == 5
    # Jira's newest `updated`, minus a margin: not our clock, which runs hours ahead here.
    assert tracker.queries[0][1] == newest - timedelta(minutes=10)
    # Re-reading older tickets does not move the cursor back.
    assert store.get_value(CURSOR_KEY.format(project="IDEA")) == newest.isoformat()

    tracker.queries.clear()
    sync.sync(full=True)
    assert tracker.queries[0][1] is None


def test_an_empty_index_is_read_in_full_whatever_the_cursor() -> None:
    sync, tracker, index, store = make(dated(3))
    store.set_value(CURSOR_KEY.format(project="IDEA"), NOW.isoformat())
    assert sync.sync().since is None
    assert tracker.queries[0][1] is None and index.count() == 3
    tracker.queries.clear()
    assert sync.sync().since is not None


class LosesJiraAfterOnePage(FakeTracker):
    """Answers the first page of a search, then the connection drops."""

    def updated_since(
        self,
        project: str,
        since: datetime | None,
        page_token: str | None = None,
        page_size: int = 100,
        narrow: str | None = None,
    ) -> tuple[list[Ticket], str | None]:
        if page_token is not None:
            raise ConnectionError("Jira went away")
        return super().updated_since(project, since, page_token, page_size, narrow)


def test_an_interrupted_sync_keeps_the_cursor() -> None:
    sync, _tracker, _index, store = make(dated(3))
    sync.sync()
    cursor = store.get_value(CURSOR_KEY.format(project="IDEA"))
    sync.tracker = LosesJiraAfterOnePage(dated(260)[250:] + dated(250), page=5)
    with pytest.raises(ConnectionError):
        sync.sync()
    # The first page held newer tickets, but the run did not finish: the cursor stays.
    assert store.get_value(CURSOR_KEY.format(project="IDEA")) == cursor


def test_undated_tickets_fall_back_to_our_clock() -> None:
    sync, _tracker, _index, store = make([Ticket(key="IDEA-1", title="no date")])
    sync.sync()
    assert store.get_value(CURSOR_KEY.format(project="IDEA")) == NOW.isoformat()
