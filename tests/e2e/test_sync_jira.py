"""sync-jira end to end: the real jira client pages a local fake Jira into the local index."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bot.adapters.index_local import LocalIndex
from bot.adapters.jira_tracker import JiraTracker
from bot.adapters.store_sql import SqlStore
from bot.service.sync_jira import JiraSync
from tests.fakes.embedder import HashEmbedder
from tests.fakes.jira_server import FakeJira


@pytest.mark.parametrize("cloud", [False, True], ids=["data-center", "cloud"])
def test_full_then_incremental_sync(tmp_path: Path, cloud: bool) -> None:
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with FakeJira(project="PROJ", cloud=cloud) as jira:
        for i in range(230):
            jira.add_issue(
                f"Ticket number {i} about exports",
                description=f"details {i}",
                issue_type="Bug" if i % 2 else "Story",
                updated=t0 + timedelta(minutes=i),
            )
        tracker = JiraTracker(jira.base_url, "PROJ", jira.token, email=jira.email, cloud=cloud)
        store = SqlStore(f"sqlite:///{tmp_path / 'state.sqlite3'}")
        index = LocalIndex(HashEmbedder(), store, "PROJ")
        now = [datetime(2026, 11, 26, 12, 0, tzinfo=UTC)]
        sync = JiraSync(tracker, index, store, "PROJ", clock=lambda: now[0])

        first = sync.sync(page_size=100)
        assert first.seen == 230 and first.pages == 3
        assert index.count() == 230
        labelled = index.labelled()
        assert {t.type for t, _ in labelled} == {"Bug", "Story"}
        hit = index.search("Ticket number 17 about exports", top_k=1)[0]
        assert hit.key == "PROJ-18" and hit.url == f"{jira.base_url}/browse/PROJ-18"

        # Only what changed after the cursor comes back; unchanged texts are not re-embedded.
        key = jira.add_issue("Brand new idea about dark mode", updated=now[0] + timedelta(hours=1))
        now[0] += timedelta(hours=2)
        second = sync.sync()
        assert second.seen == 1 and second.upserted == 1
        assert index.count() == 231
        assert index.search("dark mode idea", top_k=1)[0].key == key
        store.close()
