"""revelo's outputs, read by scVelo's own functions, mean what scVelo means by them."""

from __future__ import annotations

import logging
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
import torch

import revelo
from revelo._scvelo_keys import curve_likelihood, revelo_rates, scvelo_rate_columns
from revelo._smoothing import neighbor_weights
from revelo._utils import to_dense
from revelo.pl._phase import kinetic_curve

scv = pytest.importorskip("scvelo")

_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _read(name: str) -> ad.AnnData:
    path = _SHARED / name
    if not path.exists():
        pytest.skip(f"{name} is not available")
    return ad.read_h5ad(path)


@pytest.fixture(scope="module")
def pancreas_raw():
    return _read("pancreas_739.h5ad")


@pytest.fixture(scope="module")
def fitted(pancreas_raw):
    """A short fit on 739 pancreas cells and 300 variable genes, with outputs added."""
    torch.set_num_threads(1)
    revelo.settings.seed = 0
    adata = revelo.pp.preprocess(pancreas_raw, n_top_genes=300, compute_umap=False)
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=64)
    model.train(max_epochs=30, enable_progress_bar=False)
    model.add_outputs(adata, n_samples=5, uncertainty=False)
    return model, adata


# --------------------------------------------------------------------------- fitted curve
def _scvelo_curve(adata, gene, t):
    """The curve scVelo's phase portraits draw from ``var["fit_*"]`` at times ``t``."""
    from scvelo.plotting.simulation import compute_dynamics

    _, u, s = compute_dynamics(adata, gene, key="fit", sort=False, t=t)
    return np.ravel(u), np.ravel(s)


def test_scvelo_draws_revelos_curve_from_the_var_keys(fitted):
    model, adata = fitted
    rates = model.get_rates()
    assert (np.abs(np.log(rates["scaling"])) > 0.05).mean() > 0.5  # scaling matters here
    # scVelo replaces a time grid shorter than the number of cells by layers["fit_t"].
    t = np.linspace(0.0, model.module.t_max, adata.n_obs)
    worst = []
    for gene in adata.var_names:
        alpha, beta, gamma, t_switch, scaling = rates.loc[gene]
        u_kinetic, s_revelo = kinetic_curve(alpha, beta, gamma, t_switch, t)
        u_scvelo, s_scvelo = _scvelo_curve(adata, gene, t)
        worst.append(
            max(
                np.abs(u_scvelo - scaling * u_kinetic).max(),
                np.abs(s_scvelo - s_revelo).max(),
            )
        )
    assert max(worst) < 1e-3

    # revelo's own beta under scVelo's fit_beta draws another curve: the check can fail.
    old = adata.copy()
    old.var["fit_beta"] = rates["beta"].to_numpy()
    gene = rates.index[np.argmax(np.abs(np.log(rates["scaling"].to_numpy())))]
    alpha, beta, gamma, t_switch, scaling = rates.loc[gene]
    u_kinetic, _ = kinetic_curve(alpha, beta, gamma, t_switch, t)
    assert np.abs(_scvelo_curve(old, gene, t)[0] - scaling * u_kinetic).max() > 1e-2


def test_rate_columns_round_trip_and_follow_scvelos_convention():
    rates = pd.DataFrame(
        {
            "alpha": [2.0, 0.5],
            "beta": [1.5, 0.8],
            "gamma": [0.3, 0.9],
            "t_switch": [4.0, 9.0],
            "scaling": [0.25, 3.0],
        },
        index=["a", "b"],
    )
    columns = scvelo_rate_columns(rates)
    np.testing.assert_allclose(columns["fit_beta"] * columns["fit_scaling"], rates["beta"])
    var = pd.DataFrame(columns, index=rates.index)
    back = revelo_rates(var)
    for key in rates:
        np.testing.assert_allclose(back[key], rates[key])
    # scVelo's own reader multiplies fit_beta back by fit_scaling.
    from scvelo.tools._em_model_utils import get_vars

    beta = get_vars(ad.AnnData(np.zeros((1, 2)), var=var))[1]
    np.testing.assert_allclose(beta, rates["beta"])


# --------------------------------------------------------------------------- likelihood
def test_fit_likelihood_is_scvelos_likelihood_of_the_same_residuals():
    """scVelo's DynamicsRecovery scores a curve and cell times; curve_likelihood agrees."""
    from scvelo.tools._em_model_core import DynamicsRecovery

    rng = np.random.default_rng(0)
    n_cells, rates = 400, {"alpha": 2.0, "beta": 1.2, "gamma": 0.4, "t_switch": 6.0}
    var = pd.DataFrame(
        scvelo_rate_columns(pd.DataFrame({**rates, "scaling": 0.6}, index=["g"])), index=["g"]
    )
    t = np.sort(rng.uniform(0, 12, n_cells))
    u_kinetic, s = kinetic_curve(*rates.values(), t)
    u = 0.6 * u_kinetic
    observed_u = np.clip(u + rng.normal(0, 0.3 * u.std(), n_cells), 0, None)
    observed_s = np.clip(s + rng.normal(0, 0.3 * s.std(), n_cells), 0, None)
    adata = ad.AnnData(
        np.zeros((n_cells, 1)),
        var=var,
        layers={"Mu": observed_u[:, None], "Ms": observed_s[:, None], "fit_t": t[:, None]},
    )
    expected = DynamicsRecovery(adata, "g", load_pars=True).get_likelihood(t=t)
    assert 0.05 < expected < 1
    ours = curve_likelihood(observed_u[:, None], observed_s[:, None], u[:, None], s[:, None])
    np.testing.assert_allclose(ours, [expected], rtol=1e-6)

    # A worse fit scores lower; too few expressed cells give NaN.
    worse = curve_likelihood(
        observed_u[:, None], observed_s[:, None], 1.3 * u[:, None], s[:, None]
    )
    assert worse[0] < ours[0]
    assert np.isnan(curve_likelihood(np.zeros((5, 1)), np.ones((5, 1)), u[:5, None], s[:5, None]))


def test_dynamics_columns_in_blocks_of_genes_equal_gene_by_gene(monkeypatch):
    # The columns are computed a block of genes at a time (to bound memory); blocks that split
    # the genes give each gene what it gets alone.
    from revelo import _utils
    from revelo._scvelo_keys import dynamics_columns

    rng = np.random.default_rng(0)
    u, s = rng.gamma(2.0, 1.0, (2, 300, 8))
    fit_u, fit_s = u + rng.normal(0, 0.3, u.shape), s + rng.normal(0, 0.3, s.shape)
    monkeypatch.setattr(_utils, "GENE_BLOCK", 3)
    blocked = dynamics_columns(u, s, fit_u, fit_s)
    for gene in range(u.shape[1]):
        alone = dynamics_columns(*(x[:, [gene]] for x in (u, s, fit_u, fit_s)))
        for key, column in alone.items():
            np.testing.assert_allclose(blocked[key][gene], column[0], err_msg=key)
    assert set(blocked) >= {"fit_likelihood", "fit_std_u", "fit_pval_steady", "fit_u0"}
    assert all(len(column) == u.shape[1] for column in blocked.values())


def test_likelihood_columns_on_a_fitted_model(fitted):
    _, adata = fitted
    likelihood = adata.var["fit_likelihood"].to_numpy()
    assert np.isfinite(likelihood).all()
    assert ((likelihood >= 0) & (likelihood <= 1)).all()
    assert 0.1 < np.median(likelihood) < 0.9
    # revelo's own mean log-likelihood keeps its own name; revelo's latent time still
    # weights the genes by it.
    assert "revelo_log_likelihood" in adata.var
    assert not np.allclose(adata.var["revelo_log_likelihood"], likelihood)
    by_log_likelihood = adata.copy()
    by_log_likelihood.var["fit_likelihood"] = adata.var["revelo_log_likelihood"]
    del by_log_likelihood.var["revelo_log_likelihood"]
    revelo.tl.latent_time(by_log_likelihood)
    np.testing.assert_allclose(
        adata.obs["latent_time"], by_log_likelihood.obs["latent_time"], atol=1e-12
    )


def test_scvelo_latent_time_filters_genes_by_fit_likelihood(fitted):
    _, adata = fitted
    adata = adata.copy()
    scv.settings.verbosity = 0
    scv.tl.velocity_graph(adata)
    likelihood = adata.var["fit_likelihood"].to_numpy()
    unfiltered = adata.copy()
    scv.tl.latent_time(unfiltered, min_likelihood=None)
    for threshold in (0.1, float(np.quantile(likelihood, 0.3))):
        filtered = adata.copy()
        scv.tl.latent_time(filtered, min_likelihood=threshold)
        # The same as leaving out by hand the genes whose fit_likelihood is below it.
        by_hand = adata.copy()
        by_hand.layers["fit_t"] = by_hand.layers["fit_t"].copy()
        by_hand.layers["fit_t"][:, likelihood < threshold] = np.nan
        scv.tl.latent_time(by_hand, min_likelihood=None)
        np.testing.assert_allclose(filtered.obs["latent_time"], by_hand.obs["latent_time"])
    # The 30 % quantile leaves genes out, which changes the time.
    assert not np.allclose(filtered.obs["latent_time"], unfiltered.obs["latent_time"])


def test_scvelo_rank_velocity_genes_filters_by_fit_likelihood(fitted):
    _, adata = fitted
    likelihood = adata.var["fit_likelihood"]
    scv.settings.verbosity = 0

    def ranked(min_likelihood):
        work = adata.copy()
        scv.tl.rank_velocity_genes(work, groupby="clusters", min_likelihood=min_likelihood)
        return set(np.ravel(pd.DataFrame(work.uns["rank_velocity_genes"]["names"]).to_numpy()))

    threshold = float(np.quantile(likelihood, 0.3))
    assert (likelihood[list(ranked(None))] > 0.1).all()  # scVelo's default, 0.1
    kept = ranked(threshold)
    assert kept and (likelihood[list(kept)] > threshold).all()
    assert (likelihood[list(ranked(0.0))] <= threshold).any()


# --------------------------------------------------------------------------- layers
def test_spliced_layers_are_in_the_units_of_the_moments(pancreas_raw):
    out = revelo.pp.preprocess(pancreas_raw, n_top_genes=300, compute_umap=False)
    weights = neighbor_weights(out.obsp["connectivities"])
    for layer, moment in (("spliced", "Ms"), ("unspliced", "Mu")):
        smoothed = to_dense(weights @ out.layers[layer])
        np.testing.assert_allclose(smoothed, out.layers[moment], atol=1e-5)
        counts = pancreas_raw[out.obs_names, out.var_names].layers[layer]
        assert (out.layers[f"{layer}_counts"] != counts).nnz == 0


def test_scvelo_stochastic_gamma_matches_scvelos_own_preprocessing(pancreas_raw):
    scv.settings.verbosity = 0
    ours = revelo.pp.preprocess(pancreas_raw, compute_umap=False)
    theirs = pancreas_raw[ours.obs_names].copy()
    scv.pp.filter_genes(theirs, min_shared_counts=20)
    scv.pp.normalize_per_cell(theirs)
    theirs = theirs[:, ours.var_names].copy()
    sc.pp.log1p(theirs)
    scv.pp.moments(theirs, n_pcs=30, n_neighbors=30)
    for adata in (ours, theirs):
        scv.tl.velocity(adata, mode="stochastic", filter_genes=False, use_highly_variable=False)
    # revelo's Ms/Mu are scaled per gene: Mu_scale / Ms_scale converts gamma back. scVelo's
    # second-moment equation (2 Mss - Ms) is not invariant to that scaling, so single genes
    # differ by about a quarter; the median over the genes agrees.
    gamma = ours.var["velocity_gamma"] * ours.var["Mu_scale"] / ours.var["Ms_scale"]
    reference = theirs.var["velocity_gamma"]
    fitted = reference > 0.01
    ratio = np.median(gamma[fitted] / reference[fitted])
    assert 0.9 < ratio < 1.1
    # The raw counts next to scaled moments, as before, mix units and give another gamma.
    mixed = ours.copy()
    for layer in ("spliced", "unspliced"):
        mixed.layers[layer] = mixed.layers[f"{layer}_counts"]
    scv.tl.velocity(mixed, mode="stochastic", filter_genes=False, use_highly_variable=False)
    gamma_mixed = mixed.var["velocity_gamma"] * ours.var["Mu_scale"] / ours.var["Ms_scale"]
    assert not 0.9 < np.median(gamma_mixed[fitted] / reference[fitted]) < 1.1


# --------------------------------------------------------------------------- embedding
@pytest.fixture
def preprocess_log():
    records: list[str] = []

    class _Collect(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    logger = logging.getLogger("revelo.pp._preprocess")
    handler, level = _Collect(), logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield records
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_an_existing_umap_survives_preprocess(preprocess_log):
    adata = _read("dentategyrus_200.h5ad")
    out = revelo.pp.preprocess(adata, n_neighbors=10, n_pcs=10)
    np.testing.assert_array_equal(out.obsm["X_umap"], adata[out.obs_names].obsm["X_umap"])
    assert any("Keeping the input's obsm['X_umap']" in line for line in preprocess_log)
    assert out.uns["revelo_preprocess"]["compute_umap"] is False

    replaced = revelo.pp.preprocess(adata, n_neighbors=10, n_pcs=10, compute_umap=True)
    assert not np.allclose(replaced.obsm["X_umap"], out.obsm["X_umap"])

    del adata.obsm["X_umap"]
    computed = revelo.pp.preprocess(adata, n_neighbors=10, n_pcs=10)
    assert computed.obsm["X_umap"].shape == (computed.n_obs, 2)
    assert computed.uns["revelo_preprocess"]["compute_umap"] is True
    assert (
        "X_umap"
        not in revelo.pp.preprocess(adata, n_neighbors=10, n_pcs=10, compute_umap=False).obsm
    )
