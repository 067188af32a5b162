"""The local ticket index: a cache of the catalogue, idempotence, fused ranking, the duplicate rule.

Most tests run on the in-memory catalogue (``MemoryStore``); the ones about the database itself
(other handles, PostgreSQL) take ``store_url``. Several indexes on one catalogue stand for
several processes on one database.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.adapters.index_local import IndexModelMismatch, LocalIndex
from bot.adapters.lexical import InvertedIndex, headline, tokenize
from bot.adapters.store_sql import SqlStore
from bot.domain.duplicates import is_likely_duplicate
from bot.domain.models import Match, Ticket
from bot.domain.ports import CachedIndex, CatalogueRow, TicketIndex, TicketStore
from tests.fakes.embedder import HashEmbedder
from tests.fakes.memory_store import MemoryStore
from tests.fakes.tickets import TICKETS


class CountingStore(MemoryStore):
    """The in-memory catalogue, counting the rows each catch-up read and failing on demand."""

    def __init__(self) -> None:
        super().__init__()
        self.reads: list[tuple[int, int]] = []  # (after seq, rows returned)
        self.fail_puts = 0
        self.down = False

    def tickets_since(
        self, project: str, seq: int, *, model: str | None = None, limit: int = 1000
    ) -> list[CatalogueRow]:
        if self.down:
            raise ConnectionError("database down")
        rows = super().tickets_since(project, seq, model=model, limit=limit)
        self.reads.append((seq, len(rows)))
        return rows

    def catalogue_head(self, project: str) -> int:
        if self.down:
            raise ConnectionError("database down")
        return super().catalogue_head(project)

    def put_tickets(self, project: str, tickets: Sequence[Ticket]) -> int:
        if self.fail_puts:
            self.fail_puts -= 1
            raise ConnectionError("lost the connection")
        return super().put_tickets(project, tickets)


@pytest.fixture
def cat() -> CountingStore:
    return CountingStore()


def make(cat: TicketStore, emb: HashEmbedder | None = None, **kw: object) -> LocalIndex:
    return LocalIndex(emb or HashEmbedder(), cat, "APP", **kw)  # type: ignore[arg-type]


def test_implements_the_port(cat: CountingStore) -> None:
    ix = make(cat)
    assert isinstance(ix, TicketIndex) and isinstance(ix, CachedIndex)


def test_upsert_is_idempotent_and_skips_unchanged_text(cat: CountingStore) -> None:
    emb = HashEmbedder()
    ix = make(cat, emb)
    assert ix.upsert(TICKETS) == 4
    texts, version = emb.texts, ix.version()
    assert texts == 8  # a body and a title vector per ticket
    assert ix.upsert(TICKETS) == 0
    assert ix.upsert(list(reversed(TICKETS))) == 0
    assert emb.texts == texts
    assert ix.version() == version
    assert ix.count() == 4
    assert cat.count_tickets("APP") == 4
    assert len(cat.get_embeddings(emb.model_id, [t.content_hash() for t in TICKETS])) == 4


def test_changed_ticket_replaces_the_old_one(cat: CountingStore) -> None:
    emb = HashEmbedder()
    ix = make(cat, emb)
    ix.upsert(TICKETS)
    v1 = ix.version()
    changed = TICKETS[2].model_copy(
        update={"title": "Import contacts from vCard", "description": "Read vCard files."}
    )
    before = emb.texts
    assert ix.upsert([changed]) == 1
    assert emb.texts == before + 2
    assert ix.count() == 4
    assert ix.version() != v1
    assert ix.search("import vcard contacts", 1)[0].key == "APP-3"
    assert all(m.key != "APP-3" for m in ix.search("export report csv spreadsheet", 4)[:1])


def test_metadata_only_change_is_stored_without_embedding(cat: CountingStore) -> None:
    emb = HashEmbedder()
    ix = make(cat, emb)
    ix.upsert(TICKETS)
    v1, before = ix.version(), emb.texts
    assert ix.upsert([TICKETS[0].model_copy(update={"status": "Done", "labels": ("web",)})]) == 1
    assert emb.texts == before
    assert ix.version() != v1
    top = ix.search("Safari login crash", 1)[0]
    assert (top.key, top.status) == ("APP-1", "Done")
    assert ix.get("APP-1") is not None and ix.get("APP-1").labels == ("web",)  # type: ignore[union-attr]


def test_a_text_is_embedded_once_across_instances(cat: CountingStore) -> None:
    """Another process (or a re-sync) writing a text already stored reuses its vectors."""
    a, b = HashEmbedder(), HashEmbedder()
    make(cat, a).upsert(TICKETS)
    other = make(cat, b)
    renamed = [t.model_copy(update={"key": t.key.replace("APP", "WEB")}) for t in TICKETS]
    assert other.upsert(renamed) == 4  # new keys, same texts
    assert b.texts == 0
    assert other.count() == 8


def test_delete(cat: CountingStore) -> None:
    ix = make(cat)
    ix.upsert(TICKETS)
    v1 = ix.version()
    ix.delete(["APP-1", "NOPE-9"])
    assert ix.count() == 3
    assert ix.version() != v1
    assert "APP-1" not in {m.key for m in ix.search("login page crashes on Safari", 10)}
    v2 = ix.version()
    ix.delete(["NOPE-9"])
    assert ix.version() == v2
    # The remaining rows still line up with their vectors and words after compaction.
    assert ix.search("admin page search slow", 1)[0].key == "APP-4"


def test_a_new_instance_loads_from_the_catalogue_without_embedding_or_files(
    cat: CountingStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    ix = make(cat)
    ix.upsert(TICKETS)
    expected = ix.search("dark theme dashboard", 4)
    emb = HashEmbedder()
    again = make(cat, emb)
    assert again.count() == 4
    assert emb.texts == 0
    assert again.version() == ix.version()
    assert again.search("dark theme dashboard", 4) == expected
    assert again.upsert(TICKETS) == 0
    assert list(tmp_path.iterdir()) == []  # nothing on disk: the database is the only state


def test_reader_sees_writes_of_another_instance(cat: CountingStore) -> None:
    reader = make(cat)
    reader.upsert(TICKETS[:2])
    writer = make(cat)
    writer.upsert(TICKETS[2:])
    assert reader.count() == 4
    assert reader.search("export csv", 1)[0].key == "APP-3"


NEW = Ticket(key="APP-5", title="Two-factor login by SMS", description="Send a one-time code.")


def test_other_instances_catch_up_by_sequence_number(cat: CountingStore) -> None:
    a = make(cat)
    a.upsert(TICKETS)
    b = make(cat)
    assert b.count() == 4
    cat.reads.clear()
    assert a.upsert([NEW]) == 1
    assert b.search("one-time code by SMS", 1)[0].key == "APP-5"
    assert b.version() == a.version()
    # b read only the one row written since its last number, not the catalogue again.
    assert [n for seq, n in cat.reads if seq > 0 and n] == [1, 1]
    # The other direction: a changed text and a metadata-only change.
    b.upsert([TICKETS[2].model_copy(update={"title": "Import vCard contacts", "description": "."})])
    b.upsert([TICKETS[0].model_copy(update={"status": "Done"})])
    assert a.version() == b.version()
    assert a.search("import vcard contacts", 1)[0].key == "APP-3"
    assert a.get("APP-1") is not None and a.get("APP-1").status == "Done"  # type: ignore[union-attr]
    fresh = make(cat)  # rows in catalogue order: only ties (score 0 here) may come out swapped
    assert sorted(fresh.search("vcard", 5), key=lambda m: m.key) == sorted(
        a.search("vcard", 5), key=lambda m: m.key
    )
    assert fresh.search("vcard", 1) == a.search("vcard", 1)
    assert fresh.version() == a.version()


def test_searches_ask_the_database_at_most_every_refresh_interval(cat: CountingStore) -> None:
    now = [0.0]
    reader = make(cat, refresh_every=5.0, clock=lambda: now[0])
    writer = make(cat)
    writer.upsert(TICKETS)
    assert len(reader.search("export csv", 4)) == 4  # the first use loads
    writer.upsert([NEW])
    cat.reads.clear()
    assert "APP-5" not in {m.key for m in reader.search("one-time code by SMS", 5)}
    assert cat.reads == []  # within the interval: no query
    now[0] = 5.0
    assert reader.search("one-time code by SMS", 1)[0].key == "APP-5"
    assert len(cat.reads) == 1
    assert reader.count() == 5  # count, upsert and labelled always catch up


def test_a_failed_catalogue_write_leaves_nothing_half_done(cat: CountingStore) -> None:
    emb = HashEmbedder()
    ix = make(cat, emb)
    ix.upsert(TICKETS)
    cat.fail_puts = 1
    with pytest.raises(ConnectionError):
        ix.upsert([NEW])
    assert ix.count() == 4 and make(cat).count() == 4
    texts = emb.texts
    assert ix.upsert([NEW]) == 1
    assert emb.texts == texts  # the vectors stored before the failure are reused
    assert ix.search("one-time code by SMS", 1)[0].key == "APP-5"


def test_deletes_reach_other_instances_as_tombstones(cat: CountingStore) -> None:
    a = make(cat)
    a.upsert(TICKETS)
    b = make(cat)
    assert b.count() == 4
    a.upsert([NEW])
    a.delete(["APP-5", "APP-2", "NOPE-1"])
    for ix in (a, b, make(cat)):
        assert ix.count() == 3
        keys = {m.key for m in ix.search("dark theme dashboard one-time code", 10)}
        assert keys == {"APP-1", "APP-3", "APP-4"}
        assert ix.search("admin page search slow", 1)[0].key == "APP-4"
    a.upsert([NEW])  # re-adding a deleted key
    assert b.count() == 4 and b.get("APP-5") == NEW


def test_readiness_warms_up_in_the_background_and_needs_the_database(cat: CountingStore) -> None:
    make(cat).upsert(TICKETS)
    ix = make(cat)
    assert ix.ready() is False  # never waits: starts loading instead
    assert ix._warming is not None
    ix._warming.join(timeout=30)
    assert ix.ready() is True
    cat.down = True
    assert ix.ready() is False
    cat.down = False
    cold = make(cat)
    cold.warm_up(background=False)
    assert cold.ready() is True and cold.count() == 4


def test_searches_answer_from_the_cache_while_the_database_is_away(cat: CountingStore) -> None:
    cold = make(cat)
    warm = make(cat)
    warm.upsert(TICKETS)
    cat.down = True
    assert warm.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"
    with pytest.raises(ConnectionError):
        cold.search("anything")  # never loaded: nothing to answer from
    cat.down = False
    assert cold.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"


def test_sql_catalogue_serves_new_handles_and_reembeds_nothing(store_url: str) -> None:
    first, second = SqlStore(store_url), SqlStore(store_url)
    try:
        writer = make(first)
        writer.upsert(TICKETS)
        writer.delete(["APP-4"])
        emb = HashEmbedder()
        reader = make(second, emb)
        assert reader.count() == 3 and emb.texts == 0
        assert reader.search("Safari crashes when I open the login page", 1)[0].key == "APP-1"
        writer.upsert([NEW])
        assert reader.search("one-time code by SMS", 1)[0].key == "APP-5"
        assert reader.version() == writer.version()
        labelled = dict(reader.labelled())
        np.testing.assert_allclose(
            labelled[TICKETS[0]][: emb.dim], HashEmbedder().embed([TICKETS[0].text()])[0], atol=1e-6
        )
    finally:
        first.close()
        second.close()


def test_dense_term_columns_score_like_postings() -> None:
    texts = [
        f"common word {i} shared {'rare' if i % 7 == 0 else ''} pear{i % 3}" for i in range(60)
    ]
    sparse, dense = InvertedIndex(), InvertedIndex()
    dense.dense_min_df, dense.dense_min_share = 1, 0.0
    for inv in (sparse, dense):
        inv.append(texts)
    for query in ("common rare pear1", "shared word 14", "nothing"):
        for exclude in (None, 14):
            s, si = sparse.scores(query, exclude=exclude)
            d, di = dense.scores(query, exclude=exclude)
            assert si == pytest.approx(di)
            np.testing.assert_allclose(s, d, rtol=1e-5, atol=1e-7)
    assert len(dense._dense) > 0 and len(sparse._dense) == 0


def test_few_new_documents_are_scored_without_rebuilding_bm25() -> None:
    docs = [f"ticket about export number {i} csv report" for i in range(400)]
    lex = InvertedIndex()
    lex.append(docs)
    lex.scores("export")  # compiles
    compiled = lex._indptr
    lex.append(["dark mode toggle for the dashboard"])
    lex.replace(3, "keyboard shortcuts on the board")
    scores, _ = lex.scores("dark mode dashboard")
    assert lex._indptr is compiled  # no rebuild for two changed rows
    assert int(np.argmax(scores)) == 400 and scores[400] > 0.5
    replaced, _ = lex.scores("keyboard shortcuts")
    assert int(np.argmax(replaced)) == 3
    assert lex.scores("export number 3")[0][3] < lex.scores("export number 3")[0][4]
    # the same ranking a full rebuild gives
    fresh = InvertedIndex()
    fresh.append([*docs[:3], "keyboard shortcuts on the board", *docs[4:]])
    fresh.append(["dark mode toggle for the dashboard"])
    assert int(np.argmax(fresh.scores("dark mode dashboard")[0])) == 400
    # many changes trigger a rebuild
    lex.append([f"new {i}" for i in range(300)])
    lex.scores("new")
    assert lex._indptr is not compiled and not lex._pending


def test_model_mismatch_raises_or_reembeds_once(cat: CountingStore) -> None:
    make(cat).upsert(TICKETS)
    with pytest.raises(IndexModelMismatch):
        make(cat, HashEmbedder(model_id="other-model"), on_mismatch="raise").count()
    other = HashEmbedder(dim=64, model_id="other-model")
    ix = make(cat, other)
    assert ix.count() == 4
    assert other.texts == 8  # re-embedded from the stored tickets, and stored
    assert ix.labelled()[0][1].shape == (128,)
    second = HashEmbedder(dim=64, model_id="other-model")
    assert make(cat, second).count() == 4
    assert second.texts == 0  # the next replica of the new model finds the vectors stored


def test_fused_ranking_puts_the_paraphrased_duplicate_first(cat: CountingStore) -> None:
    ix = make(cat)
    ix.upsert(TICKETS)
    matches = ix.search("Safari crashes when I open the login page", 4)
    assert matches[0].key == "APP-1"
    assert matches[0].url == "https://jira.example/browse/APP-1"
    assert matches[0].type == "Bug"
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    sig = matches[0].signals or {}
    assert set(sig) >= {"body", "title", "head_title", "head_body", "lexical", "lexical_abs"}
    assert sig["lexical"] == pytest.approx(1.0)
    assert matches[0].score > matches[1].score


def test_search_many_matches_single_searches_in_one_embedding_call(cat: CountingStore) -> None:
    emb = HashEmbedder()
    ix = make(cat, emb)
    ix.upsert(TICKETS)
    queries = ["csv export of reports", "night theme", "admin search is slow\nit takes ages"]
    singles = [ix.search(q, 3) for q in queries]
    calls = emb.calls
    assert ix.search_many(queries, 3) == singles
    assert emb.calls == calls + 1
    assert ix.search_many([], 3) == []


def test_empty_index_and_top_k(cat: CountingStore) -> None:
    ix = make(cat)
    assert ix.search("anything") == []
    assert ix.count() == 0
    ix.upsert(TICKETS)
    assert len(ix.search("page", 2)) == 2
    assert len(ix.search("page", 50)) == 4


def test_labelled_returns_typed_tickets_with_body_and_title_vectors(cat: CountingStore) -> None:
    emb = HashEmbedder()
    ix = make(cat, emb)
    ix.upsert(TICKETS)
    labelled = ix.labelled()
    assert [t.key for t, _ in labelled] == ["APP-1", "APP-2", "APP-4"]
    ticket, vec = labelled[0]
    d = emb.dim
    assert vec.shape == (2 * d,)
    np.testing.assert_allclose(vec[:d], HashEmbedder().embed([ticket.text()])[0], atol=1e-6)
    np.testing.assert_allclose(vec[d:], HashEmbedder().embed([ticket.title])[0], atol=1e-6)


def test_concurrent_upserts_and_searches(cat: CountingStore) -> None:
    ix = make(cat)
    errors: list[BaseException] = []

    def writer(start: int) -> None:
        try:
            for i in range(start, start + 20):
                ix.upsert([Ticket(key=f"T-{i}", title=f"ticket number {i}", description="x y")])
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(30):
                for m in ix.search("ticket number", 5):
                    assert m.key.startswith("T-")
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s,)) for s in (0, 100)]
    threads += [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert ix.count() == 40
    assert make(cat).count() == 40


def test_bm25_scores_only_matching_rows_and_leave_one_out() -> None:
    inv = InvertedIndex()
    inv.append(["red apples and green pears", "green tea", "blue sky"])
    scores, ideal = inv.scores("green apples")
    assert ideal > 0
    assert scores[0] > scores[1] > 0 and scores[2] == 0
    inv.replace(1, "black coffee")
    inv.keep([1, 0])
    scores, _ = inv.scores("green apples")
    assert scores[0] == 0 and scores[1] > 0
    loo, _ = inv.scores("red apples", exclude=1)
    assert loo[1] == 0.0


def test_tokenize_and_headline() -> None:
    assert tokenize("The queries, in Safari's tabs!") == ["query", "safari", "tab"]
    assert headline("\n  Export is broken  \nmore text") == "Export is broken"
    long = "When I export a report. " + "word " * 60
    assert headline(long) == "When I export a report."


def test_likely_duplicate_rule() -> None:
    strong = {"body": 0.85, "title": 0.5, "head_title": 0.9, "lexical": 1.0}
    assert is_likely_duplicate(Match(key="A", score=0.8, signals=strong))
    assert not is_likely_duplicate(Match(key="A", score=0.6, signals=strong))
    weak_title = {**strong, "head_title": 0.5}
    assert not is_likely_duplicate(Match(key="A", score=0.8, signals=weak_title))
    assert not is_likely_duplicate(Match(key="A", score=0.8, signals={**strong, "body": 0.6}))
    assert is_likely_duplicate(Match(key="A", score=0.76))
    assert not is_likely_duplicate(Match(key="A", score=0.74))


def test_match_json_omits_absent_signals() -> None:
    assert "signals" not in Match(key="A", score=0.5).model_dump()
    assert Match(key="A", score=0.5, signals={"body": 0.5}).model_dump()["signals"] == {"body": 0.5}


def test_bm25_takes_the_query_terms_once_for_both_fields_and_ignores_deleted_terms() -> None:
    inv = InvertedIndex()
    inv.append(["alpha beta", "gamma delta", "gamma beta"])
    text = "Alpha gammas"
    scores, ideal = inv.scores(text)
    given, given_ideal = inv.scores(text, terms=tokenize(text))
    assert np.array_equal(scores, given) and ideal == given_ideal
    inv.keep([1, 2])  # "alpha" is left in no document: it no longer counts
    after, after_ideal = inv.scores("alpha gamma")
    only, only_ideal = inv.scores("gamma")
    assert np.array_equal(after, only) and after_ideal == only_ideal > 0
    assert inv.scores("alpha")[1] == 0.0


def test_title_vectors_are_read_for_the_best_k_only_when_the_fusion_does_not_rank_by_them() -> None:
    from bot.adapters.fusion import DEFAULT_FUSION, Fusion
    from bot.adapters.index_local import rank_candidates
    from bot.adapters.lexical import DEFAULT_WEIGHTS

    rng = np.random.default_rng(5)
    m, d = 60, 16
    body, title = rng.standard_normal((2, m, d)).astype(np.float32)
    q, h = rng.standard_normal((2, d)).astype(np.float32)
    lex = rng.random(m).astype(np.float32)
    tickets = [Ticket(key=f"T-{i}", title=f"t{i}") for i in range(m)]
    for fusion in (DEFAULT_FUSION, Fusion(title=1.0), None):
        asked: list[list[int]] = []

        def title_of(at: np.ndarray, asked: list[list[int]] = asked) -> np.ndarray:
            asked.append(at.tolist())
            return title[at]

        args = (q, h, lex, lex, DEFAULT_WEIGHTS, 5, lex, fusion)
        lazy = rank_candidates(tickets, body, title_of, *args)
        eager = rank_candidates(tickets, body, title, *args)
        assert [x.key for x in lazy] == [x.key for x in eager]
        for a, b in zip(lazy, eager, strict=True):
            assert a.score == pytest.approx(b.score, abs=1e-6)
            assert a.signals.keys() == b.signals.keys()
            assert a.signals["title"] == pytest.approx(b.signals["title"], abs=2e-6)
        if fusion is DEFAULT_FUSION:  # body, headline and BM25 rank: 5 title rows read
            assert asked == [[int(x.key[2:]) for x in lazy]]
        else:  # the fusion (or the weighted mean) reads every candidate's title
            assert asked == [list(range(m))]
