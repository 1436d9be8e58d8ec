"""KL control (β, free bits) and model evidence (importance-weighted bound, diagnostics)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import revelo
from revelo._constants import REGISTRY_KEYS
from revelo.model import _evidence
from revelo.model._data import registered_tensors
from revelo.module import free_bits_kl, importance_weighted_bound, kl_standard_normal

N_LATENT = 4
TRAIN = {"max_epochs": 30, "batch_size": 32, "enable_progress_bar": False}


@pytest.fixture(scope="module")
def adata():
    raw = revelo.datasets.simulate(n_obs=200, n_vars=20, seed=0, noise="normal")
    return revelo.pp.preprocess(raw, n_top_genes=None, min_shared_counts=10, normalize=False)


def _model(adata):
    torch.set_num_threads(1)
    revelo.settings.seed = 0
    data = adata.copy()
    revelo.REVELO.setup_anndata(data)
    return revelo.REVELO(data, n_hidden=16, n_latent=N_LATENT)


@pytest.fixture(scope="module")
def trained(adata):
    model = _model(adata)
    model.train(**TRAIN)
    return model


@torch.inference_mode()
def _elbo_per_cell(model, n_draws: int = 200) -> np.ndarray:
    """E_q[log p(x | z)] − KL per cell from the module's own loss (kl_weight = 1), many draws."""
    module = model.module
    module.eval()
    tensors = registered_tensors(model.adata_manager)
    total = torch.zeros(model.adata.n_obs, dtype=torch.float64)
    for _ in range(n_draws):
        _, _, losses = module(tensors, loss_kwargs={"kl_weight": 1.0})
        per_cell = losses.reconstruction_loss["reconstruction_loss"] + losses.kl_local["kl_local"]
        total -= per_cell.double()
    return (total / n_draws).numpy()


# ---------------------------------------------------------------------- KL control
def test_free_bits_kl_floors_the_batch_mean_per_dimension():
    torch.manual_seed(0)
    mean = torch.randn(64, 3) * torch.tensor([2.0, 0.1, 0.0])
    log_var = torch.zeros(64, 3)
    per_dim = 0.5 * mean.square().mean(0)
    assert torch.allclose(free_bits_kl(mean, log_var), kl_standard_normal(mean, log_var).mean())
    expected = per_dim.clamp_min(0.5).sum()
    assert torch.allclose(free_bits_kl(mean, log_var, 0.5), expected)

    # dimensions under the floor get no gradient from the KL, those above it do
    mean.requires_grad_(True)
    free_bits_kl(mean, log_var, 0.5).backward()
    assert mean.grad[:, 0].abs().sum() > 0
    assert torch.all(mean.grad[:, 1:] == 0)


def test_loss_reports_unclamped_kl_and_scales_only_the_objective(trained):
    module = trained.module
    module.eval()
    tensors = registered_tensors(trained.adata_manager)
    with torch.inference_mode():
        inference = module.inference(tensors[REGISTRY_KEYS.X_KEY], tensors[REGISTRY_KEYS.U_KEY])
        generative = module.generative(inference["z"])
        plain = module.loss(tensors, inference, generative)
        scaled = module.loss(tensors, inference, generative, kl_scale=3.0, free_bits=10.0)
    kl = kl_standard_normal(inference["qzm"], inference["qz_log_var"])
    torch.testing.assert_close(scaled.kl_local["kl_local"], kl)
    torch.testing.assert_close(plain.kl_local["kl_local"], kl)
    torch.testing.assert_close(
        scaled.reconstruction_loss["reconstruction_loss"],
        plain.reconstruction_loss["reconstruction_loss"],
    )
    # every dimension is below a floor of 10 nats here, so the KL term is 3 × 4 × 10
    assert float(kl.mean()) < 10.0
    objective = plain.loss - kl.mean() + 3.0 * N_LATENT * 10.0
    torch.testing.assert_close(scaled.loss, objective)


@pytest.mark.parametrize(
    ("options", "match"),
    [({"kl_weight": 0.0}, "kl_weight"), ({"free_bits": -1.0}, "free_bits")],
)
def test_train_rejects_bad_kl_options(adata, options, match):
    with pytest.raises(ValueError, match=match):
        _model(adata).train(**TRAIN, **options)


# ---------------------------------------------------------------------- marginal likelihood
def test_marginal_ll_is_at_least_the_elbo(trained):
    elbo = _elbo_per_cell(trained)
    marginal = trained.get_marginal_ll(n_mc_samples=100, return_mean=False)
    assert marginal.shape == (trained.adata.n_obs,)
    assert np.isfinite(marginal).all()
    assert marginal.mean() > elbo.mean()
    assert np.mean(marginal >= elbo) > 0.95
    assert trained.get_marginal_ll(n_mc_samples=100) == pytest.approx(marginal.mean(), abs=1.0)


def test_single_sample_bound_is_the_elbo_in_expectation(trained):
    elbo = _elbo_per_cell(trained)
    repeats = np.array([trained.get_marginal_ll(n_mc_samples=1) for _ in range(40)])
    standard_error = repeats.std(ddof=1) / np.sqrt(len(repeats))
    assert abs(repeats.mean() - elbo.mean()) < 4 * standard_error + 0.05


def test_marginal_ll_grows_with_the_number_of_samples(trained):
    means = {
        k: np.mean([trained.get_marginal_ll(n_mc_samples=k) for _ in range(5)])
        for k in (1, 10, 100)
    }
    assert means[1] < means[10] < means[100]


def test_marginal_ll_is_the_same_in_small_passes(trained, monkeypatch):
    indices = np.arange(50)
    whole = trained.get_marginal_ll(indices=indices, n_mc_samples=50)
    monkeypatch.setattr(_evidence, "_DECODE_ELEMENTS", 1)
    passes = trained.get_marginal_ll(indices=indices, n_mc_samples=50, batch_size=16)
    assert passes == pytest.approx(whole, abs=0.5)


def test_marginal_ll_ranks_a_trained_model_above_an_untrained_one(adata, trained):
    untrained = _model(adata)
    assert trained.get_marginal_ll(n_mc_samples=20) > untrained.get_marginal_ll(n_mc_samples=20)


def test_importance_weighted_bound_of_equal_weights_is_the_weight():
    log_weights = torch.full((7, 3), -2.5)
    torch.testing.assert_close(
        importance_weighted_bound(log_weights), torch.full((3,), -2.5, dtype=torch.float64)
    )


def test_marginal_ll_rejects_no_samples(trained):
    with pytest.raises(ValueError, match="n_mc_samples"):
        trained.get_marginal_ll(n_mc_samples=0)


# ---------------------------------------------------------------------- diagnostics
def test_latent_diagnostics_of_a_trained_model(trained):
    diagnostics = trained.get_latent_diagnostics()
    assert isinstance(diagnostics, pd.DataFrame)
    assert list(diagnostics.columns) == ["kl", "mean_variance", "active"]
    assert list(diagnostics.index) == list(range(N_LATENT))
    assert diagnostics["active"].any()
    assert (diagnostics["kl"] >= 0).all()
    mean = trained.get_latent_representation()
    np.testing.assert_allclose(diagnostics["mean_variance"], mean.var(0), rtol=1e-5)
    assert not trained.get_latent_diagnostics(threshold=np.inf)["active"].any()


def test_a_heavy_kl_weight_collapses_the_posterior_and_free_bits_prevent_it(adata):
    collapsed = _model(adata)
    collapsed.train(**TRAIN, kl_weight=50.0)
    diagnostics = collapsed.get_latent_diagnostics()
    assert not diagnostics["active"].any()
    assert (diagnostics["kl"] < 0.01).all()

    kept = _model(adata)
    kept.train(**TRAIN, kl_weight=50.0, free_bits=0.5)
    diagnostics = kept.get_latent_diagnostics()
    assert diagnostics["active"].all()
    assert (diagnostics["kl"] > 0.1).all()


# ---------------------------------------------------------------------- scvi-tools' VAEMixin
def test_vaemixin_elbo_and_reconstruction_error_match_the_module_on_revelos_data(trained):
    # scvi-tools' get_elbo / get_reconstruction_error load the registered fields through their
    # own AnnDataLoader; on revelo's registry they give the module's own ELBO (one draw per
    # cell against the mean of 200 draws, hence the tolerance).
    per_cell = _elbo_per_cell(trained)
    trained.module.eval()
    torch.manual_seed(0)
    elbo = float(trained.get_elbo())
    assert elbo == pytest.approx(per_cell.mean(), rel=0.05)
    reconstruction = float(trained.get_reconstruction_error()["reconstruction_loss"])
    tensors = registered_tensors(trained.adata_manager)
    with torch.inference_mode():
        _, _, losses = trained.module(tensors, loss_kwargs={"kl_weight": 1.0})
    own = float(losses.reconstruction_loss["reconstruction_loss"].mean())  # −log p(u, s | z)
    assert reconstruction == pytest.approx(own, rel=0.05)
    assert trained.get_marginal_ll(n_mc_samples=50) >= elbo - 0.05 * abs(elbo)
