from __future__ import annotations

import numpy as np

from bot.adapters.embedder_cache import CachedEmbedder
from tests.fakes.embedder import HashEmbedder


def test_repeated_texts_are_embedded_once_and_vectors_are_unchanged() -> None:
    inner = HashEmbedder()
    cached = CachedEmbedder(inner, size=3)
    first = cached.embed(["a b", "c d", "a b"])
    assert (inner.calls, inner.texts) == (1, 2)
    np.testing.assert_allclose(first, inner.embed(["a b", "c d", "a b"]))
    calls = inner.calls
    again = cached.embed(["c d", "a b"])
    assert inner.calls == calls
    np.testing.assert_allclose(again, first[[1, 0]])


def test_least_recently_used_texts_are_forgotten() -> None:
    inner = HashEmbedder()
    cached = CachedEmbedder(inner, size=2)
    cached.embed(["x"])
    cached.embed(["y"])
    cached.embed(["z"])
    calls = inner.calls
    cached.embed(["y", "z"])
    assert inner.calls == calls
    cached.embed(["x"])
    assert inner.calls == calls + 1
