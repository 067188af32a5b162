"""The dense candidate pass on smaller vectors: PCA-projected rows, re-scored exactly after.

At 100,000 tickets the candidate pass reads a 154 MB float32 matrix per query, which is
memory-bound (~7 ms on an idle 2-core machine, far more when another process uses the memory
bus). numpy has no fast float16 or int8 matrix-vector product (float16 was measured ~20x slower
than float32 here), so the vectors are made smaller instead: the rows, centred, are projected on
their top principal components (``dims`` of them, float32). A query's inner product with a row is
its inner product with the row's projection plus a constant per query, up to the variance the
dropped components carry; the index then re-scores its candidates exactly on the full vectors.
Recall against the exact ranking is measured in bench/eval_projection.py on real embeddings.

Below ``min_rows`` the full pass is cheap (a 10,000-row matrix is 15 MB) and nothing is projected.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

Array = npt.NDArray[np.float32]

MIN_ROWS = 20_000
DIMS = 128
FIT_SAMPLE = 20_000  # rows the principal components are estimated from


class ProjectedRows:
    """A (rows x dims) float32 copy of a (rows x width) matrix in its top principal components.

    Not thread-safe by itself: the owning index serialises calls. ``active`` is False until
    ``refit`` has run on at least *min_rows* rows.
    """

    def __init__(self, width: int, dims: int = DIMS, min_rows: int = MIN_ROWS) -> None:
        self.width = width
        self.dims = min(dims, width)
        self.min_rows = min_rows
        self.basis: Array = np.zeros((width, 0), dtype=np.float32)
        self.mean: Array = np.zeros(width, dtype=np.float32)
        self.rows: Array = np.zeros((0, self.dims), dtype=np.float32)
        self.fitted_at = 0  # rows when last fitted

    @property
    def active(self) -> bool:
        """True when a projection is fitted (queries should use :meth:`scores`)."""
        return self.basis.shape[1] > 0

    def needs_refit(self, n: int) -> bool:
        """True when *n* rows warrant a (re)fit: past *min_rows* and doubled since the last."""
        return n >= self.min_rows and n >= 2 * self.fitted_at

    def refit(self, matrix: Array, seed: int = 0) -> None:
        """Estimates the components from (a sample of) *matrix* and projects every row."""
        n = len(matrix)
        rng = np.random.default_rng(seed)
        sample = matrix if n <= FIT_SAMPLE else matrix[np.sort(rng.choice(n, FIT_SAMPLE, False))]
        mean = sample.mean(axis=0, dtype=np.float64).astype(np.float32)
        centred = sample - mean
        cov = (centred.T @ centred) / max(len(sample) - 1, 1)
        _, vecs = np.linalg.eigh(cov.astype(np.float64))
        self.basis = np.ascontiguousarray(vecs[:, ::-1][:, : self.dims], dtype=np.float32)
        self.mean = mean
        self.rows = np.zeros((0, self.dims), dtype=np.float32)
        self.rows = self.project(matrix)
        self.fitted_at = n

    def project(self, rows: Array) -> Array:
        """Projections of *rows* (no state change)."""
        out: Array = np.ascontiguousarray((rows - self.mean) @ self.basis, dtype=np.float32)
        return out

    def resize(self, n: int) -> None:
        """Keeps room for *n* rows (new rows are zeros until set)."""
        if len(self.rows) < n:
            grown = np.zeros((int(1.125 * n) + 64, self.dims), dtype=np.float32)
            grown[: len(self.rows)] = self.rows
            self.rows = grown

    def set(self, rows: slice | list[int], values: Array) -> None:
        """Projects *values* into *rows*."""
        if self.active:
            self.rows[rows] = self.project(values)

    def keep(self, rows: list[int]) -> None:
        """Keeps only *rows*, in that order (deletions compact)."""
        if self.active:
            m = len(rows)
            self.rows[:m] = self.rows[rows]

    def scores(self, query: Array, n: int) -> Array:
        """Approximate inner products of *query* with the first *n* rows (a per-query constant
        apart: only the order is meaningful)."""
        q = self.basis.T @ np.asarray(query, dtype=np.float32)
        out: Array = self.rows[:n] @ q
        return out
