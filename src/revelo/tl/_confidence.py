"""Per-cell velocity length and coherence with neighbouring cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from revelo._utils import to_dense
from revelo._validation import HINT_VELOCITY, check_layer, check_neighbors

from ._utils import knn_indices, velocity_gene_mask

if TYPE_CHECKING:
    from anndata import AnnData


def velocity_confidence(
    adata: AnnData, *, vkey: str = "velocity", copy: bool = False
) -> AnnData | None:
    """Velocity length and confidence of each cell, as scVelo defines them.

    Velocities are restricted to the velocity genes (``var[f"{vkey}_genes"]``, genes with a
    ``var["spearmans_score"]`` above 0.1 when that column exists, and never genes with NaN
    velocities) and centred per cell. The confidence is the mean cosine similarity between a
    cell's velocity and those of its nearest neighbours, clipped at 0: close to 1 where
    neighbouring velocities agree, close to 0 where they point in unrelated directions.

    Parameters
    ----------
    adata
        Annotated data with ``layers[vkey]`` and a neighbour graph (``obsp["distances"]``).
    vkey
        Layer with the velocities.
    copy
        Return a modified copy instead of writing to ``adata``.

    Returns
    -------
    Returns ``None``, or a copy of ``adata`` if ``copy=True``, with these fields set:

    ``obs[f"{vkey}_length"]``
        Euclidean norm of the centred velocity, rounded to two decimals.
    ``obs[f"{vkey}_confidence"]``
        Mean cosine similarity with the neighbours' velocities, in [0, 1]. A cell (or
        neighbour) with zero velocity contributes 0 rather than NaN.
    """
    adata = adata.copy() if copy else adata
    check_layer(adata, vkey, HINT_VELOCITY)
    dist = check_neighbors(adata)

    genes = velocity_gene_mask(adata, vkey)
    if "spearmans_score" in adata.var:
        genes &= adata.var["spearmans_score"].to_numpy() > 0.1
    velocity = to_dense(adata.layers[vkey][:, genes], float)
    velocity -= velocity.mean(1, keepdims=True)
    length = np.linalg.norm(velocity, axis=1)
    unit = np.divide(
        velocity, length[:, None], out=np.zeros_like(velocity), where=length[:, None] > 0
    )

    indices = knn_indices(dist)
    n_obs, k = indices.shape
    # mean of neighbours' unit velocities, dotted with the cell's own: the mean cosine
    averaging = sparse.csr_matrix(
        (np.full(n_obs * k, 1 / k), indices.ravel(), np.arange(0, n_obs * k + 1, k)),
        shape=(n_obs, n_obs),
    )
    confidence = ((averaging @ unit) * unit).sum(1)

    adata.obs[f"{vkey}_length"] = length.round(2)
    adata.obs[f"{vkey}_confidence"] = np.clip(confidence, 0, None)
    return adata if copy else None
