"""The project filter of the ticket indexes (JIRA_PROJECTS): local, Pinecone, and the catalogue
column that keeps each ticket's project."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.index_local import LocalIndex
from bot.adapters.index_pinecone import PineconeIndex
from bot.adapters.store_sql import SqlStore
from bot.domain.models import Ticket
from bot.domain.ports import TicketIndex
from tests.fakes.embedder import HashEmbedder
from tests.fakes.memory_store import MemoryStore
from tests.fakes.pinecone_server import FakePinecone

TICKETS = [
    Ticket(key="APP-1", title="Safari crashes on the login page", project="APP"),
    Ticket(key="MOB-1", title="Safari crashes on the login page in the app", project="MOB"),
    Ticket(key="MOB-2", title="Export the report to CSV", project="MOB"),
    # Written before tickets carried their project: the key says it.
    Ticket(key="WEB-1", title="Safari crashes when logging in"),
]
QUERY = "Safari crashes on the login page"


@pytest.fixture
def fake() -> Iterator[FakePinecone]:
    server = FakePinecone(dimension=384).start()
    yield server
    server.stop()


def _check(ix: TicketIndex) -> None:
    ix.upsert(TICKETS)
    assert {m.key for m in ix.search(QUERY, 10)} >= {"APP-1", "MOB-1", "WEB-1"}
    assert [m.key for m in ix.search(QUERY, 10, projects=["MOB"])][:1] == ["MOB-1"]
    assert {m.key for m in ix.search(QUERY, 10, projects=["MOB"])} <= {"MOB-1", "MOB-2"}
    assert {m.key for m in ix.search(QUERY, 10, projects=["WEB"])} == {"WEB-1"}
    assert {m.key for m in ix.search(QUERY, 10, projects=["APP", "WEB"])} == {"APP-1", "WEB-1"}
    assert ix.search(QUERY, 10, projects=["NONE"]) == []
    many = ix.search_many([QUERY, "csv export"], 10, projects=["MOB"])
    assert all(m.key.startswith("MOB-") for found in many for m in found)


def test_local_index_filters_by_project() -> None:
    _check(LocalIndex(HashEmbedder(), MemoryStore(), "APP"))


def test_local_index_filter_follows_changes() -> None:
    ix = LocalIndex(HashEmbedder(), MemoryStore(), "APP")
    ix.upsert(TICKETS)
    assert ix.search(QUERY, 10, projects=["NEW"]) == []
    ix.upsert([Ticket(key="NEW-1", title="Safari crashes on login", project="NEW")])
    assert [m.key for m in ix.search(QUERY, 10, projects=["NEW"])] == ["NEW-1"]


def test_pinecone_filters_by_project_metadata(fake: FakePinecone) -> None:
    ix = PineconeIndex(
        HashEmbedder(),
        catalogue=MemoryStore(),
        namespace="APP",
        api_key=fake.api_key,
        host=fake.url,
        backoff=0.0,
    )
    _check(ix)
    filters = [r.body["filter"] for r in fake.calls("/query")]
    assert {"part": {"$eq": "body"}, "project": {"$in": ["MOB"]}} in filters
    assert {"part": {"$eq": "title"}} in filters  # no filter without projects


def test_the_catalogue_keeps_each_tickets_project(store_url: str) -> None:
    store = SqlStore(store_url)
    try:
        store.put_tickets("APP", TICKETS)
        rows = store.get_tickets("APP", [t.key for t in TICKETS])
        assert rows["MOB-1"].ticket is not None and rows["MOB-1"].ticket.project == "MOB"
        assert rows["WEB-1"].ticket is not None and rows["WEB-1"].ticket.project is None
        assert rows["WEB-1"].ticket.project_key == "WEB"
        _check(LocalIndex(HashEmbedder(), store, "APP2"))
    finally:
        store.close()


def test_a_catalogue_from_before_gets_the_project_column(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.sqlite3'}"
    SqlStore(url).close()
    with sqlite3.connect(tmp_path / "old.sqlite3") as conn:  # as an older bot made it
        conn.execute("ALTER TABLE catalogue_tickets DROP COLUMN jira_project")
    store = SqlStore(url)
    try:
        store.put_tickets("APP", TICKETS[:2])
        rows = store.get_tickets("APP", ["MOB-1"])
        assert rows["MOB-1"].ticket is not None and rows["MOB-1"].ticket.project == "MOB"
    finally:
        store.close()
