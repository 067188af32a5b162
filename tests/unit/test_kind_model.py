"""The kind model's calibrated probabilities and its nearest-neighbour evidence."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import numpy.typing as npt

from bot.adapters.extract import hashed_counts
from bot.adapters.kind_model import Hyper, KindModel, Neighbours, train
from bot.domain.models import Kind

DIM = 8
HYPER = Hyper(hash_dim=1 << 12, iters=200)


def _unit(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float32]:
    out = np.asarray(rows, dtype=np.float32)
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def _query(seed: int, rows: int = 1) -> npt.NDArray[np.float32]:
    """[text | headline] vectors, each half unit length as the embedder gives them."""
    rng = np.random.default_rng(seed)
    return np.concatenate(
        [_unit(rng.normal(size=(rows, DIM))), _unit(rng.normal(size=(rows, DIM)))], axis=1
    )


def _model(temperature: float = 1.0) -> tuple[KindModel, list[str]]:
    """A model that learnt: 'crash' texts are bugs, 'please add' ideas, 'how do' questions."""
    rng = np.random.default_rng(3)
    texts: list[str] = []
    labels: list[Kind] = []
    for i in range(12):
        texts += [f"crash error stack {i}", f"please add option {i}", f"how do i use {i}"]
        labels += ["bug", "idea", "question"]
    dense = _query(int(rng.integers(1000)), len(texts))
    counts = hashed_counts(texts, HYPER.hash_dim)
    model = train(dense, counts, labels, [1.0] * len(texts), HYPER, "backlog", DIM, temperature)
    return model, texts


def _proba(model: KindModel, texts: list[str], dense: npt.NDArray[np.float32]) -> np.ndarray:
    return model.proba(dense, hashed_counts(texts, HYPER.hash_dim))


def test_probabilities_sum_to_one_and_temperature_keeps_the_order_of_confidence() -> None:
    sharp, _ = _model(temperature=0.5)
    plain, _ = _model(temperature=1.0)
    texts = ["crash error", "please add", "how do i", "crash please", "how add", "weather today"]
    dense = _query(4, len(texts))
    p_sharp, p_plain = _proba(sharp, texts, dense), _proba(plain, texts, dense)
    np.testing.assert_allclose(p_sharp.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(p_plain.sum(axis=1), 1.0, atol=1e-5)
    # Same decisions; a post the model is surer of stays surer; T < 1 only sharpens.
    assert list(p_sharp.argmax(axis=1)) == list(p_plain.argmax(axis=1))
    assert list(np.argsort(p_sharp.max(axis=1))) == list(np.argsort(p_plain.max(axis=1)))
    assert (p_sharp.max(axis=1) >= p_plain.max(axis=1) - 1e-6).all()
    assert p_sharp.max() > p_plain.max()


def test_close_backlog_neighbours_of_another_kind_change_the_prediction() -> None:
    model, _ = _model()
    kinds = model.kinds
    post = ["crash error stack"]  # the linear model says bug
    q = _query(5)
    assert kinds[int(_proba(model, post, q).argmax())] == "bug"

    # Three tickets that nearly repeat the post, filed as questions, and a far bug ticket.
    near = _unit(q[:, :DIM] + 0.01)
    far = _unit(-q[:, :DIM])
    body = np.concatenate([near, near, near, far])
    title = _unit(np.concatenate([q[:, DIM:]] * 3 + [-q[:, DIM:]]))
    labels = np.asarray([kinds.index("question")] * 3 + [kinds.index("bug")])
    model.neighbours = Neighbours.of(body, title, labels, len(kinds))
    p = _proba(model, post, q)
    assert kinds[int(p.argmax())] == "question"
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-5)

    # A post with no ticket that close keeps the linear model's probabilities exactly.
    other = _query(6)
    model.neighbours = None
    alone = _proba(model, post, other)
    model.neighbours = Neighbours.of(body, title, labels, len(kinds))
    np.testing.assert_array_equal(_proba(model, post, other), alone)


def test_neighbour_votes_leave_a_kind_the_backlog_lacks_untouched() -> None:
    kinds = ("idea", "bug", "question", "other")
    probs = np.asarray([[0.1, 0.2, 0.1, 0.6]], dtype=np.float32)
    q = _query(7)
    # Two ideas that repeat the post and a far bug; no question and no "other" in the backlog.
    body = np.concatenate([q[:, :DIM], q[:, :DIM], -q[:, :DIM]])
    title = np.concatenate([q[:, DIM:], q[:, DIM:], -q[:, DIM:]])
    labels = np.asarray([kinds.index("idea")] * 2 + [kinds.index("bug")])
    nb = Neighbours.of(body, title, labels, len(kinds))
    out = nb.blend(probs, q, replace(HYPER, knn_weight=0.5))
    assert out[0, 3] == probs[0, 3] and out[0, 2] == probs[0, 2]  # the model's alone
    assert out[0, 0] > probs[0, 0] and out[0, 1] < probs[0, 1]
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-6)
    assert (nb.blend(probs, q, replace(HYPER, knn_weight=0.0)) == probs).all()
