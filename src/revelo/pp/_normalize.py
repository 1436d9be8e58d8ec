"""Per-cell library-size normalisation that keeps sparse matrices sparse."""

from __future__ import annotations

import numpy as np
from scipy import sparse


def cell_totals(matrix) -> np.ndarray:
    """Return the total count of every cell (row sums) as a float64 vector.

    Parameters
    ----------
    matrix
        Cells × genes counts, dense or sparse.

    Returns
    -------
    Vector of length ``n_obs``.
    """
    return np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()


def normalize_per_cell(matrix, totals: np.ndarray | None):
    """Scale every cell to the median of the positive ``totals``.

    Parameters
    ----------
    matrix
        Cells × genes counts, dense or sparse (CSR or CSC).
    totals
        Each cell's library size, usually :func:`cell_totals` of the counts over the genes that
        passed filtering. Cells with a total of zero stay all-zero. ``None`` skips the scaling
        and only converts to float32.

    Returns
    -------
    A float32 matrix of the same kind (sparse CSR for sparse input, dense otherwise).
    """
    if totals is None:
        if sparse.issparse(matrix):
            return sparse.csr_matrix(matrix, dtype=np.float32)
        return np.asarray(matrix, dtype=np.float32)
    positive = totals > 0
    target = float(np.median(totals[positive])) if positive.any() else 1.0
    factor = np.zeros_like(totals)
    factor[positive] = target / totals[positive]
    factor = factor.astype(np.float32)
    if sparse.issparse(matrix):
        return sparse.csr_matrix(sparse.diags(factor) @ matrix.astype(np.float32))
    return np.asarray(matrix, dtype=np.float32) * factor[:, None]
