"""Batch- and covariate-aware models on simulated batch effects."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import revelo

BATCH_EFFECT = 0.5


def _preprocess(raw):
    adata = revelo.pp.preprocess(
        raw, n_top_genes=None, min_shared_counts=10, normalize=False, filter_velocity_genes=False
    )
    adata.obs["size_factor"] = 1.0
    return adata


@pytest.fixture(scope="module")
def batches():
    """The same cells with (distorted) and without (clean) a per-batch, per-gene distortion."""
    options = {"n_obs": 600, "n_vars": 40, "seed": 0, "noise": "nb", "t_max": 10.0}
    distorted = revelo.datasets.simulate(**options, n_batches=2, batch_effect=BATCH_EFFECT)
    clean = revelo.datasets.simulate(**options, n_batches=2, batch_effect=0.0)
    return _preprocess(distorted), _preprocess(clean)


def _fit(adata, batch_key):
    torch.set_num_threads(1)
    revelo.settings.seed = 0
    adata = adata.copy()
    revelo.REVELO.setup_anndata(
        adata,
        "spliced_counts",
        "unspliced_counts",
        batch_key=batch_key,
        size_factor_key="size_factor",
    )
    model = revelo.REVELO(adata, n_hidden=64, likelihood="nb")
    model.train(max_epochs=150, enable_progress_bar=False)
    adata.layers["velocity"] = model.get_velocity(n_samples=5, return_numpy=True)
    adata.obsm["X_revelo"] = model.get_latent_representation()
    return model, adata


def _sign_by_batch(adata):
    return {
        batch: revelo.tl.velocity_accuracy(adata[adata.obs["batch"] == batch])["sign_agreement"]
        for batch in adata.obs["batch"].cat.categories
    }


def test_batch_aware_model_removes_the_batch_effect(batches):
    distorted, clean = batches
    _, aware = _fit(distorted, "batch")
    _, unaware = _fit(distorted, None)
    _, reference = _fit(clean, None)
    aware_sign, unaware_sign = _sign_by_batch(aware), _sign_by_batch(unaware)
    reference_sign = _sign_by_batch(reference)
    for batch in reference_sign:
        # As accurate in every batch as a fit to the same cells without a batch effect...
        assert aware_sign[batch] >= reference_sign[batch] - 0.02
        # ...and better than ignoring the batches,
        assert aware_sign[batch] >= unaware_sign[batch] + 0.01
    # clearly so on average (the benchmark shows the gap at 1000 cells x 100 genes).
    gain = np.mean([aware_sign[batch] - unaware_sign[batch] for batch in aware_sign])
    assert gain >= 0.025
    # The latent space mixes the batches; ignoring them separates the batches.
    aware_mixing = revelo.tl.batch_mixing(aware, batch_key="batch").mean
    unaware_mixing = revelo.tl.batch_mixing(unaware, batch_key="batch").mean
    assert aware_mixing > 0.8
    assert unaware_mixing < 0.3


def test_learned_batch_factors_follow_the_simulated_ones(batches):
    distorted, _ = batches
    model, adata = _fit(distorted, "batch")
    with torch.no_grad():
        tensors = {"batch": torch.tensor([[0], [1]])}
        log_scale = model.module.log_covariate_scale(tensors).numpy()
    learned = log_scale[1] - log_scale[0]  # (u, s) × genes
    for row, layer in enumerate(("u", "s")):
        factor = adata.varm[f"true_batch_factor_{layer}"]
        truth = np.log(factor[:, 1] / factor[:, 0])
        assert np.corrcoef(learned[row], truth)[0, 1] > 0.9


def test_categorical_and_continuous_covariates_condition_the_model(batches):
    distorted, _ = batches
    adata = distorted.copy()
    rng = np.random.default_rng(0)
    adata.obs["donor"] = rng.choice(["a", "b", "c"], adata.n_obs)
    adata.obs["percent_mito"] = rng.uniform(0, 10, adata.n_obs)
    revelo.REVELO.setup_anndata(
        adata,
        batch_key="batch",
        categorical_covariate_keys=["donor"],
        continuous_covariate_keys=["percent_mito"],
    )
    model = revelo.REVELO(adata, n_hidden=32)
    assert model.module.n_cats_per_cov == [3]
    assert model.module.cont_center.item() == pytest.approx(adata.obs["percent_mito"].mean())
    model.train(max_epochs=3, enable_progress_bar=False)
    velocity = model.get_velocity(n_samples=2, return_numpy=True)
    assert np.isfinite(velocity).all()
    # The continuous covariate reaches the encoder: moving it moves the latent means.
    before = model.get_latent_representation()
    other = adata.copy()
    for key in ("_scvi_uuid", "_scvi_manager_uuid"):
        del other.uns[key]
    other.obs["percent_mito"] += 5.0
    after = model.get_latent_representation(other)
    assert not np.allclose(before, after)


def test_covariate_columns_are_checked(batches):
    distorted, _ = batches
    adata = distorted.copy()
    with pytest.raises(KeyError, match="no column 'sample'"):
        revelo.REVELO.setup_anndata(adata, batch_key="sample")
    adata.obs["sample"] = adata.obs["batch"].astype(object)
    adata.obs.iloc[0, adata.obs.columns.get_loc("sample")] = None
    with pytest.raises(ValueError, match="missing values"):
        revelo.REVELO.setup_anndata(adata, batch_key="sample")
    adata.obs["depth"] = np.inf
    with pytest.raises(ValueError, match="numeric and finite"):
        revelo.REVELO.setup_anndata(adata, continuous_covariate_keys=["depth"])
    assert "_scvi_batch" not in distorted.obs
