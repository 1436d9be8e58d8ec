"""Kinetic regimes: the states each regime opens, repression from the steady state, old states."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revelo.datasets._simulate import _splicing_solution
from revelo.module import REGIMES, REVELOVAE

# full, induction only, repression only, steady: one gene each, then two more full switches
CODES = [0, 1, 2, 3, 0, 0]


@pytest.fixture(params=["gene", "shared"])
def module(request):
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_genes = len(CODES)
    module = REVELOVAE(
        n_genes,
        n_hidden=16,
        n_latent=3,
        time_mode=request.param,
        alpha_init=rng.uniform(0.5, 2, n_genes),
        beta_init=rng.uniform(0.5, 2, n_genes),
        gamma_init=rng.uniform(0.2, 1, n_genes),
        steady_state_ratio=np.full(n_genes, 0.8),
        residual_scale=np.full(n_genes, 0.1),
        state_prior_margin=0.0,
    ).eval()
    module.set_regimes(np.array(CODES))
    return module


def _data(n_cells=40):
    torch.manual_seed(1)
    return torch.rand(n_cells, len(CODES)), torch.rand(n_cells, len(CODES))


def test_regime_names():
    assert REGIMES == ("full", "induction", "repression", "steady")


def test_closed_states_get_no_posterior_weight(module):
    spliced, unspliced = _data()
    with torch.no_grad():
        fit = module.posterior_fit(spliced, unspliced, use_mean=True)
    probs = fit["state_probs"]  # cells × genes × (induction, steady, repression, off)
    assert probs[:, 1, 2].max() < 1e-6  # induction only: never repressed
    assert probs[:, 2, 0].max() < 1e-6  # repression only: never induced
    torch.testing.assert_close(probs[:, 3, 1], torch.ones(40))  # steady: only the steady state
    torch.testing.assert_close(probs.sum(-1), torch.ones(40, len(CODES)))
    velocity = fit["velocity"]
    assert (velocity[:, 1] >= 0).all()
    assert (velocity[:, 2] <= 0).all()
    torch.testing.assert_close(velocity[:, 3], torch.zeros(40), atol=1e-6, rtol=0)


def test_repression_only_decays_from_the_induction_steady_state(module):
    with torch.no_grad():
        z = torch.randn(7, 3)
        out = module.generative(z)
        alpha, beta, gamma = (rate.numpy().astype(np.float64) for rate in module.rates())
        scaling = module.unspliced_scaling().numpy()
    gene = 2
    t = out["time"][:, gene, 2].numpy().astype(np.float64)
    # independent closed form (the simulator's), from (α/β, α/γ) without transcription
    u, s = _splicing_solution(
        t, 0.0, beta[gene], gamma[gene], alpha[gene] / beta[gene], alpha[gene] / gamma[gene]
    )
    np.testing.assert_allclose(out["mean_s"][:, gene, 2].numpy(), s, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        out["mean_u"][:, gene, 2].numpy(), scaling[gene] * u, rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        out["velocity_s"][:, gene, 2].numpy(), beta[gene] * u - gamma[gene] * s, atol=1e-4
    )
    # it starts at t = 0 in its steady state, and its repression may last the whole axis
    np.testing.assert_array_equal(out["time"][:, gene, 1].numpy(), 0.0)
    assert (t >= 0).all() and (t <= module.t_max).all()


def test_full_switch_genes_are_unchanged_by_the_other_regimes(module):
    with torch.no_grad():
        z = torch.randn(5, 3)
        mixed = module.generative(z)
        module.set_regimes(np.zeros(len(CODES), dtype=int))
        full = module.generative(z)
    for key in ("mean_u", "mean_s", "velocity_s", "state_logits", "time"):
        torch.testing.assert_close(mixed[key][:, [0, 4, 5]], full[key][:, [0, 4, 5]])


def test_state_anchoring_leaves_one_branch_genes_alone(module):
    spliced, unspliced = _data()
    with torch.no_grad():
        out = module.generative(torch.randn(40, 3))
        side = module.state_anchoring(spliced, unspliced, out)
    assert (side[:, [1, 2, 3]] == 0).all()
    assert (side[:, [0, 4, 5]] != 0).any()


def test_state_dicts_without_regimes_load_as_full_switches(module):
    state = {key: value for key, value in module.state_dict().items() if key != "regime"}
    fresh = REVELOVAE(
        len(CODES),
        n_hidden=16,
        n_latent=3,
        time_mode=module.time_mode,
        steady_state_ratio=np.ones(len(CODES)),
        residual_scale=np.ones(len(CODES)),
    )
    fresh.set_regimes(np.array(CODES))
    fresh.load_state_dict(state)
    assert (fresh.regime == 0).all()


def test_set_regimes_checks_its_codes(module):
    with pytest.raises(ValueError, match=r"one code in 0\.\.3 per gene"):
        module.set_regimes(np.array([0, 1]))
    with pytest.raises(ValueError, match=r"one code in 0\.\.3 per gene"):
        module.set_regimes(np.full(len(CODES), 4))
