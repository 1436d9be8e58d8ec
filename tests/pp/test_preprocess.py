from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from scipy import sparse

import revelo
from revelo._steady_state import steady_state_fit
from revelo.datasets import simulate
from revelo.pp import moments, preprocess

FAST = {"compute_umap": False, "n_neighbors": 10, "n_pcs": 10}


@pytest.fixture(scope="module")
def sim() -> ad.AnnData:
    adata = simulate(n_obs=150, n_vars=25, seed=0)
    for key in ("spliced", "unspliced"):
        adata.layers[key] = sparse.csr_matrix(adata.layers[key])
    adata.X = adata.layers["spliced"].copy()
    return adata


def _assert_equal(left, right) -> None:
    if sparse.issparse(left) or sparse.issparse(right):
        assert sparse.issparse(left) and sparse.issparse(right)
        assert left.format == right.format and left.dtype == right.dtype
        assert (left != right).nnz == 0
    elif isinstance(left, pd.DataFrame):
        pd.testing.assert_frame_equal(left, right)
    elif isinstance(left, dict):
        assert left.keys() == right.keys()
        for key in left:
            _assert_equal(left[key], right[key])
    else:
        np.testing.assert_array_equal(left, right)
        assert np.asarray(left).dtype == np.asarray(right).dtype


def _assert_adata_equal(left: ad.AnnData, right: ad.AnnData) -> None:
    _assert_equal(left.X, right.X)
    _assert_equal(left.obs, right.obs)
    _assert_equal(left.var, right.var)
    _assert_equal(left.uns, right.uns)
    for attr in ("layers", "obsm", "varm", "obsp", "varp"):
        _assert_equal(dict(getattr(left, attr)), dict(getattr(right, attr)))


def test_input_is_never_modified(sim):
    adata = sim.copy()
    adata.obsm["X_umap"] = np.zeros((adata.n_obs, 2))
    adata.obsp["connectivities"] = sparse.identity(adata.n_obs, format="csr")
    adata.uns["note"] = {"a": 1}
    before = adata.copy()
    out = preprocess(adata, n_neighbors=10, n_pcs=5, compute_umap=True)
    _assert_adata_equal(adata, before)
    assert out is not adata
    assert not np.array_equal(out.obsm["X_umap"], np.zeros((out.n_obs, 2)))


def test_writes_documented_keys(sim):
    out = preprocess(sim, **FAST, filter_velocity_genes=False)
    assert {"spliced", "unspliced", "Ms", "Mu"} <= set(out.layers)
    for key in ("initial_size_spliced", "initial_size_unspliced"):
        assert key in out.obs
    for key in (
        "shared_counts",
        "Ms_min",
        "Ms_scale",
        "Mu_min",
        "Mu_scale",
        "velocity_gamma",
        "velocity_r2",
        "velocity_genes",
    ):
        assert key in out.var
    assert {"X_pca"} <= set(out.obsm) and "PCs" in out.varm
    assert {"connectivities", "distances"} <= set(out.obsp)
    assert {"pca", "neighbors", "revelo_preprocess"} <= set(out.uns)
    assert "X_umap" not in out.obsm
    settings = out.uns["revelo_preprocess"]
    assert settings["n_neighbors"] == 10 and settings["smooth"] is True
    for key in ("Ms", "Mu"):
        assert out.layers[key].dtype == np.float32
        assert out.layers[key].min() >= 0 and out.layers[key].max() <= 1
        assert isinstance(out.layers[key], np.ndarray)
    # Raw counts are kept, X is the log of normalised spliced counts.
    _assert_equal(out.layers["spliced_counts"], sim[:, out.var_names].layers["spliced"])
    assert sparse.issparse(out.X) and out.X.max() < np.log1p(sim.X.max() * 10)


def test_result_round_trips_through_h5ad(sim, tmp_path):
    out = preprocess(sim, **FAST)
    out.write_h5ad(tmp_path / "out.h5ad")
    back = ad.read_h5ad(tmp_path / "out.h5ad")
    np.testing.assert_array_equal(back.layers["Ms"], out.layers["Ms"])
    assert back.uns["revelo_preprocess"]["n_top_genes"] == 2000


def test_each_step_is_timed(sim, monkeypatch, caplog):
    """A step made slower shows up in its own time, and the steps add up to the call."""
    import logging
    import time

    import scanpy as sc

    pca = sc.pp.pca

    def slow_pca(*args, **kwargs):
        time.sleep(0.4)
        return pca(*args, **kwargs)

    monkeypatch.setattr(sc.pp, "pca", slow_pca)
    start = time.perf_counter()
    with caplog.at_level(logging.INFO, logger="revelo.pp._preprocess"):
        out = preprocess(sim, **FAST)
    wall = time.perf_counter() - start
    seconds = out.uns["revelo_preprocess"]["step_seconds"]
    steps = ["filter", "normalize", "highly_variable", "pca", "neighbors", "moments"]
    assert list(seconds) == [*steps, "velocity_genes", "umap"]
    assert seconds["pca"] >= 0.4
    assert seconds["highly_variable"] < 0.4  # the sleep is not counted in the step before
    assert 0.4 <= sum(seconds.values()) <= wall
    assert f"pca {seconds['pca']:.1f} s" in caplog.text


def _hand_moments(counts: np.ndarray, connectivities) -> np.ndarray:
    totals = counts.sum(axis=1)
    target = np.median(totals[totals > 0])
    normalized = np.zeros_like(counts, dtype=float)
    normalized[totals > 0] = counts[totals > 0] / totals[totals > 0, None] * target
    dense = sparse.csr_matrix(connectivities).toarray()
    result = np.empty_like(normalized)
    for cell in range(counts.shape[0]):
        group = set(np.flatnonzero(dense[cell] > 0)) | {cell}
        result[cell] = normalized[sorted(group)].mean(axis=0)
    return result


def test_moments_equal_hand_computed_neighbour_means():
    rng = np.random.default_rng(0)
    counts = rng.poisson(5, size=(6, 3)) + 1
    adata = ad.AnnData(X=counts, layers={"spliced": counts, "unspliced": counts[:, ::-1].copy()})
    graph = np.zeros((6, 6))
    for i, j, w in [(0, 1, 0.5), (1, 2, 0.2), (3, 4, 1.0), (4, 5, 0.1), (0, 5, 0.7)]:
        graph[i, j] = graph[j, i] = w
    adata.obsp["connectivities"] = sparse.csr_matrix(graph)
    moments(adata, scale=False)
    np.testing.assert_allclose(adata.layers["Ms"], _hand_moments(counts, graph != 0), rtol=1e-6)
    np.testing.assert_allclose(
        adata.layers["Mu"], _hand_moments(counts[:, ::-1], graph != 0), rtol=1e-6
    )
    scaled = moments(adata, copy=True)
    ms = adata.layers["Ms"]
    np.testing.assert_allclose(
        scaled.layers["Ms"], (ms - ms.min(0)) / (ms.max(0) - ms.min(0)), rtol=1e-5
    )
    np.testing.assert_allclose(scaled.var["Ms_min"], ms.min(0), rtol=1e-6)


def test_preprocess_moments_match_its_graph(sim):
    out = preprocess(
        sim, **FAST, n_top_genes=None, min_shared_counts=0, filter_velocity_genes=False
    )
    counts = sim[out.obs_names, out.var_names].layers["spliced"].toarray().astype(float)
    expected = _hand_moments(counts, out.obsp["connectivities"])
    unscaled = out.layers["Ms"] * out.var["Ms_scale"].to_numpy() + out.var["Ms_min"].to_numpy()
    np.testing.assert_allclose(unscaled, expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("fmt", ["csr", "csc", "dense", "dense_float32"])
def test_input_formats_give_the_same_result(sim, fmt):
    adata = sim.copy()
    for key in ("spliced", "unspliced"):
        matrix = sim.layers[key]
        adata.layers[key] = {
            "csr": matrix,
            "csc": matrix.tocsc(),
            "dense": matrix.toarray(),
            "dense_float32": matrix.toarray().astype(np.float32),
        }[fmt]
    out = preprocess(adata, **FAST, n_top_genes=15)
    reference = preprocess(sim, **FAST, n_top_genes=15)
    assert list(out.var_names) == list(reference.var_names)
    np.testing.assert_allclose(out.layers["Ms"], reference.layers["Ms"], rtol=1e-5, atol=1e-6)
    assert sparse.issparse(out.X) == fmt.startswith("cs")
    assert out.n_vars <= 15


def _phase_case(n_obs: int = 300) -> ad.AnnData:
    """Gene 'linked' has u ∝ s; gene 'noise' has independent u and s; the rest give structure."""
    rng = np.random.default_rng(1)
    level = np.linspace(1, 40, n_obs)
    spliced = np.column_stack(
        [rng.poisson(level)]
        + [rng.poisson(level * k) for k in (0.5, 1.5, 2.0)]
        + [rng.poisson(10, n_obs)]
    )
    unspliced = np.column_stack(
        [rng.poisson(0.3 * level)]
        + [rng.poisson(level * k * 0.4) for k in (0.5, 1.5, 2.0)]
        + [rng.poisson(10, n_obs)]
    )
    adata = ad.AnnData(
        X=spliced,
        layers={"spliced": spliced, "unspliced": unspliced},
        var=pd.DataFrame(index=["linked", "b", "c", "d", "noise"]),
    )
    adata.obs_names = [f"c{i}" for i in range(n_obs)]
    return adata


@pytest.mark.parametrize("smooth", [True, False])
def test_velocity_genes_flag_linked_and_reject_noise(smooth):
    out = preprocess(
        _phase_case(),
        **FAST,
        smooth=smooth,
        normalize=False,
        n_top_genes=None,
        filter_velocity_genes=False,
    )
    var = out.var
    assert var.loc["linked", "velocity_genes"]
    assert var.loc["linked", "velocity_r2"] > (0.5 if smooth else 0.2)
    assert var.loc["linked", "velocity_gamma"] > 0
    assert not var.loc["noise", "velocity_genes"]
    assert var.loc["noise", "velocity_r2"] < 0
    filtered = preprocess(_phase_case(), **FAST, smooth=smooth, normalize=False, n_top_genes=None)
    assert "noise" not in filtered.var_names and "linked" in filtered.var_names
    assert ("Ms" in filtered.layers) == smooth


def test_steady_state_fit_exact_line():
    s = np.linspace(0, 1, 100)[:, None]
    gamma, r2 = steady_state_fit(s, 0.4 * s)
    np.testing.assert_allclose(gamma, [0.4])
    np.testing.assert_allclose(r2, [1.0])
    gamma, r2 = steady_state_fit(s, np.ones_like(s))
    assert r2[0] == 0  # constant unspliced: nothing to explain


def test_smooth_false_keeps_counts_only(sim):
    out = preprocess(sim, **FAST, smooth=False)
    assert "Ms" not in out.layers and "Ms_min" not in out.var
    assert out.var["velocity_genes"].all()
    assert np.issubdtype(out.layers["spliced"].dtype, np.integer)
    assert out.uns["revelo_preprocess"]["smooth"] is False


def test_simulation_keeps_most_genes_and_the_truth():
    adata = simulate(n_obs=300, n_vars=40, seed=2)
    out = preprocess(adata, **FAST, normalize=False, n_top_genes=None)
    assert out.n_vars >= 36
    truth = adata[out.obs_names, out.var_names]
    for key in ("true_velocity", "true_velocity_u", "true_spliced"):
        np.testing.assert_array_equal(out.layers[key], truth.layers[key])
    pd.testing.assert_series_equal(out.var["true_gamma"], truth.var["true_gamma"])
    pd.testing.assert_series_equal(out.obs["true_t"], truth.obs["true_t"])


def test_empty_cells_and_genes_are_dropped_with_a_warning(sim):
    adata = sim.copy()
    for key in ("spliced", "unspliced"):
        matrix = adata.layers[key].toarray()
        matrix[3] = 0
        matrix[:, 2] = 0
        adata.layers[key] = sparse.csr_matrix(matrix)
    with pytest.warns(UserWarning, match="Dropping 1 cells"):
        out = preprocess(adata, **FAST, min_shared_counts=0, filter_velocity_genes=False)
    assert sim.obs_names[3] not in out.obs_names
    assert sim.var_names[2] not in out.var_names


def test_clear_errors(sim):
    with pytest.raises(ValueError, match="Lower min_shared_counts"):
        preprocess(sim, **FAST, min_shared_counts=10**9)
    with pytest.raises(ValueError, match=r"Only 150 cells.*n_neighbors=149"):
        preprocess(sim, compute_umap=False, n_neighbors=500)
    normalized = sim.copy()
    normalized.layers["spliced"] = normalized.layers["spliced"] * 0.5
    with pytest.raises(ValueError, match="non-integer"):
        preprocess(normalized, **FAST)
    noise = _phase_case()
    noise.layers["unspliced"] = np.random.default_rng(0).permutation(noise.layers["unspliced"])
    with pytest.raises(ValueError, match="filter_velocity_genes=False"):
        preprocess(noise, **FAST, normalize=False)
    missing = sim.copy()
    del missing.layers["unspliced"]
    with pytest.raises(KeyError, match="'unspliced' is missing"):
        preprocess(missing, **FAST)


def test_views_are_accepted_and_left_alone(sim):
    view = sim[:100]
    out = preprocess(view, **FAST)
    assert view.is_view and out.n_obs == 100


def test_real_pancreas_subset(monkeypatch):
    shared = Path("/work/shared/data")
    if not (shared / "pancreas_739.h5ad").is_file():
        pytest.skip("shared data not available")
    monkeypatch.setattr(revelo.settings, "_data_dir", shared)
    adata = revelo.datasets.pancreas(subset="739")
    adata = adata[np.random.default_rng(0).choice(adata.n_obs, 250, replace=False)].copy()
    out = preprocess(adata, n_top_genes=500, n_neighbors=15, n_pcs=20, compute_umap=True)
    settings = out.uns["revelo_preprocess"]
    assert settings["n_genes_shared_counts"] < adata.n_vars
    assert settings["n_genes_highly_variable"] == 500
    assert 50 < out.n_vars <= 500 and out.var["velocity_genes"].all()
    assert out.n_obs == 250 and list(out.obs["clusters"]) == list(adata.obs["clusters"])
    assert out.obsm["X_umap"].shape == (250, 2) and out.obsm["X_pca"].shape == (250, 20)
    ms = out.layers["Ms"]
    assert ms.shape == out.shape and np.isclose(ms.max(0), 1).all()
    assert np.median(out.var["velocity_r2"]) > 0.1
    assert sparse.issparse(out.X) and sparse.issparse(out.layers["spliced_counts"])
