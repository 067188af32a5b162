"""Reciprocal-rank fusion of the index's signals."""

from __future__ import annotations

import numpy as np

from bot.adapters.fusion import Fusion, corpus_ranks, count_above, ranks_of, rrf_fuse


def test_ranks_are_one_based_descending_with_ties_by_position() -> None:
    r = ranks_of({"a": np.array([0.1, 0.9, 0.5, 0.9])})["a"]
    assert r.tolist() == [4, 1, 3, 2]


def test_rrf_prefers_agreement_and_follows_the_weights() -> None:
    signals = {
        "body": np.array([0.9, 0.8, 0.1]),
        "head_body": np.array([0.9, 0.8, 0.1]),
        "lexical": np.array([0.0, 0.2, 1.0]),
        "lexical_title": np.array([0.0, 0.2, 1.0]),
    }
    dense_first = Fusion(body=1, head_body=0.5, lexical=0.5, lexical_title=0.25)
    assert int(np.argmax(dense_first.rank_scores(signals))) == 0
    lexical_first = Fusion(body=0.1, head_body=0.0, lexical=1.0, lexical_title=1.0)
    assert int(np.argmax(lexical_first.rank_scores(signals))) == 2
    # only the ranking counts: rescaling a signal changes nothing
    scaled = {**signals, "lexical": 100 * signals["lexical"]}
    assert np.allclose(dense_first.rank_scores(scaled), dense_first.rank_scores(signals))


def test_rrf_value() -> None:
    got = rrf_fuse({"a": np.array([1, 2]), "b": np.array([2, 1])}, {"a": 1.0, "b": 0.5}, k=10)
    assert np.allclose(got, [1 / 11 + 0.5 / 12, 1 / 12 + 0.5 / 11])


def test_corpus_ranks_give_leaders_their_true_rank_and_the_rest_follow() -> None:
    # candidates are corpus rows 7, 3, 9, 4; the corpus's best rows are 3 then 50 then 7
    ranks = corpus_ranks(np.array([7, 3, 9, 4]), np.array([0.5, 0.9, 0.1, 0.2]), [3, 50, 7])
    assert ranks.tolist() == [3, 1, 5, 4]


def test_count_above_counts_the_greater_sample_values() -> None:
    sample = np.array([0.9, 0.1, 0.5, 0.5, 0.7])
    assert count_above(sample, np.array([0.5, 1.0, 0.0, 0.7])).tolist() == [2, 0, 5, 1]


def test_candidates_beaten_by_many_rows_rank_that_far_down() -> None:
    # rows 9 and 4 are not leaders; 2,000 and 50 corpus rows score above them
    ranks = corpus_ranks(
        np.array([7, 3, 9, 4]), np.array([0.5, 0.9, 0.1, 0.2]), [3, 50, 7], [1, 0, 2000, 50]
    )
    assert ranks.tolist() == [3, 1, 2001, 51]
    # an estimate below the leaders' count never lifts a candidate above them
    low = corpus_ranks(
        np.array([7, 3, 9, 4]), np.array([0.5, 0.9, 0.1, 0.2]), [3, 50, 7], [1, 0, 0, 0]
    )
    assert low.tolist() == [3, 1, 5, 4]


def test_known_ranks_replace_the_candidates_own() -> None:
    f = Fusion(body=1.0, head_body=0.0, lexical=1.0, lexical_title=0.0)
    signals = {"body": np.array([0.5, 0.4]), "lexical": np.array([0.1, 0.2])}
    # among the two, row 1 leads lexically; over the corpus both are far down: body decides
    far = {"lexical": np.array([5000, 4000])}
    assert int(np.argmax(f.rank_scores(signals, far))) == 0


def test_a_cut_headline_costs_no_second_model_pass() -> None:
    from bot.adapters.index_local import embed_queries
    from bot.adapters.lexical import headline, headline_is_cut
    from tests.fakes.embedder import HashEmbedder

    class Counting(HashEmbedder):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[str] = []

        def embed(self, texts):  # type: ignore[no-untyped-def]
            self.seen.extend(texts)
            return super().embed(texts)

    long_line = " ".join(["word"] * 80)
    sentence = "The CSV export is broken every month. " + " ".join(["more"] * 60)
    assert headline_is_cut(long_line, headline(long_line))
    assert not headline_is_cut(sentence, headline(sentence))
    emb = Counting()
    q, h = embed_queries(emb, [long_line, sentence])
    assert emb.seen == [long_line, sentence, "The CSV export is broken every month."]
    assert (h[0] == q[0]).all() and not (h[1] == q[1]).all()
