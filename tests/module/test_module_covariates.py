"""REVELOVAE with count likelihoods and covariates, on hand-built tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revelo._constants import REGISTRY_KEYS
from revelo.module import REVELOVAE, nb_log_prob

N_GENES = 5


def _counts(n_cells=6, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        REGISTRY_KEYS.X_KEY: torch.poisson(torch.full((n_cells, N_GENES), 4.0), generator),
        REGISTRY_KEYS.U_KEY: torch.poisson(torch.full((n_cells, N_GENES), 2.0), generator),
        REGISTRY_KEYS.BATCH_KEY: torch.tensor([[0], [1], [2], [0], [1], [2]]),
    }


def _module(**kwargs):
    torch.manual_seed(0)
    return REVELOVAE(N_GENES, n_hidden=8, n_latent=2, **kwargs).eval()


def test_unknown_likelihood_is_refused():
    with pytest.raises(ValueError, match="likelihood='zinb' is not one of"):
        REVELOVAE(N_GENES, likelihood="zinb")


def test_size_factors_use_each_batchs_median_library():
    median = np.array([[10.0, 5.0], [20.0, 8.0], [40.0, 16.0]])
    module = _module(likelihood="poisson", n_batch=3, library_median=median)
    tensors = _counts()
    size_s, size_u = module.observation.size_factors(
        tensors[REGISTRY_KEYS.X_KEY], tensors[REGISTRY_KEYS.U_KEY], tensors
    )
    batch = tensors[REGISTRY_KEYS.BATCH_KEY].squeeze(-1).numpy()
    np.testing.assert_allclose(
        size_s.numpy(), tensors[REGISTRY_KEYS.X_KEY].sum(1).numpy() / median[batch, 0], rtol=1e-6
    )
    np.testing.assert_allclose(
        size_u.numpy(), tensors[REGISTRY_KEYS.U_KEY].sum(1).numpy() / median[batch, 1], rtol=1e-6
    )
    # A registered size factor replaces both.
    given = {REGISTRY_KEYS.SIZE_FACTOR_KEY: torch.full((6, 1), 0.7)}
    size_s, size_u = module.observation.size_factors(
        tensors[REGISTRY_KEYS.X_KEY], tensors[REGISTRY_KEYS.U_KEY], given
    )
    assert torch.allclose(size_s, torch.full((6,), 0.7))
    assert torch.allclose(size_u, torch.full((6,), 0.7))


def test_nb_state_log_joint_is_the_hand_computed_mixture():
    count_scale = np.array([np.linspace(1, 3, N_GENES), np.linspace(2, 4, N_GENES)])
    module = _module(likelihood="nb", count_scale=count_scale, library_median=[[20.0, 10.0]])
    with torch.no_grad():
        module.log_theta.copy_(torch.log(torch.tensor([[3.0] * N_GENES, [7.0] * N_GENES])))
    tensors = _counts()
    tensors.pop(REGISTRY_KEYS.BATCH_KEY)
    spliced, unspliced = tensors[REGISTRY_KEYS.X_KEY], tensors[REGISTRY_KEYS.U_KEY]
    with torch.no_grad():
        generative = module.generative(module.inference(spliced, unspliced)["qzm"])
        log_joint = module.state_log_joint(spliced, unspliced, generative)
    size_s = spliced.sum(1, keepdim=True) / 20.0
    size_u = unspliced.sum(1, keepdim=True) / 10.0
    scale = torch.as_tensor(count_scale, dtype=torch.float32)
    rate_s = (size_s * scale[0]).unsqueeze(-1) * (generative["mean_s"] + 0.01)
    rate_u = (size_u * scale[1]).unsqueeze(-1) * (generative["mean_u"] + 0.01)
    expected = (
        torch.log_softmax(generative["state_logits"], -1)
        + nb_log_prob(unspliced.unsqueeze(-1), rate_u, torch.tensor(3.0))
        + nb_log_prob(spliced.unsqueeze(-1), rate_s, torch.tensor(7.0))
    )
    torch.testing.assert_close(log_joint, expected)


def test_batch_factors_leave_the_reference_batch_and_kinetics_alone():
    start = np.random.default_rng(0).normal(size=(2, 2, N_GENES)).astype(np.float32)
    module = _module(n_batch=3, batch_log_scale_init=start)
    tensors = _counts()
    with torch.no_grad():
        log_scale = module.log_covariate_scale(tensors)
    batch = tensors[REGISTRY_KEYS.BATCH_KEY].squeeze(-1)
    assert torch.all(log_scale[batch == 0] == 0)
    torch.testing.assert_close(log_scale[batch == 1][0], torch.as_tensor(start[0]))
    torch.testing.assert_close(log_scale[batch == 2][0], torch.as_tensor(start[1]))

    # Training may move single genes' factors but not a batch's mean log-factor.
    with torch.no_grad():
        module.batch_log_scale.add_(torch.randn_like(module.batch_log_scale) + 5.0)
        moved = module.log_covariate_scale(tensors)
    torch.testing.assert_close(
        moved[batch == 1][0].mean(-1), torch.as_tensor(start[0]).mean(-1), atol=1e-5, rtol=0
    )

    # Velocities are in the kinetic units: the same for a cell whatever its batch, while
    # the fitted abundances carry the batch's factors.
    z = torch.zeros(3, 2)
    same_batch = {REGISTRY_KEYS.BATCH_KEY: torch.tensor([[0], [0], [0]])}
    other_batch = {REGISTRY_KEYS.BATCH_KEY: torch.tensor([[0], [1], [2]])}
    with torch.no_grad():
        reference = module.generative(z, same_batch)
        shifted = module.generative(z, other_batch)
    # The decoder sees the batch, so compare the kinetic curve, not the decoded position.
    assert reference["log_covariate_scale"].abs().sum() == 0
    assert shifted["log_covariate_scale"][1:].abs().sum() > 0
    assert not torch.allclose(reference["rho"][1:], shifted["rho"][1:])


def test_encoder_sees_batch_corrected_input():
    start = np.zeros((1, 2, N_GENES), dtype=np.float32)
    start[0, 1] = np.log(3.0)  # batch 1 has 3x the spliced abundance
    start[0, 0] = np.log(0.5)
    module = _module(n_batch=2, batch_log_scale_init=start)
    spliced = torch.rand(4, N_GENES)
    unspliced = torch.rand(4, N_GENES)
    reference = {REGISTRY_KEYS.BATCH_KEY: torch.zeros(4, 1, dtype=torch.long)}
    distorted = {REGISTRY_KEYS.BATCH_KEY: torch.ones(4, 1, dtype=torch.long)}
    with torch.no_grad():
        plain = module.encoder.hidden.fc_layers[0][0]
        # Remove the batch one-hot's own contribution so only the input correction differs.
        plain.weight[:, 2 * N_GENES :] = 0
        a = module.inference(spliced, unspliced, reference)["qzm"]
        b = module.inference(3.0 * spliced, 0.5 * unspliced, distorted)["qzm"]
    torch.testing.assert_close(a, b)


def test_missing_covariates_are_named():
    module = _module(n_batch=2)
    tensors = _counts()
    with pytest.raises(ValueError, match="conditioned on a batch"):
        module.inference(tensors[REGISTRY_KEYS.X_KEY], tensors[REGISTRY_KEYS.U_KEY])


def test_continuous_covariates_act_log_linearly():
    module = _module(n_continuous_cov=1, continuous_center=[2.0], continuous_scale=[4.0])
    with torch.no_grad():
        module.cont_log_scale.copy_(torch.full((1, 2, N_GENES), 0.3))
    cont = {REGISTRY_KEYS.CONT_COVS_KEY: torch.tensor([[2.0], [6.0], [-2.0]])}
    with torch.no_grad():
        log_scale = module.log_covariate_scale(cont)
    np.testing.assert_allclose(log_scale[:, 0, 0].numpy(), [0.0, 0.3, -0.3], atol=1e-6)
