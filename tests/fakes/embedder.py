"""A deterministic, dependency-free stand-in for the ONNX embedder.

Each word (lower-cased, alphanumeric) and each pair of neighbouring words is hashed into one of
*dim* buckets with a sign; the sum is L2-normalised. Texts that share words therefore have a
positive cosine, texts that share none are close to orthogonal. Stable across processes (CRC32,
not Python's salted ``hash``).
"""

from __future__ import annotations

import itertools
import re
import zlib
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"[a-z0-9]+")


class HashEmbedder:
    """Implements the ``Embedder`` port; counts its ``calls`` and the ``texts`` it embedded."""

    def __init__(self, dim: int = 384, model_id: str = "hash-embedder-v1") -> None:
        self.dim = dim
        self.model_id = model_id
        self.calls = 0
        self.texts = 0

    def _bucket(self, token: str) -> tuple[int, float]:
        h = zlib.crc32(token.encode("utf-8"))
        return h % self.dim, (1.0 if (h >> 31) & 1 else -1.0)

    def embed(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """(len(texts), dim) float32 rows of unit length; a text without words maps to e_0."""
        self.calls += 1
        self.texts += len(texts)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            tokens = words + [f"{a}_{b}" for a, b in itertools.pairwise(words)]
            for tok in tokens:
                col, sign = self._bucket(tok)
                out[row, col] += sign
            norm = float(np.linalg.norm(out[row]))
            if norm == 0.0:
                out[row, 0] = 1.0
            else:
                out[row] /= norm
        return out
