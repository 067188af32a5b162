"""A change of embedding model: the catalogue keeps each model's vectors, the local index searches
the old model's vectors (queries embedded by the old model) while the new model's are made in the
background, then serves the new ones. The new model is the real OpenAI client against the local
fake server; the old one the hashing stand-in for the embedded model.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from bot.adapters.embedder_remote import RemoteEmbedder, build_remote_embedder
from bot.adapters.index_local import LocalIndex
from bot.adapters.store_sql import SqlStore
from bot.domain.models import Ticket
from bot.domain.ports import Embedder, TicketStore
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


# ---------------------------------------------------------------- one replica pays the provider

LEASE = 60.0
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


class WallClock:
    """The replicas' shared wall clock, moved by hand (leases are dated by it)."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


class CountingEmbedder(HashEmbedder):
    """The new model, counting each text it was paid to embed; *before* runs ahead of a call
    (to interleave another replica, or to fail like a dying process)."""

    def __init__(self) -> None:
        super().__init__(dim=32, model_id=NEW)
        self.per_text: Counter[str] = Counter()
        self.before: Callable[[], None] | None = None

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if self.before is not None:
            self.before()
        self.per_text.update(texts)
        return super().embed(texts)


def many_tickets(n: int) -> list[Ticket]:
    return [
        Ticket(key=f"APP-{i}", title=f"Ticket number {i} title", description=f"body text {i}")
        for i in range(1, n + 1)
    ]


@pytest.fixture
def shared(store_backend: str) -> Iterator[TicketStore]:
    """One catalogue on each backend (memory, SQLite, PostgreSQL), filled by the old model."""
    cat: Any = MemoryStore() if store_backend == "memory" else SqlStore(store_backend)
    try:
        LocalIndex(HashEmbedder(dim=16, model_id=OLD), cat, "APP").upsert(many_tickets(10))
        yield cat
    finally:
        if isinstance(cat, SqlStore):
            cat.close()


def replica(cat: TicketStore, new: Embedder, clock: WallClock) -> LocalIndex:
    old = HashEmbedder(dim=16, model_id=OLD)
    ix = LocalIndex(
        new,
        cat,
        "APP",
        previous=previous(old).get,
        background=False,
        reembed_batch=3,
        wall_clock=clock,
        reembed_lease=LEASE,
    )
    assert ix.count() == 10 and ix.embedder is old  # serving the old vectors
    return ix


def expected_texts() -> set[str]:
    return {t.text() for t in many_tickets(10)} | {t.title for t in many_tickets(10)}


def test_two_replicas_embed_each_ticket_once(shared: TicketStore) -> None:
    clock = WallClock()
    new_a, new_b = CountingEmbedder(), CountingEmbedder()
    a, b = replica(shared, new_a, clock), replica(shared, new_b, clock)
    seen: list[int] = []
    # While A holds the lease (inside its first provider call), B tries: it must not embed.
    new_a.before = lambda: seen.append(b.reembed()) if not seen else None
    assert a.reembed() == 10
    assert seen == [0] and new_b.calls == 0 and b.embedder.model_id == OLD
    assert b.reembed() == 0  # every vector stored: B switches without a provider call
    assert new_b.calls == 0
    assert a.embedder is new_a and b.embedder is new_b
    assert set(new_a.per_text) == expected_texts()
    assert set(new_a.per_text.values()) == {1}  # each text embedded exactly once in total
    assert "~" not in a.version() and "~" not in b.version()  # both serve the new vectors
    assert a.count() == b.count() == 10


def test_a_dead_holders_lease_expires_and_another_finishes(shared: TicketStore) -> None:
    clock = WallClock()
    new_a, new_b = CountingEmbedder(), CountingEmbedder()
    a, b = replica(shared, new_a, clock), replica(shared, new_b, clock)

    def die() -> None:
        if new_a.calls == 1:  # its second step, after one stored step of 3 tickets
            raise RuntimeError("the process was killed")

    new_a.before = die
    with pytest.raises(RuntimeError):
        a.reembed()
    assert shared.embedding_models("APP").get(NEW) == 3
    clock.advance(LEASE - 1)
    assert b.reembed() == 0 and new_b.calls == 0  # the lease still holds
    clock.advance(2)
    assert b.reembed() == 7  # taken over: only what is not stored yet
    assert b.embedder is new_b
    assert set(new_a.per_text) | set(new_b.per_text) == expected_texts()
    assert not set(new_a.per_text) & set(new_b.per_text)  # nothing embedded twice
    new_a.before = None
    assert a.reembed() == 0 and new_a.calls == 1  # A comes back: all done, it switches
    assert a.embedder is new_a


def test_a_holder_that_lost_its_lease_writes_nothing_more(shared: TicketStore) -> None:
    clock = WallClock()
    new_a, new_b = CountingEmbedder(), CountingEmbedder()
    a, b = replica(shared, new_a, clock), replica(shared, new_b, clock)

    def stall() -> None:
        if new_a.calls == 1:  # A stalls past its lease in its second step; B takes over
            new_a.before = None
            clock.advance(LEASE + 1)
            assert b.reembed() == 7

    new_a.before = stall
    assert a.reembed() == 3  # its second step was refused; it stopped
    assert new_a.calls == 2  # and asked the provider for no third step
    assert shared.embedding_models("APP").get(NEW) == 10
    assert a.embedder.model_id == OLD  # still the old vectors until it sees the work done
    assert a.reembed() == 0 and a.embedder is new_a


def test_the_reembed_lease_is_fenced(shared: TicketStore) -> None:
    later = T0 + timedelta(seconds=LEASE)
    first = shared.lease_reembed("APP", NEW, T0, later)
    assert first is not None
    assert shared.lease_reembed("APP", NEW, T0, later) is None  # held
    assert shared.lease_reembed("APP", "other-model", T0, later) is not None  # per model
    assert shared.put_reembedded("APP", NEW, first, {"h1": b"x" * 8}, later + timedelta(1))
    assert shared.lease_reembed("APP", NEW, later, later) is None  # renewed past *later*
    second = shared.lease_reembed("APP", NEW, later + timedelta(2), later + timedelta(3))
    assert second is not None and second > first
    assert not shared.put_reembedded("APP", NEW, first, {"h2": b"y" * 8}, later)
    assert shared.get_embeddings(NEW, ["h1", "h2"]) == {"h1": b"x" * 8}
    assert shared.put_reembedded("APP", NEW, second, {"h2": b"y" * 8}, later)


def test_a_stopped_holder_hands_its_lease_back_at_once(shared: TicketStore) -> None:
    """A rolling restart stops the replica that is re-embedding: what it made is written and
    another replica goes on at once, not after the lease runs out."""
    clock = WallClock()
    new_a, new_b = CountingEmbedder(), CountingEmbedder()
    a, b = replica(shared, new_a, clock), replica(shared, new_b, clock)

    def stop() -> None:
        if new_a.calls == 1:  # in its second step: SIGTERM, then the drain stops re-embedding
            a.stop(timeout=0)

    new_a.before = stop
    assert a.reembed() == 6  # the step it was in was written, then it stopped
    assert new_a.calls == 2
    assert shared.embedding_models("APP").get(NEW) == 6
    assert b.reembed() == 4  # the clock has not moved: the lease was handed back
    assert b.embedder is new_b
    assert not set(new_a.per_text) & set(new_b.per_text)  # nothing embedded twice
