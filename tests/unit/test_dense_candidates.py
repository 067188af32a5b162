"""The projected candidate pass: PCA rows that keep the order of inner products."""

from __future__ import annotations

import numpy as np

from bot.adapters.dense_candidates import ProjectedRows
from bot.adapters.index_local import LocalIndex
from bot.domain.models import Ticket
from tests.fakes.embedder import HashEmbedder
from tests.fakes.memory_store import MemoryStore


def low_rank(n: int, width: int, rank: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    m = rng.standard_normal((n, rank)) @ rng.standard_normal((rank, width))
    m += 0.01 * rng.standard_normal((n, width))
    return (m / np.linalg.norm(m, axis=1, keepdims=True)).astype(np.float32)


def test_projection_keeps_the_best_rows_of_low_rank_data() -> None:
    rows = low_rank(500, 64, 8, seed=1)
    proj = ProjectedRows(64, dims=16, min_rows=100)
    assert not proj.active and proj.needs_refit(500)
    proj.refit(rows)
    assert proj.active and not proj.needs_refit(900) and proj.needs_refit(1000)
    for q in rows[:20]:
        exact = np.argsort(-(rows @ q))[:5]
        approx = np.argsort(-proj.scores(q, len(rows)))[:5]
        assert set(exact.tolist()) == set(approx.tolist())


def test_set_resize_and_keep_follow_the_rows() -> None:
    rows = low_rank(200, 32, 4, seed=2)
    proj = ProjectedRows(32, dims=8, min_rows=0)
    proj.refit(rows)
    proj.resize(300)
    extra = low_rank(1, 32, 4, seed=3)
    proj.set([200], extra)
    assert np.allclose(proj.rows[200], proj.project(extra)[0], atol=1e-6)
    proj.keep([200, 0])
    assert np.allclose(proj.rows[0], proj.project(extra)[0], atol=1e-6)
    assert np.allclose(proj.rows[1], proj.project(rows[:1])[0], atol=1e-6)


def test_index_answers_the_same_with_and_without_the_projection() -> None:
    words = "export csv dashboard login sso mobile crash dark theme slack alert billing".split()
    rng = np.random.default_rng(4)
    tickets = [
        Ticket(
            key=f"T-{i}",
            title=" ".join(rng.choice(words, 3)),
            description=" ".join(rng.choice(words, 12)),
        )
        for i in range(700)
    ]
    plain = LocalIndex(HashEmbedder(), MemoryStore(), "P")
    projected = LocalIndex(HashEmbedder(), MemoryStore(), "P", project_from=100)
    plain.upsert(tickets)
    projected.upsert(tickets)
    assert projected._proj.active and not plain._proj.active
    projected.delete(["T-3"])
    plain.delete(["T-3"])
    for text in ("csv export crashes", "dark theme on mobile", "slack alert for billing"):
        assert [m.key for m in projected.search(text, 5)] == [m.key for m in plain.search(text, 5)]
