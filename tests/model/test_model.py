"""REVELO end to end: training recovers the truth, queries, save/load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

import revelo


def _seeded(fn, *args, **kwargs):
    torch.manual_seed(0)
    return fn(*args, **kwargs)


def test_training_recovers_the_simulated_truth(trained):
    adata = trained.adata
    velocity = trained.get_velocity(n_samples=10, return_numpy=True)
    truth = adata.layers["true_velocity"]
    moving = np.abs(truth) > 1e-3 * np.abs(truth).max(0)
    agreement = (np.sign(velocity) == np.sign(truth))[moving].mean()
    assert agreement >= 0.9

    times = trained.get_latent_time(n_samples=10, return_numpy=True)
    true_t = adata.obs["true_t"].to_numpy()
    per_gene = [spearmanr(times[:, j], true_t).statistic for j in range(adata.n_vars)]
    assert np.median(per_gene) >= 0.9


def test_training_decreases_the_elbo(trained):
    elbo = trained.history["elbo_train"]["elbo_train"].to_numpy()
    assert elbo[-1] < elbo[0]
    assert "elbo_validation" in trained.history


def test_query_shapes_and_indices(trained):
    adata = trained.adata
    n, g = adata.shape
    idx = [3, 1, 4]
    latent = trained.get_latent_representation()
    assert latent.shape == (n, trained.module.n_latent)

    for query in (trained.get_latent_time, trained.get_velocity, trained.get_gene_likelihood):
        frame = query(indices=idx, n_samples=2)
        assert isinstance(frame, pd.DataFrame)
        assert frame.shape == (3, g)
        assert list(frame.index) == list(adata.obs_names[idx])
        assert list(frame.columns) == list(adata.var_names)
        assert np.isfinite(frame.to_numpy()).all()
        assert isinstance(query(n_samples=1, return_numpy=True), np.ndarray)

    unspliced = trained.get_velocity(indices=idx, n_samples=2, velo_mode="unspliced")
    assert unspliced.shape == (3, g)
    with pytest.raises(ValueError, match="velo_mode"):
        trained.get_velocity(velo_mode="total")

    soft, _ = trained.get_state_assignment(indices=idx, n_samples=2)
    assert soft.shape == (3, g, 4)
    np.testing.assert_allclose(soft.sum(-1), 1.0, rtol=1e-5)
    hard, _ = trained.get_state_assignment(indices=idx, n_samples=2, hard_assignment=True)
    assert hard.shape == (3, g)
    assert set(np.unique(hard.to_numpy().astype(str))) <= set(revelo.REVELO.state_names)

    fit_s, fit_u = trained.get_expression_fit(indices=idx, n_samples=2)
    assert fit_s.shape == fit_u.shape == (3, g)

    rates = trained.get_rates()
    assert list(rates.columns) == ["alpha", "beta", "gamma", "t_switch", "scaling"]
    assert (rates[["alpha", "beta", "gamma", "scaling"]] > 0).all().all()
    assert ((rates["t_switch"] > 0) & (rates["t_switch"] < trained.module.t_max)).all()


def test_latent_time_is_on_the_time_axis(trained):
    times = trained.get_latent_time(n_samples=3, return_numpy=True)
    assert times.min() >= 0 and times.max() <= trained.module.t_max


def test_print_model(trained, capsys):
    print(trained)
    text = capsys.readouterr().out
    assert "REVELO" in text and "n_latent=10" in text and "Training status: Trained" in text


def test_save_load_round_trip(trained, tmp_path):
    trained.save(tmp_path / "model", save_anndata=False)
    with pytest.raises(ValueError, match="overwrite"):
        trained.save(tmp_path / "model")
    loaded = revelo.REVELO.load(tmp_path / "model", adata=trained.adata.copy())
    np.testing.assert_array_equal(
        trained.get_latent_representation(), loaded.get_latent_representation()
    )
    pd.testing.assert_frame_equal(trained.get_rates(), loaded.get_rates())
    np.testing.assert_array_equal(
        _seeded(trained.get_velocity, n_samples=3, return_numpy=True),
        _seeded(loaded.get_velocity, n_samples=3, return_numpy=True),
    )


def test_add_outputs_writes_documented_keys(trained):
    adata = trained.adata.copy()
    trained.add_outputs(adata, n_samples=3)
    for key in ("velocity", "velocity_u", "fit_t", "fit_s", "fit_u"):
        assert adata.layers[key].shape == adata.shape
    for key in ("fit_alpha", "fit_beta", "fit_gamma", "fit_t_", "fit_scaling", "fit_likelihood"):
        assert np.isfinite(adata.var[key]).all()
    assert adata.var["velocity_genes"].dtype == bool
    latent_time = adata.obs["latent_time"].to_numpy()
    assert latent_time.min() >= 0 and latent_time.max() <= 1
    assert spearmanr(latent_time, adata.obs["true_t"]).statistic > 0.8
    assert adata.uns["velocity_params"]["n_samples"] == 3
