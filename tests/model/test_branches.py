"""REVELO with kinetic branches: the weights query, the outputs, save and load."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import revelo


@pytest.fixture(scope="module")
def branched(simulated):
    revelo.settings.seed = 0
    adata = simulated.copy()
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=32, n_branches=3)
    model.train(max_epochs=20, enable_progress_bar=False)
    return model


def test_branch_weights_are_the_decoders_at_the_posterior_mean(branched):
    weights = branched.get_branch_weights()
    assert list(weights.columns) == ["branch_0", "branch_1", "branch_2"]
    assert list(weights.index) == list(branched.adata.obs_names)
    np.testing.assert_allclose(weights.sum(1), 1.0, rtol=1e-5)
    # Independently: decode the posterior mean of z and read the decoder's branch softmax.
    z = torch.as_tensor(branched.get_latent_representation()[:7])
    with torch.no_grad():
        heads, _ = branched.module.decoder(z)
    expected = heads["branch"]
    np.testing.assert_allclose(weights.to_numpy()[:7], expected.numpy(), rtol=1e-5)
    subset = branched.get_branch_weights(indices=[3, 1])
    pd.testing.assert_frame_equal(subset, weights.iloc[[3, 1]])


def test_rates_are_those_of_the_cells_mean_weights(branched):
    weights = branched.get_branch_weights().to_numpy()
    np.testing.assert_allclose(branched.module.branch_mean.numpy(), weights.mean(0), rtol=1e-5)
    # Independently: mix the centred offsets by the mean weights by hand.
    module = branched.module
    a = module.branch_log_alpha.detach().numpy()
    c = module.branch_switch_shift.detach().numpy()
    a, c = a - a.mean(0), c - c.mean(0)
    w = weights.mean(0)
    base_alpha = np.log1p(np.exp(module.alpha_raw.detach().numpy()))
    logit = module.switch_raw.detach().numpy() + w @ c
    rates = branched.get_rates()
    np.testing.assert_allclose(rates["alpha"], base_alpha * np.exp(w @ a), rtol=1e-4)
    np.testing.assert_allclose(rates["t_switch"], module.t_max / (1 + np.exp(-logit)), rtol=1e-4)
    assert not np.allclose(rates["alpha"], module.rates()[0].detach().numpy())


def test_the_branches_learn_offsets(branched):
    log_alpha, shift = branched.module.branch_offsets()
    assert log_alpha.abs().max() > 1e-3
    assert shift.abs().max() > 1e-3


def test_outputs_hold_the_weights_and_a_one_branch_model_removes_them(branched):
    adata = branched.adata.copy()
    branched.add_outputs(adata, n_samples=2)
    np.testing.assert_allclose(
        adata.obsm["fit_branch_weights"], branched.get_branch_weights().to_numpy(), rtol=1e-6
    )
    assert "n_branches=3" in adata.uns["velocity_params"]["model"]
    revelo.REVELO.setup_anndata(adata)
    one = revelo.REVELO(adata, n_hidden=16, n_branches=1)
    one.train(max_epochs=2, enable_progress_bar=False)
    one.add_outputs(adata, n_samples=2)
    assert "fit_branch_weights" not in adata.obsm
    np.testing.assert_array_equal(one.get_branch_weights().to_numpy(), 1.0)


def test_save_load_keeps_the_branches(branched, tmp_path):
    branched.save(tmp_path / "model", save_anndata=True)
    loaded = revelo.REVELO.load(tmp_path / "model")
    assert loaded.module.n_branches == 3
    pd.testing.assert_frame_equal(loaded.get_branch_weights(), branched.get_branch_weights())
    pd.testing.assert_frame_equal(loaded.get_rates(), branched.get_rates())


@pytest.mark.parametrize("value", [0, 2.5, True])
def test_invalid_number_of_branches(simulated, value):
    adata = simulated.copy()
    revelo.REVELO.setup_anndata(adata)
    with pytest.raises(ValueError, match="n_branches must be a positive integer"):
        revelo.REVELO(adata, n_branches=value)
