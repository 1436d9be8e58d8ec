"""Count likelihoods on raw counts: accuracy, units, checks and persistence."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import revelo
from revelo.model._init import switch_profile


@pytest.fixture(scope="module")
def nb_data():
    """Negative-binomial counts, preprocessed once; library size is not technical here."""
    raw = revelo.datasets.simulate(n_obs=500, n_vars=40, seed=0, noise="nb", t_max=10.0)
    adata = revelo.pp.preprocess(raw, n_top_genes=None, min_shared_counts=10, normalize=False)
    adata.obs["size_factor"] = 1.0
    return adata


def _fit(adata, likelihood, **setup):
    torch.set_num_threads(1)
    revelo.settings.seed = 0
    adata = adata.copy()
    if likelihood == "gaussian":
        revelo.REVELO.setup_anndata(adata, **setup)
    else:
        revelo.REVELO.setup_anndata(
            adata,
            "spliced_counts",
            "unspliced_counts",
            size_factor_key="size_factor",
            **setup,
        )
    model = revelo.REVELO(adata, n_hidden=64, likelihood=likelihood)
    model.train(max_epochs=150, enable_progress_bar=False)
    adata.layers["velocity"] = model.get_velocity(n_samples=5, return_numpy=True)
    return model, adata


@pytest.fixture(scope="module")
def nb_fit(nb_data):
    return _fit(nb_data, "nb")


def test_nb_model_recovers_the_truth_at_least_as_well_as_gaussian(nb_data, nb_fit):
    _, nb = nb_fit
    _, gaussian = _fit(nb_data, "gaussian")
    nb_accuracy = revelo.tl.velocity_accuracy(nb)
    gaussian_accuracy = revelo.tl.velocity_accuracy(gaussian)
    assert nb_accuracy["sign_agreement"] >= 0.9
    assert nb_accuracy["sign_agreement"] >= gaussian_accuracy["sign_agreement"] - 0.01


def test_count_velocities_are_in_the_scaled_moment_units(nb_data, nb_fit):
    model, _ = nb_fit
    scale = model.module.count_scale.numpy()
    np.testing.assert_allclose(scale[0], nb_data.var["Ms_scale"], rtol=1e-6)
    np.testing.assert_allclose(scale[1], nb_data.var["Mu_scale"], rtol=1e-6)
    # The fitted spliced abundance lies on the scale of Ms: fitted vs smoothed values agree.
    fit_s, _ = model.get_expression_fit(n_samples=3, return_numpy=True)
    ratio = np.median(fit_s.max(0) / nb_data.layers["Ms"].max(0))
    assert 0.5 < ratio < 2.0


def test_count_scale_without_moments_is_a_robust_maximum(nb_data):
    adata = nb_data.copy()
    del adata.var["Ms_scale"], adata.var["Mu_scale"]
    revelo.REVELO.setup_anndata(
        adata, "spliced_counts", "unspliced_counts", size_factor_key="size_factor"
    )
    model = revelo.REVELO(adata, likelihood="poisson")
    expected = np.quantile(adata.layers["spliced_counts"], 0.99, axis=0)
    np.testing.assert_allclose(model.module.count_scale[0].numpy(), expected, rtol=1e-5)


def test_library_sizes_are_normalised_to_the_median(nb_data):
    adata = nb_data.copy()
    revelo.REVELO.setup_anndata(adata, "spliced_counts", "unspliced_counts")
    model = revelo.REVELO(adata, likelihood="nb")
    library = np.asarray(adata.layers["spliced_counts"].sum(1), dtype=float)
    expected = np.median(library[library > 0])  # cells without counts carry no scale
    assert model.module.library_median[0, 0].item() == pytest.approx(expected)


def test_count_likelihood_needs_counts(nb_data):
    adata = nb_data.copy()
    revelo.REVELO.setup_anndata(adata)  # Ms / Mu: not counts
    with pytest.raises(ValueError, match="count"):
        revelo.REVELO(adata, likelihood="nb")
    with pytest.raises(ValueError, match="likelihood='normal' is not one of"):
        revelo.REVELO(adata, likelihood="normal")


def test_preprocess_without_smoothing_feeds_a_count_model(nb_data):
    raw = revelo.datasets.simulate(n_obs=300, n_vars=30, seed=1, noise="nb", t_max=10.0)
    adata = revelo.pp.preprocess(raw, n_top_genes=None, min_shared_counts=10, smooth=False)
    assert "Ms" not in adata.layers
    revelo.REVELO.setup_anndata(adata, "spliced", "unspliced")
    model = revelo.REVELO(adata, n_hidden=32, likelihood="poisson")
    # The switch anchors start from neighbour-averaged counts (the graph preprocess wrote):
    # lower than the same quantiles of the raw counts, which count noise inflates.
    scale = model.module.count_scale.numpy()
    library = np.stack(
        [
            np.asarray(adata.layers[key].sum(1), dtype=float).ravel()
            for key in ("spliced", "unspliced")
        ],
        axis=1,
    )
    size = np.maximum(library / model.module.library_median.numpy()[0], 1e-3)  # as the model
    raw_u, raw_s, _ = switch_profile(
        adata.layers["unspliced"] / size[:, [1]] / scale[1],
        adata.layers["spliced"] / size[:, [0]] / scale[0],
    )
    assert np.median(model.module.switch_u.numpy() / np.maximum(raw_u, 1e-3)) < 0.9
    assert np.median(model.module.switch_s.numpy() / np.maximum(raw_s, 1e-3)) < 0.9
    model.train(max_epochs=5, enable_progress_bar=False)
    velocity = model.get_velocity(n_samples=2, return_numpy=True)
    assert velocity.shape == adata.shape and np.isfinite(velocity).all()


def test_nb_model_save_load_round_trip(nb_fit, tmp_path):
    model, adata = nb_fit
    model.save(tmp_path / "nb")
    loaded = revelo.REVELO.load(tmp_path / "nb", adata.copy())
    assert loaded.module.likelihood == "nb"
    np.testing.assert_array_equal(
        torch.exp(loaded.module.log_theta).detach().numpy(),
        torch.exp(model.module.log_theta).detach().numpy(),
    )
    revelo.settings.seed = 3
    first = model.get_latent_time(n_samples=1, return_numpy=True)
    revelo.settings.seed = 3
    second = loaded.get_latent_time(n_samples=1, return_numpy=True)
    np.testing.assert_allclose(first, second, rtol=1e-6)
