"""The local ticket index: persistence, idempotence, fused ranking, and the duplicate rule."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from bot.adapters.index_local import IndexModelMismatch, LocalIndex
from bot.adapters.lexical import InvertedIndex, headline, tokenize
from bot.domain.duplicates import is_likely_duplicate
from bot.domain.models import Match, Ticket
from bot.domain.ports import TicketIndex
from tests.fakes.embedder import HashEmbedder
from tests.fakes.tickets import TICKETS


def make(tmp_path: Path, emb: HashEmbedder | None = None, **kw: object) -> LocalIndex:
    return LocalIndex(tmp_path / "index" / "APP", emb or HashEmbedder(), **kw)  # type: ignore[arg-type]


def test_implements_the_port(tmp_path: Path) -> None:
    assert isinstance(make(tmp_path), TicketIndex)


def test_upsert_is_idempotent_and_skips_unchanged_text(tmp_path: Path) -> None:
    emb = HashEmbedder()
    ix = make(tmp_path, emb)
    assert ix.upsert(TICKETS) == 4
    texts, version = emb.texts, ix.version()
    assert texts == 8  # a body and a title vector per ticket
    assert ix.upsert(TICKETS) == 0
    assert ix.upsert(list(reversed(TICKETS))) == 0
    assert emb.texts == texts
    assert ix.version() == version
    assert ix.count() == 4


def test_changed_ticket_replaces_the_old_one(tmp_path: Path) -> None:
    emb = HashEmbedder()
    ix = make(tmp_path, emb)
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


def test_metadata_only_change_is_stored_without_embedding(tmp_path: Path) -> None:
    emb = HashEmbedder()
    ix = make(tmp_path, emb)
    ix.upsert(TICKETS)
    v1, before = ix.version(), emb.texts
    assert ix.upsert([TICKETS[0].model_copy(update={"status": "Done"})]) == 1
    assert emb.texts == before
    assert ix.version() != v1
    top = ix.search("Safari login crash", 1)[0]
    assert (top.key, top.status) == ("APP-1", "Done")


def test_delete(tmp_path: Path) -> None:
    ix = make(tmp_path)
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


def test_persists_across_reopen_without_re_embedding(tmp_path: Path) -> None:
    ix = make(tmp_path)
    ix.upsert(TICKETS)
    expected = ix.search("dark theme dashboard", 4)
    emb = HashEmbedder()
    again = make(tmp_path, emb)
    assert emb.texts == 0
    assert again.count() == 4
    assert again.version() == ix.version()
    assert again.search("dark theme dashboard", 4) == expected
    assert again.upsert(TICKETS) == 0
    files = sorted(p.name for p in (tmp_path / "index" / "APP").iterdir())
    assert files[0] == "CURRENT" and len(files) == 2  # one live generation, no temp leftovers


def test_reader_sees_writes_of_another_instance(tmp_path: Path) -> None:
    reader = make(tmp_path)
    reader.upsert(TICKETS[:2])
    writer = make(tmp_path)
    writer.upsert(TICKETS[2:])
    assert reader.count() == 4
    assert reader.search("export csv", 1)[0].key == "APP-3"


def _state(tmp_path: Path) -> tuple[str, list[str]]:
    """CURRENT's text and the live generation's files."""
    root = tmp_path / "index" / "APP"
    current = (root / "CURRENT").read_text()
    return current, sorted(p.name for p in (root / current.split()[0]).iterdir())


NEW = Ticket(key="APP-5", title="Two-factor login by SMS", description="Send a one-time code.")


def test_small_upsert_writes_a_delta_segment_seen_by_another_instance(tmp_path: Path) -> None:
    a = make(tmp_path)
    a.upsert(TICKETS)
    base, _ = _state(tmp_path)
    b = make(tmp_path)
    assert a.upsert([NEW]) == 1
    current, files = _state(tmp_path)
    assert current == f"{base} 1" and "d000001.npz" in files  # the base files were not rewritten
    assert b.count() == 5 and b.version() == a.version()
    assert b.search("one-time code by SMS", 1)[0].key == "APP-5"
    # The other direction, replayed incrementally: a changed text and a metadata-only change.
    b.upsert([TICKETS[2].model_copy(update={"title": "Import vCard contacts", "description": "."})])
    b.upsert([TICKETS[0].model_copy(update={"status": "Done"})])
    assert _state(tmp_path)[0] == f"{base} 3"
    assert a.version() == b.version()
    assert a.search("import vcard contacts", 1)[0].key == "APP-3"
    assert a.get("APP-1") is not None and a.get("APP-1").status == "Done"  # type: ignore[union-attr]
    fresh = make(tmp_path)
    assert fresh.search("vcard", 5) == a.search("vcard", 5)
    assert fresh.version() == a.version()


def test_half_written_delta_is_ignored(tmp_path: Path) -> None:
    ix = make(tmp_path)
    ix.upsert(TICKETS)
    ix.upsert([NEW])
    root = tmp_path / "index" / "APP"
    current, _ = _state(tmp_path)
    gen = current.split()[0]
    # A crash after writing the next segment (or part of it) but before switching CURRENT.
    (root / gen / "d000002.npz").write_bytes(b"PK\x03\x04 truncated")
    (root / ".tmp-d-crashed.npz").write_bytes(b"half")
    again = make(tmp_path)
    assert again.count() == 5
    assert again.version() == ix.version()
    assert ix.count() == 5
    # The next write takes the unnamed segment's place.
    again.upsert([NEW.model_copy(update={"key": "APP-6"})])
    assert _state(tmp_path)[0] == f"{gen} 2"
    assert make(tmp_path).count() == 6 and ix.count() == 6


def test_deletes_in_delta_segments(tmp_path: Path) -> None:
    a = make(tmp_path)
    a.upsert(TICKETS)
    b = make(tmp_path)
    a.upsert([NEW])
    a.delete(["APP-5", "APP-2", "NOPE-1"])
    assert _state(tmp_path)[0].endswith(" 2")
    for ix in (a, b, make(tmp_path)):
        assert ix.count() == 3
        keys = {m.key for m in ix.search("dark theme dashboard one-time code", 10)}
        assert keys == {"APP-1", "APP-3", "APP-4"}
        assert ix.search("admin page search slow", 1)[0].key == "APP-4"
    a.upsert([NEW])  # re-adding a deleted key
    assert b.count() == 4 and b.get("APP-5") == NEW


def test_deltas_merge_into_a_new_generation(tmp_path: Path) -> None:
    a = make(tmp_path)
    a.upsert(TICKETS)
    a.delta_min_rows = 2
    a.delta_share = 0.0
    b = make(tmp_path)
    base, _ = _state(tmp_path)
    extra = [NEW.model_copy(update={"key": f"APP-{i}", "title": f"ticket {i}"}) for i in (5, 6, 7)]
    a.upsert(extra[:1])
    a.upsert(extra[1:2])
    assert _state(tmp_path)[0] == f"{base} 2"
    a.upsert(extra[2:])  # a third row exceeds the limit: merged
    current, files = _state(tmp_path)
    assert " " not in current and current != base
    assert not any(f.startswith("d") for f in files)
    root = tmp_path / "index" / "APP"
    assert sorted(p.name for p in root.iterdir()) == ["CURRENT", current]
    for ix in (b, make(tmp_path)):
        assert ix.count() == 7 and ix.version() == a.version()
        assert ix.search("ticket 6", 1)[0].key == "APP-6"
    a.delta_max_files = 0  # every write merges
    a.delete(["APP-6"])
    assert " " not in _state(tmp_path)[0] and b.count() == 6


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


def test_model_mismatch_raises_or_reembeds(tmp_path: Path) -> None:
    make(tmp_path).upsert(TICKETS)
    with pytest.raises(IndexModelMismatch):
        make(tmp_path, HashEmbedder(model_id="other-model"), on_mismatch="raise")
    other = HashEmbedder(dim=64, model_id="other-model")
    ix = make(tmp_path, other)
    assert other.texts == 8  # re-embedded from the stored tickets
    assert ix.count() == 4
    assert ix.labelled()[0][1].shape == (128,)
    reopened_emb = HashEmbedder(dim=64, model_id="other-model")
    make(tmp_path, reopened_emb)
    assert reopened_emb.texts == 0


def test_fused_ranking_puts_the_paraphrased_duplicate_first(tmp_path: Path) -> None:
    ix = make(tmp_path)
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


def test_search_many_matches_single_searches_in_one_embedding_call(tmp_path: Path) -> None:
    emb = HashEmbedder()
    ix = make(tmp_path, emb)
    ix.upsert(TICKETS)
    queries = ["csv export of reports", "night theme", "admin search is slow\nit takes ages"]
    singles = [ix.search(q, 3) for q in queries]
    calls = emb.calls
    assert ix.search_many(queries, 3) == singles
    assert emb.calls == calls + 1
    assert ix.search_many([], 3) == []


def test_empty_index_and_top_k(tmp_path: Path) -> None:
    ix = make(tmp_path)
    assert ix.search("anything") == []
    assert ix.count() == 0
    ix.upsert(TICKETS)
    assert len(ix.search("page", 2)) == 2
    assert len(ix.search("page", 50)) == 4


def test_labelled_returns_typed_tickets_with_body_and_title_vectors(tmp_path: Path) -> None:
    emb = HashEmbedder()
    ix = make(tmp_path, emb)
    ix.upsert(TICKETS)
    labelled = ix.labelled()
    assert [t.key for t, _ in labelled] == ["APP-1", "APP-2", "APP-4"]
    ticket, vec = labelled[0]
    d = emb.dim
    assert vec.shape == (2 * d,)
    np.testing.assert_allclose(vec[:d], HashEmbedder().embed([ticket.text()])[0], atol=1e-6)
    np.testing.assert_allclose(vec[d:], HashEmbedder().embed([ticket.title])[0], atol=1e-6)


def test_concurrent_upserts_and_searches(tmp_path: Path) -> None:
    ix = make(tmp_path)
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
    assert make(tmp_path).count() == 40


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
