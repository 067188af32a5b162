"""The Pinecone index adapter, running the real ``pinecone`` SDK against a local fake data plane.

Its state lives in the catalogue (``MemoryStore`` here, SQL in the last test): no local file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pinecone.errors import ApiError

from bot.adapters.index_local import IndexModelMismatch
from bot.adapters.index_pinecone import (
    MAX_METADATA_BYTES,
    IndexDimensionMismatch,
    PineconeIndex,
    PineconeState,
)
from bot.adapters.store_sql import SqlStore
from bot.domain.models import Ticket
from bot.domain.ports import CachedIndex, TicketIndex
from tests.fakes.embedder import HashEmbedder
from tests.fakes.memory_store import MemoryStore
from tests.fakes.pinecone_server import MAX_REQUEST_BYTES, FakePinecone
from tests.fakes.tickets import TICKETS

NS = "APP"


@pytest.fixture
def fake() -> Iterator[FakePinecone]:
    server = FakePinecone(dimension=384).start()
    yield server
    server.stop()


@pytest.fixture
def cat() -> MemoryStore:
    return MemoryStore()


def make(
    fake: FakePinecone, cat: PineconeState, emb: HashEmbedder | None = None, **kw: object
) -> PineconeIndex:
    return PineconeIndex(
        emb or HashEmbedder(),
        catalogue=cat,
        namespace=NS,
        api_key=fake.api_key,
        host=fake.url,
        backoff=0.0,
        **kw,  # type: ignore[arg-type]
    )


def ok_upserts(fake: FakePinecone) -> list[dict[str, object]]:
    return [r.body for r in fake.calls("/vectors/upsert") if r.status == 200]


def test_implements_the_port_and_sends_sdk_headers(fake: FakePinecone, cat: MemoryStore) -> None:
    ix = make(fake, cat)
    assert isinstance(ix, TicketIndex) and isinstance(ix, CachedIndex)
    ix.upsert(TICKETS)
    req = fake.calls("/vectors/upsert")[0]
    headers = {k.lower(): v for k, v in req.headers.items()}
    assert headers["api-key"] == fake.api_key
    assert headers["x-pinecone-api-version"]
    assert fake.ids(NS) == {t.key for t in TICKETS} | {t.key + "#t" for t in TICKETS}
    assert fake.metadata(NS, "APP-1") == {
        "key": "APP-1",
        "part": "body",
        "title": "Login page crashes on Safari",
        "h": fake.metadata(NS, "APP-1")["h"],  # type: ignore[index]
        "type": "Bug",
        "status": "Open",
        "url": "https://jira.example/browse/APP-1",
        "desc": TICKETS[0].description,
        "project": "APP",  # the ticket's project: searches filter on it (JIRA_PROJECTS)
    }
    assert fake.metadata(NS, "APP-3") is not None
    assert "type" not in fake.metadata(NS, "APP-3")  # type: ignore[operator]  # no nulls


def test_upsert_is_idempotent(fake: FakePinecone, cat: MemoryStore) -> None:
    emb = HashEmbedder()
    ix = make(fake, cat, emb)
    assert ix.upsert(TICKETS) == 4
    version, n_requests, texts = ix.version(), len(fake.requests), emb.texts
    assert ix.upsert(TICKETS) == 0
    assert len(fake.requests) == n_requests  # the content hash makes a re-sync free
    assert emb.texts == texts
    assert ix.version() == version
    assert ix.count() == 4


def test_changed_text_is_re_embedded_and_status_change_reuses_the_vector(
    fake: FakePinecone, cat: MemoryStore
) -> None:
    emb = HashEmbedder()
    ix = make(fake, cat, emb)
    ix.upsert(TICKETS)
    v1, texts = ix.version(), emb.texts
    old_vec = fake.namespaces[NS]["APP-1"].values

    assert ix.upsert([TICKETS[0].model_copy(update={"status": "Done"})]) == 1
    assert emb.texts == texts
    assert fake.namespaces[NS]["APP-1"].values == old_vec
    assert fake.metadata(NS, "APP-1")["status"] == "Done"  # type: ignore[index]
    assert ix.version() != v1

    changed = TICKETS[2].model_copy(
        update={"title": "Import contacts from vCard", "description": "Read vCard files."}
    )
    assert ix.upsert([changed]) == 1
    assert emb.texts == texts + 2
    last = ok_upserts(fake)[-1]["vectors"]
    assert sorted(v["id"] for v in last) == ["APP-3", "APP-3#t"]  # type: ignore[attr-defined]
    assert ix.search("import vcard contacts", 1)[0].key == "APP-3"
    assert ix.count() == 4
    stats = ix._stats.to_json()  # BM25 statistics, counted from the catalogue
    assert stats["n_docs"] == 4
    assert "csv" not in stats["df"] and stats["df"]["vcard"] == 1


def test_delete_removes_both_records(fake: FakePinecone, cat: MemoryStore) -> None:
    ix = make(fake, cat)
    ix.upsert(TICKETS)
    v1 = ix.version()
    ix.delete(["APP-1", "NOPE-1"])
    assert "APP-1" not in fake.ids(NS) and "APP-1#t" not in fake.ids(NS)
    assert ix.count() == 3
    assert ix.version() != v1
    assert "APP-1" not in {m.key for m in ix.search("login page crashes on Safari", 5)}
    n = len(fake.requests)
    ix.delete(["NOPE-1"])
    assert len(fake.requests) == n


def test_fused_ranking_puts_the_paraphrased_duplicate_first(
    fake: FakePinecone, cat: MemoryStore
) -> None:
    ix = make(fake, cat)
    ix.upsert(TICKETS)
    matches = ix.search("Safari crashes when I open the login page", 4)
    assert [m.key for m in matches][:1] == ["APP-1"]
    assert matches[0].url == "https://jira.example/browse/APP-1"
    assert all(0.0 <= m.score <= 1.0 for m in matches)
    assert [m.score for m in matches] == sorted((m.score for m in matches), reverse=True)
    assert matches[0].signals and matches[0].signals["lexical"] == pytest.approx(1.0)
    queries = [r.body for r in fake.calls("/query")]
    assert {q["filter"]["part"]["$eq"] for q in queries} == {"body", "title"}
    many = ix.search_many(["Safari crashes when I open the login page", "csv export"], 2)
    assert many[0] == ix.search("Safari crashes when I open the login page", 2)
    assert many[1][0].key == "APP-3"


def test_scores_agree_with_the_local_index(fake: FakePinecone, cat: MemoryStore) -> None:
    from bot.adapters.index_local import LocalIndex

    ix = make(fake, cat)
    local = LocalIndex(HashEmbedder(), MemoryStore(), NS)
    ix.upsert(TICKETS)
    local.upsert(TICKETS)
    q = "the admin page search is slow"
    remote, here = ix.search(q, 4), local.search(q, 4)
    assert [m.key for m in remote] == [m.key for m in here]
    for a, b in zip(remote, here, strict=True):
        assert a.score == pytest.approx(b.score, abs=1e-4)


def test_batches_stay_within_pinecone_limits(fake: FakePinecone, cat: MemoryStore) -> None:
    ix = make(fake, cat)
    tickets = [
        Ticket(key=f"BIG-{i}", title=f"ticket {i}", description=f"words {i % 7} and more")
        for i in range(2500)
    ]
    assert ix.upsert(tickets) == 2500
    calls = fake.calls("/vectors/upsert")
    assert all(r.status == 200 for r in calls)
    assert len(calls) >= 5  # 5,000 records
    assert all(len(r.body["vectors"]) <= 1000 for r in calls)
    assert all(r.size <= MAX_REQUEST_BYTES for r in calls)
    assert len(fake.ids(NS)) == 5000
    assert ix.count() == 2500


def test_large_metadata_is_cut_to_fit_and_requests_split_by_size(
    fake: FakePinecone, cat: MemoryStore
) -> None:
    ix = make(fake, cat)
    huge = "Crash log: " + 'é€ "quoted"\n' * 8000  # ~100 KB of multi-byte and escaped text
    tickets = [
        Ticket(key=f"LOG-{i}", title=f"crash report {i}", description=huge) for i in range(60)
    ]
    assert len(huge.encode()) > 100_000
    ix.upsert(tickets)
    calls = fake.calls("/vectors/upsert")
    assert all(r.status == 200 for r in calls)
    assert len(calls) >= 2  # 60 x ~40 KB does not fit one 2 MB request
    assert all(r.size <= MAX_REQUEST_BYTES for r in calls)
    meta = fake.metadata(NS, "LOG-0")
    assert meta is not None
    size = len(json.dumps(meta, ensure_ascii=False, separators=(",", ":")).encode())
    assert 30_000 < size <= MAX_METADATA_BYTES
    assert huge.startswith(meta["desc"])


def test_retries_429_then_succeeds(fake: FakePinecone, cat: MemoryStore) -> None:
    ix = make(fake, cat)
    started = len(fake.requests)  # after the start-up's dimension check
    fake.fail_next(429, times=2)
    assert ix.upsert(TICKETS) == 4
    # The first request asks whether Pinecone already holds these texts (see the upgrade test).
    calls = [(r.path, r.status) for r in fake.requests[started:]]
    assert calls == [("/vectors/fetch", 429)] * 2 + [("/vectors/fetch", 200)] + [
        ("/vectors/upsert", 200)
    ]
    assert ix.count() == 4


def test_gives_up_after_repeated_server_errors(fake: FakePinecone, cat: MemoryStore) -> None:
    emb = HashEmbedder()
    ix = make(fake, cat, emb, retries=1)
    ix.upsert(TICKETS[:1])
    fake.fail_next(503, times=1000)
    with pytest.raises(ApiError) as info:
        ix.upsert(TICKETS)
    assert info.value.status_code == 503
    assert len(fake.calls("/vectors/fetch")) >= 3  # our retry on top of the SDK's own
    assert ix.count() == 1  # nothing more recorded as indexed
    fake.failures.clear()
    assert ix.upsert(TICKETS) == 3
    assert emb.texts == 8  # every text embedded once, whatever failed in between
    fake.fail_next(503, times=1000)
    with pytest.raises(ApiError):
        ix.upsert([TICKETS[0].model_copy(update={"status": "Done"})])  # no fetch: the upsert
    assert len(fake.calls("/vectors/upsert")) >= 4 and ix.count() == 4
    fake.failures.clear()
    assert ix.upsert([TICKETS[0].model_copy(update={"status": "Done"})]) == 1


def test_bad_request_is_not_retried(fake: FakePinecone, cat: MemoryStore) -> None:
    fake.dimension = 8  # the index was created with another dimension
    ix = make(fake, cat, check_dimension=False)  # as before the start-up check existed
    with pytest.raises(ApiError) as info:
        ix.upsert(TICKETS)
    assert info.value.status_code == 400
    assert len(fake.calls("/vectors/upsert")) == 1


def test_labelled_comes_from_the_catalogue_and_is_cached(
    fake: FakePinecone, cat: MemoryStore
) -> None:
    ix = make(fake, cat)
    many = [
        Ticket(key=f"L-{i:03d}", title=f"item {i}", description="d", type="Bug" if i % 2 else None)
        for i in range(150)
    ]
    ix.upsert(many)
    n = len(fake.requests)
    labelled = ix.labelled()
    assert sorted(t.key for t, _ in labelled) == sorted(t.key for t in many if t.type)
    assert all(v.shape == (2 * 384,) for _, v in labelled)
    vec = next(v for t, v in labelled if t.key == "L-001")
    np.testing.assert_allclose(vec[:384], HashEmbedder().embed(["item 1\nd"])[0], atol=1e-6)
    np.testing.assert_allclose(vec[384:], HashEmbedder().embed(["item 1"])[0], atol=1e-6)
    assert ix.labelled() is labelled
    assert len(fake.requests) == n  # no Pinecone request
    ix.upsert([many[0].model_copy(update={"type": "Story"})])
    assert len(ix.labelled()) == len(labelled) + 1


def test_state_lives_in_the_database_and_model_mismatch_is_refused(
    fake: FakePinecone, cat: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ix = make(fake, cat)
    ix.upsert(TICKETS)
    again = make(fake, cat)  # another replica: same database, no file anywhere
    assert again.count() == 4
    assert again.version() == ix.version()
    n = len(fake.requests)
    assert again.upsert(TICKETS) == 0
    assert len(fake.requests) == n
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(IndexModelMismatch):
        make(fake, cat, HashEmbedder(model_id="other-model"))
    other = HashEmbedder(model_id="other-model")
    reset = make(fake, cat, other, on_mismatch="reset")
    # Emptied and filled again from the catalogue, each text embedded once with the new model.
    assert reset.count() == 4 and other.texts == 8
    assert fake.ids(NS) == {t.key for t in TICKETS} | {t.key + "#t" for t in TICKETS}
    np.testing.assert_allclose(
        fake.namespaces[NS]["APP-1"].values, other.embed([TICKETS[0].text()])[0], atol=1e-5
    )
    assert make(fake, cat, HashEmbedder(model_id="other-model")).count() == 4


def test_a_new_model_needs_an_index_of_its_dimension_and_fills_it(
    fake: FakePinecone, cat: MemoryStore
) -> None:
    make(fake, cat).upsert(TICKETS)
    other = HashEmbedder(dim=64, model_id="other-model")
    with pytest.raises(IndexDimensionMismatch, match=r"dimension 384.*dimension 64"):
        make(fake, cat, other)
    assert len(fake.ids(NS)) == 8  # nothing touched
    fresh = FakePinecone(dimension=64).start()
    try:
        ix = make(fresh, cat, other)  # a new, empty index: filled from the catalogue
        assert other.texts == 8
        assert fresh.ids(NS) == {t.key for t in TICKETS} | {t.key + "#t" for t in TICKETS}
        assert ix.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"
    finally:
        fresh.stop()


def test_a_replica_that_never_synced_searches_pinecone(
    fake: FakePinecone, cat: MemoryStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    a = make(fake, cat)
    a.upsert(TICKETS)
    query = "Safari crashes when I open the login page"
    expected = a.search(query, 4)
    # Replica B on the same database, an empty disk, never synced: the same answer.
    b = make(fake, cat)
    assert b.search(query, 4) == expected
    # Even on a database whose catalogue is empty, Pinecone is searched (BM25 then counts
    # over the candidates).
    c = make(fake, MemoryStore())
    found = c.search(query, 4)
    assert found[0].key == "APP-1"
    assert [m.key for m in found] == [m.key for m in expected]
    assert list(tmp_path.iterdir()) == []


def test_vectors_already_in_pinecone_are_reused_when_the_catalogue_is_new(
    fake: FakePinecone, cat: MemoryStore
) -> None:
    """Upgrading: Pinecone was filled before the catalogue existed. The first sync fills the
    catalogue with the vectors Pinecone holds for the same texts instead of embedding again."""
    make(fake, MemoryStore()).upsert(TICKETS)
    emb = HashEmbedder()
    ix = make(fake, cat, emb)
    changed = TICKETS[3].model_copy(update={"description": "now much slower"})
    assert ix.upsert([*TICKETS[:3], changed]) == 4
    assert emb.texts == 2  # only the changed text
    assert cat.count_tickets(NS) == 4
    assert len(cat.get_embeddings(emb.model_id, [t.content_hash() for t in TICKETS[:3]])) == 3
    assert ix.search("the admin page search is slow", 1)[0].key == "APP-4"


def test_on_a_sql_catalogue(fake: FakePinecone, store_url: str) -> None:
    first, second = SqlStore(store_url), SqlStore(store_url)
    try:
        make(fake, first).upsert(TICKETS)
        emb = HashEmbedder()
        b = make(fake, second, emb)
        assert b.count() == 4 and b.upsert(TICKETS) == 0 and emb.texts == 0
        assert b.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"
        b.delete(["APP-1"])
        assert make(fake, first).count() == 3
        assert "APP-1" not in fake.ids(NS)
    finally:
        first.close()
        second.close()


def test_bootstrap_wires_pinecone_on_the_database(
    fake: FakePinecone, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas through the composition root: B never synced, has no disk, and searches."""
    from bot.bootstrap import bootstrap
    from bot.config import load_settings

    monkeypatch.chdir(tmp_path)
    db = f"sqlite:///{tmp_path / 'db.sqlite3'}"
    replicas = []
    for name in ("a", "b"):
        settings = load_settings(
            bot_data_dir=tmp_path / name,
            database_url=db,
            pinecone_api_key=fake.api_key,
            pinecone_host=fake.url,
            _env_file=None,
        )
        replicas.append(bootstrap(settings, embedder=HashEmbedder(), llm=None, chat=None))
    a, b = replicas
    assert isinstance(a.adapters.index, PineconeIndex)
    a.catalogue.add(TICKETS)
    found = b.catalogue.similar(["Safari crashes when I open the login page"], top_k=1)
    assert found[0][0].key == "APP-1"
    b.catalogue.warm_up()
    b.adapters.index._warming.join(timeout=30)  # type: ignore[attr-defined]
    assert b.catalogue_ready() and b.catalogue.count() == 4
    assert [p for name in ("a", "b") for p in (tmp_path / name).rglob("*")] == []  # no files


QUERIES = [
    "the admin page search is slow",
    "Safari crashes when I open the login page",
    "csv export is broken",
    "add dark mode",
    "login fails with SSO",
    "the report takes minutes to load",
    "crash on export of large files",
    "search results are wrong on the admin page",
]


@pytest.mark.parametrize("fusion_off", [False, True])
def test_ranks_as_the_local_index_does_with_rank_fusion(
    fake: FakePinecone, cat: MemoryStore, fusion_off: bool
) -> None:
    # One ranking for both adapters (the fusion cross-validated in bench/eval_fusion_cv.py):
    # with every ticket a Pinecone candidate, the orders agree query by query. Without rank
    # fusion (the weighted mean the Pinecone adapter used before) they do not.
    from bot.adapters.index_local import LocalIndex

    ix = make(fake, cat, **({"fusion": None} if fusion_off else {}))
    local = LocalIndex(HashEmbedder(), MemoryStore(), NS)
    ix.upsert(TICKETS)
    local.upsert(TICKETS)
    agree = [
        [m.key for m in ix.search(q, 5)] == [m.key for m in local.search(q, 5)] for q in QUERIES
    ]
    assert all(agree) != fusion_off, agree
