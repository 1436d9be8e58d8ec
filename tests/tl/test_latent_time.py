from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import spearmanr

import revelo

from ._fixtures import trajectory_adata


def _with_gene_times(seed=0):
    """Per-gene times: noisy, differently scaled monotone functions of the true order."""
    adata = trajectory_adata(seed=seed)
    rng = np.random.default_rng(seed)
    order = adata.obs["order"].to_numpy()
    power = rng.uniform(0.5, 2.0, adata.n_vars)
    t_max = rng.uniform(5, 20, adata.n_vars)
    times = t_max * order[:, None] ** power + rng.normal(0, 2.0, adata.shape)
    times = np.clip(times, 0, t_max)
    # a few genes fitted backwards, one gene not fitted at all
    times[:, :4] = t_max[:4] - times[:, :4]
    times[:, 5] = np.nan
    adata.layers["fit_t"] = times
    return adata


def test_recovers_order():
    adata = _with_gene_times()
    revelo.tl.latent_time(adata)
    time = adata.obs["latent_time"].to_numpy()
    assert time.min() == 0 and time.max() == 1
    assert spearmanr(time, adata.obs["order"]).statistic > 0.95


def test_root_sets_direction():
    adata = _with_gene_times()
    last = adata.obs_names[-5:]
    reversed_time = revelo.tl.latent_time(adata, root_cells=last, copy=True).obs["latent_time"]
    assert spearmanr(reversed_time, adata.obs["order"]).statistic < -0.95
    assert reversed_time.iloc[-5:].max() < 0.1

    adata.obs["is_root"] = np.arange(adata.n_obs) < 5
    revelo.tl.latent_time(adata, root_key="is_root", key_added="t_root")
    assert spearmanr(adata.obs["t_root"], adata.obs["order"]).statistic > 0.95
    by_position = revelo.tl.latent_time(adata, root_cells=[0, 1, 2, 3, 4], copy=True)
    np.testing.assert_allclose(by_position.obs["latent_time"], adata.obs["t_root"])


def test_likelihood_weights_and_errors():
    adata = _with_gene_times()
    adata.var["fit_likelihood"] = np.linspace(0.1, 1.0, adata.n_vars)
    revelo.tl.latent_time(adata, min_likelihood=0.3, smooth=False)
    assert spearmanr(adata.obs["latent_time"], adata.obs["order"]).statistic > 0.9
    with pytest.raises(ValueError, match="not both"):
        revelo.tl.latent_time(adata, root_key="x", root_cells=[0])
    with pytest.raises(KeyError, match="nope"):
        revelo.tl.latent_time(adata, root_cells=["nope"])
    del adata.layers["fit_t"]
    with pytest.raises(KeyError, match="add_outputs"):
        revelo.tl.latent_time(adata)


def test_count_likelihoods_weight_genes_by_rank():
    # Log-probabilities of counts are all negative; the genes are then weighted by the rank of
    # their likelihood, the same as passing those ranks as (positive) likelihoods.
    adata = _with_gene_times()
    rng = np.random.default_rng(0)
    adata.layers["fit_t"] = adata.layers["fit_t"] + rng.normal(0, 0.3, adata.shape)
    negative = -rng.uniform(1, 10, adata.n_vars)
    ranked = adata.copy()
    adata.var["fit_likelihood"] = negative
    usable = ~np.isnan(adata.layers["fit_t"]).all(0)  # one gene has no times
    rank = np.ones(adata.n_vars)
    rank[usable] = (np.argsort(np.argsort(negative[usable])) + 1.0) / usable.sum()
    ranked.var["fit_likelihood"] = rank
    revelo.tl.latent_time(adata, smooth=False)
    revelo.tl.latent_time(ranked, smooth=False)
    # Equal up to weighted-median ties at exactly half the weight (float rounding).
    same = np.isclose(adata.obs["latent_time"], ranked.obs["latent_time"])
    assert same.mean() >= 0.97
    assert spearmanr(adata.obs["latent_time"], adata.obs["order"]).statistic > 0.9
    # Unweighted, the result differs.
    del ranked.var["fit_likelihood"]
    revelo.tl.latent_time(ranked, smooth=False)
    assert not np.allclose(adata.obs["latent_time"], ranked.obs["latent_time"])


def _reference_time(times, weights):
    """Per-gene ranks over all cells, then each cell's weighted median, one cell at a time."""
    from scipy.stats import rankdata

    genes = ~np.isnan(times).all(0) & (weights > 0)
    times, weights = times[:, genes], weights[genes]
    ranks = rankdata(times, axis=0, nan_policy="omit")
    ranks = (ranks - 1) / (np.sum(~np.isnan(times), axis=0) - 1)
    shared = np.empty(len(times))
    for cell, row in enumerate(ranks):
        known = ~np.isnan(row)
        values, w = row[known], weights[known]
        order = np.argsort(values)
        cumulative = np.cumsum(w[order])
        shared[cell] = values[order][np.searchsorted(cumulative, cumulative[-1] / 2)]
    shared -= shared.min()
    return shared / shared.max()


def test_blocks_of_genes_and_cells_give_the_whole_computation(monkeypatch):
    # Ranks are taken a block of genes at a time and medians a block of cells at a time (to
    # bound memory); blocks that split both give the computation over the whole array.
    from revelo import _utils
    from revelo.tl import _latent_time

    adata = _with_gene_times(seed=3)
    adata.var["fit_likelihood"] = np.random.default_rng(1).uniform(0.1, 1, adata.n_vars)
    monkeypatch.setattr(_utils, "GENE_BLOCK", 3)
    monkeypatch.setattr(_latent_time, "_CELL_BLOCK", 7)
    revelo.tl.latent_time(adata, smooth=False)
    weights = adata.var["fit_likelihood"].to_numpy() * adata.var["velocity_genes"].to_numpy()
    expected = _reference_time(adata.layers["fit_t"], weights)
    np.testing.assert_allclose(adata.obs["latent_time"], expected, atol=1e-6)
