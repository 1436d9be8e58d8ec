from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

import revelo

from ._fixtures import trajectory_adata


@pytest.mark.parametrize("autoscale", [False, True])
def test_matches_scvelo(autoscale):
    scv = pytest.importorskip("scvelo")
    adata = trajectory_adata()
    revelo.tl.velocity_graph(adata)
    theirs = adata.copy()
    revelo.tl.velocity_embedding(adata, autoscale=autoscale)
    scv.settings.verbosity = 0
    scv.tl.velocity_embedding(theirs, basis="umap", autoscale=autoscale)
    ours, expected = adata.obsm["velocity_umap"], theirs.obsm["velocity_umap"]
    np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    assert adata.uns["velocity_params"]["embeddings"] == ["umap"]


def _line(n_obs=30, direction=1.0):
    """Cells on a line in a 3-gene space, all moving towards larger coordinates."""
    position = np.linspace(0, 1, n_obs)
    states = np.column_stack([position, 2 * position, -position]).astype(np.float32)
    adata = ad.AnnData(states)
    adata.layers["Ms"] = states
    adata.layers["velocity"] = direction * np.tile([1.0, 2.0, -1.0], (n_obs, 1)).astype(np.float32)
    adata.obsm["X_umap"] = np.column_stack([position, np.zeros(n_obs)])
    # each cell's two nearest cells on either side
    rows, cols = [], []
    for i in range(n_obs):
        for j in (i - 2, i - 1, i + 1, i + 2):
            if 0 <= j < n_obs:
                rows.append(i)
                cols.append(j)
    # pad the ends so every cell has four neighbours
    for i, extra in (
        (0, (3, 4)),
        (1, (3,)),
        (n_obs - 2, (n_obs - 4,)),
        (n_obs - 1, (n_obs - 4, n_obs - 5)),
    ):
        for j in extra:
            rows.append(i)
            cols.append(j)
    dist = np.abs(position[rows] - position[cols])
    adata.obsp["distances"] = sparse.csr_matrix((dist, (rows, cols)), shape=(n_obs, n_obs))
    adata.obsp["connectivities"] = (adata.obsp["distances"] > 0).astype(float)
    adata.uns["neighbors"] = {"params": {"n_neighbors": 5}}
    return adata


@pytest.mark.parametrize("direction", [1.0, -1.0])
def test_arrows_follow_the_line(direction):
    adata = _line(direction=direction)
    revelo.tl.velocity_embedding(adata)  # computes the graph on the fly
    assert "velocity_graph" in adata.uns
    arrows = adata.obsm["velocity_umap"]
    assert np.all(np.sign(arrows[2:-2, 0]) == direction)
    assert np.abs(arrows[:, 1]).max() < 1e-12


def test_missing_embedding_and_copy():
    adata = trajectory_adata()
    with pytest.raises(KeyError, match="X_tsne"):
        revelo.tl.velocity_embedding(adata, basis="tsne")
    copied = revelo.tl.velocity_embedding(adata, copy=True)
    assert "velocity_umap" in copied.obsm
    assert "velocity_umap" not in adata.obsm


def test_direct_pca():
    adata = trajectory_adata()
    revelo.tl.velocity_embedding(adata, basis="pca", direct_pca=True)
    assert adata.obsm["velocity_pca"].shape == adata.obsm["X_pca"].shape
    assert "velocity_graph" not in adata.uns
