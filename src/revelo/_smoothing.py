"""Neighbour averaging: the smoothing behind the moments and the model's start values."""

from __future__ import annotations

import numpy as np
from scipy import sparse

#: Genes smoothed at a time, so that only ``n_obs × _CHUNK`` values are ever densified at once.
_CHUNK = 512


def neighbor_weights(connectivities) -> sparse.csr_matrix:
    """Turn a neighbour graph into row-stochastic averaging weights.

    Every cell averages itself and each cell it is connected to (connectivity > 0) with equal
    weight; this is the moments convention of scVelo, so that ``Ms``/``Mu`` are comparable.

    Parameters
    ----------
    connectivities
        Cells × cells sparse graph, e.g. ``adata.obsp["connectivities"]``.

    Returns
    -------
    Cells × cells float32 CSR matrix whose rows sum to one.
    """
    graph = sparse.csr_matrix(connectivities > 0, dtype=np.float32)
    graph = graph.maximum(sparse.identity(graph.shape[0], dtype=np.float32, format="csr"))
    row_sums = np.asarray(graph.sum(axis=1)).ravel()
    return sparse.csr_matrix(sparse.diags((1.0 / row_sums).astype(np.float32)) @ graph)


def neighbor_mean(weights: sparse.csr_matrix, matrix) -> np.ndarray:
    """Return ``weights @ matrix`` as a dense float32 array, densifying a few genes at a time.

    Parameters
    ----------
    weights
        Cells × cells averaging weights from :func:`neighbor_weights`.
    matrix
        Cells × genes values, dense or sparse.

    Returns
    -------
    Dense float32 cells × genes array.
    """
    if not sparse.issparse(matrix):
        return np.asarray(weights @ np.asarray(matrix, dtype=np.float32), dtype=np.float32)
    matrix = sparse.csc_matrix(matrix, dtype=np.float32)
    out = np.empty(matrix.shape, dtype=np.float32)
    for start in range(0, matrix.shape[1], _CHUNK):
        stop = min(start + _CHUNK, matrix.shape[1])
        out[:, start:stop] = weights @ matrix[:, start:stop].toarray()
    return out
