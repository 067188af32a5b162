"""Selecting the best rows of a score array: exact ties, and the sampled bound the index uses."""

from __future__ import annotations

import numpy as np

from bot.adapters.fusion import count_above
from bot.adapters.lexical import top_k


def test_ties_at_the_kth_place_go_to_the_lower_index() -> None:
    scores = np.array([1.0, 3.0, 2.0, 2.0, 2.0, 0.0], dtype=np.float32)
    assert top_k(scores, 3).tolist() == [1, 2, 3]
    assert top_k(scores, 4).tolist() == [1, 2, 3, 4]
    assert top_k(scores, 10).tolist() == [1, 2, 3, 4, 0, 5]
    # many rows tied with the k-th: the lowest-numbered ones, whatever the partition kept
    flat = np.zeros(5000, dtype=np.float32)
    flat[4000] = 1.0
    assert top_k(flat, 4).tolist() == [4000, 0, 1, 2]


def test_a_sample_bound_changes_nothing_but_the_work() -> None:
    rng = np.random.default_rng(3)
    for values in (
        rng.standard_normal(30_000).astype(np.float32),
        np.round(rng.random(30_000), 2).astype(np.float32),  # many ties
        np.sort(rng.random(30_000)).astype(np.float32),  # rows in score order
    ):
        stride = 7
        sample = np.sort(values[::stride])
        for k in (1, 10, 256, 2000):
            assert top_k(values, k, sample, stride).tolist() == top_k(values, k).tolist()


def test_a_misleading_sample_falls_back_to_every_row() -> None:
    values = np.random.default_rng(4).random(10_000).astype(np.float32)
    too_high = np.sort(values[::10]) + 0.5  # its bound keeps fewer than k rows
    assert top_k(values, 50, too_high, 10).tolist() == top_k(values, 50).tolist()


def test_above_keeps_only_greater_scores() -> None:
    values = np.zeros(20_000, dtype=np.float32)
    values[[5, 17, 9000]] = [0.2, 0.9, 0.2]
    sample = np.sort(values[::4])  # all zeros: the bound says nothing
    assert top_k(values, 128, sample, 4, above=0.0).tolist() == [17, 5, 9000]
    assert top_k(values, 2, above=0.0).tolist() == [17, 5]
    assert top_k(np.zeros(10, dtype=np.float32), 3, above=0.0).tolist() == []


def test_count_above_on_a_presorted_sample() -> None:
    sample = np.array([0.9, 0.1, 0.5, 0.5, 0.7])
    values = np.array([0.5, 1.0, 0.0, 0.7])
    expected = [2, 0, 5, 1]
    assert count_above(sample, values).tolist() == expected
    assert count_above(np.sort(sample), values, presorted=True).tolist() == expected
