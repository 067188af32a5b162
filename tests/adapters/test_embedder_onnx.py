"""The real ONNX embedder: batches run side by side give the vectors one at a time gives."""

from __future__ import annotations

import numpy as np

from bot.adapters.embedder_onnx import OnnxEmbedder

TEXTS = [
    "The app crashes when I upload a PNG",
    "dark mode",
    "",
    "Export to CSV drops the last row of the report when the filter is on "
    "and the table has more than a thousand rows, on every browser we tried",
    "How do I reset my password?",
    "Login times out",
    "Search ignores accents: café finds nothing",
]


def test_parallel_batches_give_the_sequential_vectors_in_order() -> None:
    one = OnnxEmbedder(batch_size=2, workers=1)
    two = OnnxEmbedder(batch_size=2, workers=2)
    a, b = one.embed(TEXTS), two.embed(TEXTS)
    assert b.shape == (len(TEXTS), 384)
    assert np.allclose(a, b, atol=1e-5)
    # each row is its own text's vector, whatever batch and worker computed it
    assert np.allclose(two.embed(TEXTS[3:4])[0], b[3], atol=1e-5)
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
