"""Checks of a selection of cells: the root cells of latent time."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData


def root_mask(
    adata: AnnData,
    root_key: str | None,
    root_cells: Sequence[str] | Sequence[int] | np.ndarray | None,
) -> np.ndarray | None:
    """Boolean mask of the user's root cells, or ``None`` when none were given."""
    if root_key is not None and root_cells is not None:
        msg = "Give either root_key or root_cells, not both."
        raise ValueError(msg)
    if root_key is not None:
        if root_key not in adata.obs:
            msg = f"adata.obs has no column {root_key!r} marking the root cells."
            raise KeyError(msg)
        mask = adata.obs[root_key].to_numpy()
        if mask.dtype != bool:
            msg = f"adata.obs[{root_key!r}] must be boolean (True for root cells)."
            raise TypeError(msg)
    elif root_cells is not None:
        cells = np.atleast_1d(np.asarray(root_cells))
        positions = (
            cells.astype(np.int64)
            if np.issubdtype(cells.dtype, np.integer)
            else adata.obs_names.get_indexer(cells)
        )
        if (positions < 0).any():
            missing = cells[positions < 0][:5].tolist()
            msg = f"root_cells not in adata.obs_names: {missing}."
            raise KeyError(msg)
        mask = np.zeros(adata.n_obs, dtype=bool)
        mask[positions] = True
    else:
        return None
    if not mask.any():
        msg = "No root cell selected."
        raise ValueError(msg)
    return mask
