"""sync-jira: pages, cursor and incremental JQL, with recording fakes of the ports."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from bot.domain.models import Ticket
from bot.domain.sync import JiraSync, build_jql


class PagedTracker:
    def __init__(self, tickets: list[Ticket], page: int) -> None:
        self.tickets = tickets
        self.page = page
        self.queries: list[tuple[str, str | None]] = []

    def search(
        self, jql: str, page_token: str | None = None, page_size: int = 100
    ) -> tuple[list[Ticket], str | None]:
        self.queries.append((jql, page_token))
        start = int(page_token or 0)
        chunk = self.tickets[start : start + self.page]
        nxt = start + self.page
        return chunk, (str(nxt) if nxt < len(self.tickets) else None)


class RecordingIndex:
    def __init__(self) -> None:
        self.keys: list[str] = []

    def upsert(self, tickets: Sequence[Ticket]) -> int:
        self.keys.extend(t.key for t in tickets)
        return len(tickets)


class KV:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}

    def get_value(self, key: str) -> str | None:
        return self.values.get(key)

    def set_value(self, key: str, value: str) -> None:
        self.values[key] = value


def test_build_jql_quotes_project_and_orders() -> None:
    since = datetime(2026, 11, 2, 9, 5, tzinfo=UTC)
    assert build_jql("IDEA", None) == 'project = "IDEA" ORDER BY updated ASC'
    assert build_jql("IDEA", since, "statusCategory != Done") == (
        'project = "IDEA" AND (statusCategory != Done) AND updated >= "2026/11/02 09:05" '
        "ORDER BY updated ASC"
    )


def test_sync_pages_through_everything_then_goes_incremental() -> None:
    tickets = [Ticket(key=f"IDEA-{i}", title=f"t{i}") for i in range(1, 251)]
    tracker, index, kv = PagedTracker(tickets, page=100), RecordingIndex(), KV()
    now = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)
    sync = JiraSync(tracker, index, kv, "IDEA", clock=lambda: now)  # type: ignore[arg-type]

    first = sync.sync()
    assert (first.seen, first.pages, first.since) == (250, 3, None)
    assert index.keys == [t.key for t in tickets]
    assert [tok for _, tok in tracker.queries] == [None, "100", "200"]
    assert "updated >=" not in tracker.queries[0][0]

    tracker.tickets = tickets[:5]
    tracker.queries.clear()
    second = sync.sync()
    assert second.seen == 5
    # The cursor is the start of the previous run, minus a safety margin.
    assert 'updated >= "2026/11/26 11:50"' in tracker.queries[0][0]

    tracker.queries.clear()
    sync.sync(full=True)
    assert "updated >=" not in tracker.queries[0][0]
