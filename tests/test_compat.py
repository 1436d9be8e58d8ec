"""revelo's AnnData outputs feed scVelo's and CellRank's tools unchanged."""

from __future__ import annotations

import inspect

import numpy as np
import pytest
from scipy import sparse

import revelo


@pytest.fixture(scope="module")
def fitted():
    """A small simulation after preprocessing, a short training and ``add_outputs``."""
    import torch

    torch.set_num_threads(1)
    revelo.settings.seed = 0
    raw = revelo.datasets.simulate(n_obs=300, n_vars=30, seed=0, noise="normal")
    adata = revelo.pp.preprocess(raw, normalize=False, n_top_genes=None, min_shared_counts=10)
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=32)
    model.train(max_epochs=30, enable_progress_bar=False)
    model.add_outputs(uncertainty=False)
    return adata


@pytest.fixture
def scv():
    """scVelo, quiet."""
    scvelo = pytest.importorskip("scvelo")
    scvelo.settings.verbosity = 0
    return scvelo


# the tool fixture comes first so that a missing package skips before any training
def test_scvelo_velocity_graph_matches(scv, fitted):
    theirs = fitted.copy()
    scv.tl.velocity_graph(theirs, n_jobs=1, show_progress_bar=False)
    ours = revelo.tl.velocity_graph(fitted, copy=True, device="cpu")
    # scVelo read our outputs as they are: same genes, same neighbourhoods, no sqrt transform
    assert theirs.uns["velocity_params"] == ours.uns["velocity_params"]
    for key in ("velocity_graph", "velocity_graph_neg"):
        assert theirs.uns[key].shape == (fitted.n_obs, fitted.n_obs)
        assert theirs.uns[key].nnz > 0
        assert abs(sparse.csr_matrix(theirs.uns[key]) - ours.uns[key]).max() <= 1e-4, key
    np.testing.assert_allclose(
        ours.obs["velocity_self_transition"], theirs.obs["velocity_self_transition"], atol=1e-4
    )


def test_scvelo_stream_plot_draws(scv, fitted):
    import matplotlib as mpl
    import matplotlib.pyplot as plt

    adata = fitted.copy()
    revelo.tl.velocity_graph(adata, device="cpu")
    ax = scv.pl.velocity_embedding_stream(adata, basis="umap", show=False)
    try:
        assert "velocity_umap" in adata.obsm
        assert np.isfinite(adata.obsm["velocity_umap"]).all()
        lines = [c for c in ax.collections if isinstance(c, mpl.collections.LineCollection)]
        assert lines, "no streamlines drawn"
        assert sum(len(line.get_segments()) for line in lines) > 10
    finally:
        plt.close("all")


@pytest.fixture
def cr(monkeypatch):
    """CellRank, usable with NumPy >= 2.3.

    CellRank 2.0.7 calls ``np.testing.assert_array_equal(x=..., y=...)``, keywords that NumPy 2.3
    renamed (scverse/cellrank#1272, fixed upstream after that release); the shim maps them back
    for the duration of one test.
    """
    cellrank = pytest.importorskip("cellrank")
    assert_array_equal = np.testing.assert_array_equal
    if "x" not in inspect.signature(assert_array_equal).parameters:

        def shim(*args, x=None, y=None, **kwargs):
            args = (x, y) if x is not None else args
            return assert_array_equal(*args, **kwargs)

        monkeypatch.setattr(np.testing, "assert_array_equal", shim)
    return cellrank


def test_cellrank_velocity_kernel(cr, fitted):
    adata = fitted.copy()
    kernel = cr.kernels.VelocityKernel(adata).compute_transition_matrix(
        n_jobs=1, show_progress_bar=False
    )
    transitions = kernel.transition_matrix
    assert transitions.shape == (adata.n_obs, adata.n_obs)
    np.testing.assert_allclose(np.asarray(transitions.sum(1)).ravel(), 1, atol=1e-6)
    assert transitions.min() >= 0

    connectivity = cr.kernels.ConnectivityKernel(adata).compute_transition_matrix()
    combined = (0.8 * kernel + 0.2 * connectivity).compute_transition_matrix()
    mixed = combined.transition_matrix
    assert mixed.shape == (adata.n_obs, adata.n_obs)
    np.testing.assert_allclose(np.asarray(mixed.sum(1)).ravel(), 1, atol=1e-6)


def test_cellrank_reads_our_keys(cr, fitted):
    """CellRank's kernel is built from layers["velocity"], layers["Ms"], var["velocity_genes"]."""

    def transitions(adata, **kwargs):
        kernel = cr.kernels.VelocityKernel(adata, **kwargs)
        kernel.compute_transition_matrix(n_jobs=1, show_progress_bar=False)
        return kernel.transition_matrix

    reference = transitions(fitted.copy())
    for layer in ("velocity", "Ms"):
        missing = fitted.copy()
        del missing.layers[layer]
        with pytest.raises(KeyError, match=layer):
            cr.kernels.VelocityKernel(missing)

    # var["velocity_genes"] is the default gene subset
    genes = fitted.var_names[fitted.var["velocity_genes"].to_numpy(dtype=bool)]
    assert len(genes) > 2
    half = fitted.copy()
    half.var["velocity_genes"] = half.var_names.isin(genes[::2])
    explicit = transitions(fitted.copy(), gene_subset=genes[::2])
    assert abs(transitions(half) - explicit).max() < 1e-10
    assert abs(transitions(half) - reference).max() > 1e-3

    # the velocities set the direction: reversing them changes the preferred transitions
    backward = fitted.copy()
    backward.layers["velocity"] = -backward.layers["velocity"]
    assert abs(transitions(backward) - reference).max() > 1e-3
