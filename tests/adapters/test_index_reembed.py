"""A change of embedding model: the catalogue keeps each model's vectors, the local index searches
the old model's vectors (queries embedded by the old model) while the new model's are made in the
background, then serves the new ones. The new model is the real OpenAI client against the local
fake server; the old one the hashing stand-in for the embedded model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.adapters.embedder_remote import RemoteEmbedder, build_remote_embedder
from bot.adapters.index_local import LocalIndex
from bot.adapters.store_sql import SqlStore
from bot.domain.models import Ticket
from bot.domain.ports import Embedder
from tests.fakes.embedder import HashEmbedder
from tests.fakes.memory_store import MemoryStore
from tests.fakes.openai_embeddings_server import FakeOpenAIEmbeddings
from tests.fakes.tickets import TICKETS

NEW = "openai:text-embedding-3-small"
OLD = "all-MiniLM-L6-v2-onnx-int8"  # the embedded model's id, as stored before the change
QUERY = "Safari crashes when I open the login page"


@pytest.fixture
def fake() -> Iterator[FakeOpenAIEmbeddings]:
    server = FakeOpenAIEmbeddings(dimension=48).start()
    yield server
    server.stop()


def new_model(fake: FakeOpenAIEmbeddings) -> RemoteEmbedder:
    return build_remote_embedder(NEW, base_url=fake.base_url, params={"api_key": fake.api_key})


def filled(old: HashEmbedder) -> MemoryStore:
    cat = MemoryStore()
    LocalIndex(old, cat, "APP").upsert(TICKETS)
    return cat


def previous(old: Embedder) -> dict[str, Embedder]:
    return {old.model_id: old}


def test_searches_the_old_vectors_until_the_new_ones_are_made(
    fake: FakeOpenAIEmbeddings,
) -> None:
    old = HashEmbedder(dim=384, model_id=OLD)
    cat = filled(old)
    new = new_model(fake)
    gate = fake.hold()  # the new model's requests wait until the test lets them through
    ix = LocalIndex(new, cat, "APP", previous=previous(old).get)
    before = old.calls
    matches = ix.search(QUERY, 3)
    assert matches[0].key == "APP-1"  # answered from the old vectors...
    assert old.calls == before + 1  # ...with the query embedded by the old model
    assert ix.embedder is old and not ix.reembedded.is_set()
    assert ix.labelled() == []  # no classifier on another model's vectors
    assert ix.version().endswith(f"~{OLD}")
    gate.set()
    assert ix.reembedded.wait(20)  # the background job ends by itself
    assert ix.embedder is new
    assert cat.embedding_models("APP") == {OLD: 4, NEW: 4}
    embedded = {t for batch in fake.inputs() for t in batch}
    assert {t.text() for t in TICKETS} | {t.title for t in TICKETS} <= embedded
    matches = ix.search(QUERY, 3)
    assert matches[0].key == "APP-1"
    assert QUERY in {t for batch in fake.inputs() for t in batch}  # now the new model's query
    assert old.calls == before + 1
    assert "~" not in ix.version()
    assert ix.labelled()[0][1].shape == (96,)  # [body | title] of the new model
    # Another replica of the new model finds every vector stored: nothing to do.
    sent = len(fake.requests)
    again = LocalIndex(new_model(fake), cat, "APP", previous=previous(old).get)
    assert again.count() == 4 and again.embedder.model_id == NEW
    assert len(fake.requests) == sent + 1  # its start-up probe only


def test_writes_during_the_change_get_both_models_vectors(fake: FakeOpenAIEmbeddings) -> None:
    old = HashEmbedder(dim=384, model_id=OLD)
    cat = filled(old)
    new = new_model(fake)
    ix = LocalIndex(new, cat, "APP", previous=previous(old).get, background=False)
    assert ix.count() == 4 and ix.embedder is old
    extra = Ticket(key="APP-9", title="Bulk export of tickets to CSV", description="for finance")
    assert ix.upsert([extra]) == 1
    h = extra.content_hash()
    assert h in cat.get_embeddings(OLD, [h]) and h in cat.get_embeddings(NEW, [h])
    assert ix.search("bulk csv export", 1)[0].key == "APP-9"  # searchable at once
    assert ix.reembed() == 4  # the four older tickets; APP-9 had its vectors already
    assert ix.embedder is new and ix.count() == 5
    assert ix.search("bulk csv export", 1)[0].key == "APP-9"


def test_without_the_old_model_the_new_vectors_are_made_before_serving(
    fake: FakeOpenAIEmbeddings,
) -> None:
    cat = filled(HashEmbedder(dim=384, model_id="some-retired-model"))
    new = new_model(fake)
    ix = LocalIndex(new, cat, "APP", previous=previous(HashEmbedder(model_id=OLD)).get)
    assert ix.count() == 4 and ix.embedder is new  # re-embedded at load, as before
    assert cat.embedding_models("APP")[NEW] == 4


def test_the_sql_catalogue_counts_vectors_per_model(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'c.sqlite3'}")
    try:
        LocalIndex(HashEmbedder(model_id="a"), store, "APP").upsert(TICKETS)
        LocalIndex(HashEmbedder(dim=64, model_id="b"), store, "APP").count()  # re-embeds all
        store.delete_tickets("APP", ["APP-1"])
        store.put_embeddings("c", {"not-a-ticket-hash": b"\0" * 8})
        assert store.embedding_models("APP") == {"a": 3, "b": 3}
        assert store.embedding_models("OTHER") == {}
    finally:
        store.close()
