"""Checks of the neighbour graph and of the number of cells it needs."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from ._hints import HINT_NEIGHBORS

if TYPE_CHECKING:
    from anndata import AnnData


def check_min_cells(n_obs: int, n_neighbors: int) -> None:
    """Raise if there are too few cells to build a ``n_neighbors`` nearest-neighbour graph.

    Parameters
    ----------
    n_obs
        Number of cells.
    n_neighbors
        Number of neighbours per cell, the cell itself included (scanpy's convention).

    Raises
    ------
    ValueError
        When ``n_obs <= n_neighbors``, ``n_obs < 3`` or ``n_neighbors < 2``.
    """
    if n_neighbors < 2:
        msg = f"n_neighbors={n_neighbors} is too small; pass n_neighbors=2 or more."
        raise ValueError(msg)
    if n_obs < 3:
        msg = (
            f"Only {n_obs} cell{'s are' if n_obs != 1 else ' is'} left; a neighbour graph needs "
            "at least 3 cells. Use more cells, or check that the filters (empty cells, "
            "min_shared_counts) did not remove them."
        )
        raise ValueError(msg)
    if n_obs <= n_neighbors:
        msg = (
            f"Only {n_obs} cells are left, too few for a graph with n_neighbors={n_neighbors}. "
            f"Pass n_neighbors={max(n_obs - 1, 2)} or fewer, or use more cells."
        )
        raise ValueError(msg)


def check_neighbors(adata: AnnData) -> sparse.csr_matrix:
    """Return the neighbour distances as CSR, or raise if no usable neighbour graph exists.

    Parameters
    ----------
    adata
        Annotated data matrix with obsp["distances"].

    Returns
    -------
    adata.obsp["distances"] as a CSR matrix.

    Raises
    ------
    KeyError
        When obsp["distances"] is missing.
    ValueError
        When a cell has no neighbour.
    """
    if "distances" not in adata.obsp:
        msg = f"adata.obsp has no 'distances' (no neighbour graph): {HINT_NEIGHBORS}."
        raise KeyError(msg)
    dist = sparse.csr_matrix(adata.obsp["distances"])
    if np.diff(dist.indptr).min() == 0:
        msg = f"Some cells have no neighbours in adata.obsp['distances']: {HINT_NEIGHBORS}."
        raise ValueError(msg)
    return dist
