"""Helpers shared by the velocity tools: device, gene selection and neighbour indices."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import sparse

from revelo._utils import to_dense
from revelo._validation import gene_mask

if TYPE_CHECKING:
    from anndata import AnnData


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Use CUDA when available unless the caller picks a device."""
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        msg = (
            f"device={str(device)!r} asks for a CUDA GPU, but torch sees none; pass "
            "device='cpu', or None to use a GPU only when there is one."
        )
        raise ValueError(msg)
    return device


def dense_layer(adata: AnnData, key: str, genes: np.ndarray) -> np.ndarray:
    """Layer ``key`` restricted to the boolean mask ``genes``, as a dense float32 array."""
    return to_dense(adata.layers[key][:, genes], np.float32)


def velocity_gene_mask(
    adata: AnnData, vkey: str, gene_subset: list[str] | np.ndarray | None = None
) -> np.ndarray:
    """Genes used by the velocity tools.

    ``gene_subset`` (names, or a boolean mask) wins over ``var[f"{vkey}_genes"]``; genes whose
    velocity is NaN or infinite in any cell (not fitted) are always dropped, so that one such
    entry cannot remove a cell's edges. Names not in ``var_names``
    raise a :class:`KeyError`.
    """
    mask = gene_mask(adata.var_names, gene_subset, name="gene_subset")
    if gene_subset is None and f"{vkey}_genes" in adata.var:
        mask &= np.asarray(adata.var[f"{vkey}_genes"], dtype=bool)
    mask &= np.isfinite(to_dense(adata.layers[vkey].sum(0))).ravel()
    if not mask.any():
        msg = (
            f"No gene is usable for {vkey!r}: every selected gene has NaN or infinite "
            f"velocities or var[{vkey + '_genes'!r}] / gene_subset selects none."
        )
        raise ValueError(msg)
    return mask


def knn_indices(dist: sparse.csr_matrix, n_neighbors: int | None = None) -> np.ndarray:
    """Return the same number of nearest neighbours for every cell, as an ``(n_obs, k)`` array.

    ``k`` is the smallest neighbour count over cells (or ``n_neighbors`` if smaller); cells with
    more neighbours keep their ``k`` closest, so every row has the same length as in scVelo.
    """
    counts = np.diff(dist.indptr)
    k = int(counts.min()) if n_neighbors is None else min(int(counts.min()), n_neighbors)
    if (counts == k).all():
        return dist.indices.reshape(-1, k).astype(np.int64)
    rows = np.repeat(np.arange(dist.shape[0]), counts)
    order = np.lexsort((dist.data, rows))
    rank = np.arange(dist.nnz) - np.repeat(dist.indptr[:-1], counts)
    keep = order[rank < k]
    return dist.indices[keep].reshape(-1, k).astype(np.int64)


def recursive_neighbors(
    indices: torch.Tensor, rows: torch.Tensor, n_recurse: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cells reachable from ``rows`` in at most ``n_recurse`` kNN steps, the cell itself included.

    Returns a padded ``(len(rows), m)`` index tensor (each row sorted, without repeats) and a
    boolean mask of its valid entries.
    """
    n_obs = indices.shape[0]
    reached = rows[:, None]
    for _ in range(n_recurse):
        reached = torch.cat([reached, indices[reached].flatten(1)], dim=1)
    reached, _ = torch.sort(reached, dim=1)
    repeat = torch.zeros_like(reached, dtype=torch.bool)
    repeat[:, 1:] = reached[:, 1:] == reached[:, :-1]
    # push repeats to the end of each row with an out-of-range sentinel, then trim the padding
    reached = reached.masked_fill(repeat, n_obs)
    reached, _ = torch.sort(reached, dim=1)
    valid = reached < n_obs
    width = int(valid.sum(1).max())
    return reached[:, :width], valid[:, :width]
