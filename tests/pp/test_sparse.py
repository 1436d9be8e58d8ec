"""Sparse counts stay sparse until the genes are subset: no dense cells × all-genes array."""

from __future__ import annotations

import anndata as ad
import numpy as np
import pytest
from scipy import sparse

from revelo.pp import preprocess

N_VARS = 5_000
N_TOP_GENES = 200


def _sparse_counts(n_obs: int, seed: int = 0) -> ad.AnnData:
    """2 % of entries non-zero; unspliced shares spliced's pattern, so every gene has shared
    counts and its unspliced grows with its spliced."""
    rng = np.random.default_rng(seed)
    spliced = sparse.random(
        n_obs,
        N_VARS,
        density=0.02,
        format="csr",
        random_state=rng,
        data_rvs=lambda k: rng.poisson(2.0, k) + 1,
    ).astype(np.float32)
    unspliced = spliced.copy()
    unspliced.data = (rng.poisson(0.5 * spliced.data) + 1).astype(np.float32)
    return ad.AnnData(spliced.copy(), layers={"spliced": spliced, "unspliced": unspliced})


@pytest.fixture
def no_dense_cells_by_all_genes(monkeypatch):
    """Make densifying any sparse matrix wider than the kept genes an error."""
    original = sparse.csr_matrix.toarray

    def guarded(self, *args, **kwargs):
        if self.shape[1] > N_TOP_GENES:
            msg = f"densified a {self.shape} sparse matrix"
            raise AssertionError(msg)
        return original(self, *args, **kwargs)

    for cls in {sparse.csr_matrix, sparse.csc_matrix, sparse.coo_matrix}:
        monkeypatch.setattr(cls, "toarray", guarded)


@pytest.mark.parametrize(
    "n_obs", [6_000, pytest.param(20_000, marks=pytest.mark.slow)], ids=["6k", "20k"]
)
def test_preprocess_keeps_counts_sparse_until_the_gene_subset(n_obs, no_dense_cells_by_all_genes):
    adata = _sparse_counts(n_obs)
    out = preprocess(
        adata,
        n_top_genes=N_TOP_GENES,
        n_neighbors=10,
        n_pcs=10,
        compute_umap=False,
        filter_velocity_genes=False,
    )
    assert out.shape == (n_obs, N_TOP_GENES)
    for key in ("spliced", "unspliced"):
        assert sparse.issparse(out.layers[key])
    assert sparse.issparse(out.X)
    # Only the moments of the kept genes are dense.
    assert out.layers["Ms"].shape == out.layers["Mu"].shape == (n_obs, N_TOP_GENES)
