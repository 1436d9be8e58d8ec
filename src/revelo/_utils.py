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
