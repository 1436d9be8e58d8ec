"""Inputs that used to fail deep inside a library fail early, naming the problem and the fix."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import revelo

TRAIN = {"enable_progress_bar": False, "n_epochs_kl_warmup": 2}


@pytest.fixture(scope="module")
def raw():
    """Raw counts: 60 cells × 8 genes."""
    return revelo.datasets.simulate(n_obs=60, n_vars=8, seed=0)


@pytest.fixture(scope="module")
def prepared(raw):
    """``raw`` preprocessed, not registered."""
    return revelo.pp.preprocess(
        raw, n_top_genes=None, n_neighbors=5, compute_umap=False, min_shared_counts=1
    )


@pytest.fixture(scope="module")
def fitted(prepared):
    """``prepared`` with a model's outputs and a UMAP."""
    adata = prepared.copy()
    revelo.REVELO.setup_anndata(adata)
    revelo.settings.seed = 0
    model = revelo.REVELO(adata, n_hidden=16)
    model.train(max_epochs=3, **TRAIN)
    model.add_outputs(n_samples=2, uncertainty=False)
    adata.obsm["X_umap"] = np.random.default_rng(0).normal(size=(adata.n_obs, 2))
    return adata


# ---------------------------------------------------------------- preprocess
@pytest.mark.parametrize("n_expressed", [0, 1])
def test_empty_spliced_layer_names_the_layer_not_an_index(raw, n_expressed):
    adata = raw.copy()
    spliced = np.asarray(adata.layers["spliced"]).copy()
    spliced[:, n_expressed:] = 0
    adata.layers["spliced"] = spliced
    with pytest.raises(ValueError, match=rf"only {n_expressed} of the \d+ genes .* spliced"):
        revelo.pp.preprocess(adata, n_top_genes=5, min_shared_counts=0, n_neighbors=5)


@pytest.mark.parametrize("n_obs", [1, 2])
def test_one_or_two_cells_ask_for_more_cells_not_an_invalid_n_neighbors(raw, n_obs):
    with pytest.raises(ValueError, match="needs at least 3 cells") as info:
        revelo.pp.preprocess(raw[:n_obs].copy(), n_neighbors=2, min_shared_counts=0)
    assert "Pass n_neighbors" not in str(info.value)


@pytest.mark.parametrize(
    ("n_top_genes", "error"), [(0, ValueError), (-3, ValueError), (2.5, TypeError)]
)
def test_n_top_genes_must_be_positive(raw, n_top_genes, error):
    with pytest.raises(error, match="n_top_genes"):
        revelo.pp.preprocess(raw.copy(), n_top_genes=n_top_genes, n_neighbors=5)


# ---------------------------------------------------------------- setup_anndata and the model
def test_covariate_keys_as_a_string_are_not_split_into_letters(prepared):
    with pytest.raises(TypeError, match=r"must be a list .*\['clusters'\]"):
        revelo.REVELO.setup_anndata(prepared.copy(), categorical_covariate_keys="clusters")


def test_batch_column_of_mixed_types_is_refused(prepared):
    adata = prepared.copy()
    adata.obs["batch"] = pd.Series(
        [1 if i % 2 else "a" for i in range(adata.n_obs)], index=adata.obs_names, dtype=object
    )
    with pytest.raises(TypeError, match=r"mixes value types \(number, str\).*astype\(str\)"):
        revelo.REVELO.setup_anndata(adata, batch_key="batch")


def test_fractional_batch_column_is_refused(prepared):
    adata = prepared.copy()
    adata.obs["size"] = np.random.default_rng(0).random(adata.n_obs)
    with pytest.raises(ValueError, match=r"fractional numbers.*continuous_covariate_keys"):
        revelo.REVELO.setup_anndata(adata, batch_key="size")
    adata.obs["whole"] = np.arange(adata.n_obs) % 2 * 1.0  # whole numbers label batches
    revelo.REVELO.setup_anndata(adata, batch_key="whole")


def test_the_same_layer_for_spliced_and_unspliced_is_refused(prepared):
    with pytest.raises(ValueError, match="both 'Ms'"):
        revelo.REVELO.setup_anndata(prepared.copy(), spliced_layer="Ms", unspliced_layer="Ms")


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_hidden": True}, "n_hidden must be a positive integer, got True"),
        ({"time_mode": "Shared"}, r"time_mode='Shared' is not one of 'gene', 'shared'"),
    ],
)
def test_model_options_of_the_wrong_kind_are_refused(prepared, kwargs, pattern):
    adata = prepared.copy()
    revelo.REVELO.setup_anndata(adata)
    with pytest.raises(ValueError, match=pattern):
        revelo.REVELO(adata, **kwargs)


# ---------------------------------------------------------------- tools and plots
@pytest.mark.parametrize("option", ["n_neighbors", "n_recurse_neighbors"])
def test_velocity_graph_needs_positive_neighbour_counts(fitted, option):
    with pytest.raises(ValueError, match=f"{option} must be at least 1, got 0"):
        revelo.tl.velocity_graph(fitted.copy(), **{option: 0})


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_velocity_graph_on_cuda_without_a_gpu_says_use_cpu(fitted):
    with pytest.raises(ValueError, match="torch sees none; pass device='cpu'"):
        revelo.tl.velocity_graph(fitted.copy(), device="cuda")


def test_unknown_gene_subset_names_are_listed(fitted):
    with pytest.raises(KeyError, match=r"not in adata.var_names: \['nope'\]"):
        revelo.tl.velocity_graph(fitted.copy(), gene_subset=["nope"])


def test_one_infinite_velocity_does_not_remove_a_cells_edges(fitted):
    adata = fitted.copy()
    cell, gene = 7, int(np.flatnonzero(adata.var["velocity_genes"])[0])
    velocity = np.asarray(adata.layers["velocity"]).copy()
    velocity[cell, gene] = np.inf
    adata.layers["velocity"] = velocity
    revelo.tl.velocity_graph(adata)
    graph = adata.uns["velocity_graph"] + adata.uns["velocity_graph_neg"]
    assert graph[cell].nnz > 0
    # the gene is left out as a NaN (unfitted) gene is
    reference = fitted.copy()
    reference.layers["velocity"] = velocity.copy()
    reference.layers["velocity"][:, gene] = np.nan
    revelo.tl.velocity_graph(reference)
    assert (adata.uns["velocity_graph"] != reference.uns["velocity_graph"]).nnz == 0


def test_grid_of_no_points_is_refused(fitted):
    adata = fitted.copy()
    revelo.tl.velocity_graph(adata)
    revelo.tl.velocity_embedding(adata)
    with pytest.raises(ValueError, match="grid_size must be at least 2, got 0"):
        revelo.pl.velocity_embedding_grid(adata, grid_size=0, show=False)


def test_phase_portrait_of_no_gene_is_refused(fitted):
    with pytest.raises(ValueError, match="got no gene"):
        revelo.pl.phase_portrait(fitted, [], show=False)


# ---------------------------------------------------------------- data sets
def test_a_damaged_cached_data_file_says_delete_it(tmp_path, monkeypatch):
    (tmp_path / "dentategyrus_200.h5ad").write_bytes(b"\x89HDF\r\n truncated")
    monkeypatch.setattr(revelo.settings, "data_dir", tmp_path)
    with pytest.raises(ValueError, match=r"cannot be read.*damaged or incomplete. Delete it"):
        revelo.datasets.dentategyrus()
