"""Small synthetic AnnData objects shared by the tool tests."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc


def trajectory_adata(
    n_obs: int = 200, n_vars: int = 40, *, n_neighbors: int = 10, seed: int = 0
) -> ad.AnnData:
    """Cells along a curved path in gene space with noisy velocities pointing forward.

    ``obs["order"]`` is the true position, ``layers["velocity"]`` has a NaN gene and
    ``var["velocity_genes"]`` deselects another, and ``obsm["X_umap"]`` is a 2-d embedding.
    """
    rng = np.random.default_rng(seed)
    order = np.sort(rng.uniform(0, 1, n_obs))
    phase = rng.uniform(0, 2 * np.pi, n_vars)
    freq = rng.uniform(0.5, 2.0, n_vars)
    states = 2 + np.sin(freq * order[:, None] * np.pi + phase)
    states += rng.normal(0, 0.05, states.shape)
    velocity = freq * np.pi * np.cos(freq * order[:, None] * np.pi + phase)
    velocity += rng.normal(0, 0.5, velocity.shape)
    velocity[:, 0] = np.nan
    adata = ad.AnnData(
        X=states.astype(np.float32),
        obs=pd.DataFrame({"order": order}, index=[f"c{i}" for i in range(n_obs)]),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_vars)]),
    )
    adata.layers["Ms"] = states.astype(np.float32)
    adata.layers["velocity"] = velocity.astype(np.float32)
    adata.var["velocity_genes"] = np.arange(n_vars) != 1
    sc.pp.pca(adata, n_comps=10)
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, use_rep="X_pca")
    adata.obsm["X_umap"] = np.column_stack(
        [order, 0.3 * np.sin(3 * order) + rng.normal(0, 0.02, n_obs)]
    )
    return adata
