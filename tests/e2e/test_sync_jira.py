"""sync-jira end to end: the real jira client pages a local fake Jira into the catalogue.

On SQLite and PostgreSQL (``store_url``); the local index is the catalogue's cache.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.index_local import LocalIndex
from bot.adapters.jira_tracker import JiraTracker
from bot.adapters.store_sql import SqlStore
from bot.service.sync_jira import JiraSync
from tests.fakes.embedder import HashEmbedder
from tests.fakes.jira_server import FakeJira


@pytest.mark.parametrize("cloud", [False, True], ids=["data-center", "cloud"])
def test_full_then_incremental_sync(store_url: str, cloud: bool) -> None:
    t0 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    with FakeJira(project="PROJ", cloud=cloud) as jira:
        for i in range(230):
            jira.add_issue(
                f"Ticket number {i} about exports",
                description=f"details {i}",
                issue_type="Bug" if i % 2 else "Story",
                updated=t0 + timedelta(minutes=i),
                labels=["exports"] if i == 17 else None,
                components=["Reports", "API"] if i == 17 else None,
            )
        tracker = JiraTracker(jira.base_url, "PROJ", jira.token, email=jira.email, cloud=cloud)
        store = SqlStore(store_url)
        emb = HashEmbedder()
        index = LocalIndex(emb, store, "PROJ")
        now = [datetime(2026, 11, 26, 12, 0, tzinfo=UTC)]
        sync = JiraSync(tracker, index, store, "PROJ", clock=lambda: now[0])

        first = sync.sync(page_size=100)
        assert first.seen == 230 and first.pages == 3
        assert index.count() == 230
        labelled = index.labelled()
        assert {t.type for t, _ in labelled} == {"Bug", "Story"}
        hit = index.search("Ticket number 17 about exports", top_k=1)[0]
        assert hit.key == "PROJ-18" and hit.url == f"{jira.base_url}/browse/PROJ-18"
        stored = store.get_tickets("PROJ", ["PROJ-18"])["PROJ-18"].ticket
        assert stored is not None
        assert (stored.labels, stored.components) == (("exports",), ("Reports", "API"))

        # Only what changed after the cursor comes back; unchanged texts are not re-embedded.
        texts = emb.texts
        key = jira.add_issue("Brand new idea about dark mode", updated=now[0] + timedelta(hours=1))
        now[0] += timedelta(hours=2)
        second = sync.sync()
        # The margin re-reads the last ten minutes of Jira's updates (12:39-12:49): pages only.
        assert second.seen == 1 + 11 and second.upserted == 1
        assert emb.texts == texts + 2
        assert index.count() == 231
        assert index.search("dark mode idea", top_k=1)[0].key == key
        # A replica with an empty disk sees it all on its first search, embedding nothing.
        replica_emb = HashEmbedder()
        replica = LocalIndex(replica_emb, SqlStore(store_url), "PROJ")
        assert replica.count() == 231 and replica_emb.texts == 0  # loaded, nothing embedded
        assert replica.search("dark mode idea", top_k=1)[0].key == key
        store.close()
        replica.catalogue.close()  # type: ignore[attr-defined]


@pytest.mark.parametrize("says_zone", [True, False], ids=["zone-from-myself", "zone-unknown"])
def test_an_account_in_new_york_misses_nothing(store_url: str, says_zone: bool) -> None:
    """JQL dates are read in the bot account's zone (UTC-5 here): an issue created after the
    first sync is found by the second, whether Jira names the zone or not."""
    jira_now = datetime(2026, 1, 15, 17, 0, tzinfo=UTC)  # noon in New York
    with FakeJira(project="PROJ", time_zone="America/New_York", says_time_zone=says_zone) as jira:
        for i in range(5):
            jira.add_issue(f"Older idea {i}", updated=jira_now - timedelta(days=1, minutes=i))
        jira.add_issue("The newest before the first sync", updated=jira_now)
        tracker = JiraTracker(jira.base_url, "PROJ", jira.token, email=jira.email)
        store = SqlStore(store_url)
        emb = HashEmbedder()
        index = LocalIndex(emb, store, "PROJ")
        # Our clock runs ahead of Jira's; the cursor must not depend on it.
        ours = jira_now + timedelta(minutes=20)
        sync = JiraSync(tracker, index, store, "PROJ", clock=lambda: ours)
        assert sync.sync().seen == 6

        key = jira.add_issue(
            "Created after the first sync", updated=jira_now + timedelta(minutes=5)
        )
        texts = emb.texts
        second = sync.sync()
        assert second.upserted == 1 and emb.texts == texts + 2
        assert index.search("created after the first sync", top_k=1)[0].key == key
        jql = jira.requests_to("/search")[-1].param("jql") or ""
        # 16:50 UTC (the newest update minus the margin) in New York is 11:50; when Jira does
        # not say, 14 hours earlier than UTC: early enough in every zone.
        wall = "2026/01/15 11:50" if says_zone else "2026/01/15 02:50"
        assert f'updated >= "{wall}"' in jql
        # Re-reading the widened window costs pages, not embeddings or catalogue writes.
        assert second.seen == 2
        store.close()
