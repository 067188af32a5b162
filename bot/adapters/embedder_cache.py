"""A small LRU cache in front of an embedder.

Triage embeds a post twice: once in the analyzer and once in the index search. Both ask for the
same text within milliseconds, so a short cache halves the dominant cost of triage.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from bot.domain.ports import Embedder


class CachedEmbedder:
    """Wraps *inner*; remembers the vectors of the last *size* distinct texts."""

    def __init__(self, inner: Embedder, size: int = 4096) -> None:
        self.inner = inner
        self.model_id = inner.model_id
        self.dim = inner.dim
        self.size = size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Like the inner embedder's ``embed``; only texts not seen recently are computed."""
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        missing: dict[str, list[int]] = {}
        with self._lock:
            for i, t in enumerate(texts):
                v = self._cache.get(t)
                if v is None:
                    missing.setdefault(t, []).append(i)
                else:
                    self._cache.move_to_end(t)
                    out[i] = v
        if missing:
            todo = list(missing)
            vecs = self.inner.embed(todo)
            with self._lock:
                for t, v in zip(todo, vecs, strict=True):
                    for i in missing[t]:
                        out[i] = v
                    self._cache[t] = v
                while len(self._cache) > self.size:
                    self._cache.popitem(last=False)
        return out
