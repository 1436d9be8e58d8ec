"""Array helpers shared by every subpackage."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

if TYPE_CHECKING:
    from numpy.typing import DTypeLike


def to_dense(matrix, dtype: DTypeLike | None = None) -> np.ndarray:
    """Return a dense or sparse matrix (or any array-like) as a dense numpy array.

    Parameters
    ----------
    matrix
        A numpy array, scipy sparse matrix or array-like.
    dtype
        Cast to this dtype; `None` keeps the matrix's own.

    Returns
    -------
    A dense array; ``matrix`` itself when it is already an array of that dtype.
    """
    if sparse.issparse(matrix):
        matrix = matrix.toarray()
    return np.asarray(matrix, dtype=dtype)


#: Genes per block where a cells × genes array is processed a block of genes at a time.
GENE_BLOCK = 256


def chunks(n: int, size: int | None = None) -> list[slice]:
    """Consecutive slices of at most ``size`` items covering ``range(n)`` (at least one slice).

    ``size`` defaults to :data:`GENE_BLOCK`.

    Used to bound the temporary copies (float64, ranks, sort orders) of per-gene or per-cell
    computations to a block instead of the whole cells × genes array.
    """
    size = size or GENE_BLOCK
    return [slice(start, start + size) for start in range(0, max(n, 1), size)]
