"""Kinetic branches: per-cell α and switch time mixed from per-branch offsets."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scvi.module._constants import MODULE_KEYS

from revelo._constants import REGISTRY_KEYS
from revelo.datasets._simulate import _splicing_solution
from revelo.module import REVELOVAE

N_GENES = 5


def _module(n_branches: int, time_mode: str = "gene") -> REVELOVAE:
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    return REVELOVAE(
        N_GENES,
        n_hidden=16,
        n_latent=3,
        time_mode=time_mode,
        alpha_init=rng.uniform(0.5, 2, N_GENES),
        beta_init=rng.uniform(0.5, 2, N_GENES),
        gamma_init=rng.uniform(0.2, 1, N_GENES),
        switch_time_init=rng.uniform(4, 12, N_GENES),
        n_branches=n_branches,
    ).eval()


def _set_offsets(module: REVELOVAE, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        module.branch_log_alpha.copy_(
            torch.randn(module.branch_log_alpha.shape, generator=generator)
        )
        module.branch_switch_shift.copy_(
            torch.randn(module.branch_switch_shift.shape, generator=generator)
        )


def _force_branch(module: REVELOVAE, branch: int) -> None:
    """Make the decoder put every cell on one branch (weight 1 up to float rounding)."""
    with torch.no_grad():
        module.decoder.branch_logits.weight.zero_()
        module.decoder.branch_logits.bias.fill_(-1e3)
        module.decoder.branch_logits.bias[branch] = 0.0


def test_one_branch_builds_no_branch_parameters():
    keys = set(_module(1).state_dict())
    assert not any("branch" in key for key in keys)
    assert {"branch_log_alpha", "branch_switch_shift", "decoder.branch_logits.weight"} <= set(
        _module(3).state_dict()
    )


def test_offsets_are_centred_and_the_per_gene_values_their_mean():
    module = _module(3)
    _set_offsets(module)
    log_alpha, shift = module.branch_offsets()
    torch.testing.assert_close(log_alpha.mean(0), torch.zeros(N_GENES), atol=1e-6, rtol=0)
    torch.testing.assert_close(shift.mean(0), torch.zeros(N_GENES), atol=1e-6, rtol=0)
    # Equal weights on all branches give the per-gene α and switch time.
    alpha, t_switch = module.branch_kinetics(torch.full((2, 3), 1 / 3))
    torch.testing.assert_close(alpha, module.rates()[0].expand(2, -1))
    torch.testing.assert_close(t_switch, module.switch_time().expand(2, -1))


def test_branch_kinetics_by_hand():
    module = _module(3)
    _set_offsets(module)
    weights = torch.tensor([[0.2, 0.5, 0.3]])
    alpha, t_switch = module.branch_kinetics(weights)
    raw_a = module.branch_log_alpha.detach().numpy()
    raw_c = module.branch_switch_shift.detach().numpy()
    a = raw_a - raw_a.mean(0)
    c = raw_c - raw_c.mean(0)
    w = weights.numpy()[0]
    base_alpha = np.log1p(np.exp(module.alpha_raw.detach().numpy()))
    expected_alpha = base_alpha * np.exp(sum(w[k] * a[k] for k in range(3)))
    logit = module.switch_raw.detach().numpy() + sum(w[k] * c[k] for k in range(3))
    expected_switch = module.t_max / (1 + np.exp(-logit))
    np.testing.assert_allclose(alpha.detach().numpy()[0], expected_alpha, rtol=1e-5)
    np.testing.assert_allclose(t_switch.detach().numpy()[0], expected_switch, rtol=1e-5)


@pytest.mark.parametrize("branch", [0, 2])
def test_cells_on_one_branch_follow_its_splicing_solution(branch):
    module = _module(3)
    _set_offsets(module)
    _force_branch(module, branch)
    z = torch.randn(30, 3, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = module.generative(z)
    log_alpha, shift = module.branch_offsets()
    alpha = (module.rates()[0] * torch.exp(log_alpha[branch])).detach().numpy()
    t_switch = (module.t_max * torch.sigmoid(module.switch_raw + shift[branch])).detach().numpy()
    beta, gamma = (rate.detach().numpy() for rate in module.rates()[1:])
    np.testing.assert_allclose(out["t_switch"][0].numpy(), t_switch, rtol=1e-5)
    # The induction state against the independent solution of the splicing equations.
    t_induction = (out["rho"] * torch.as_tensor(t_switch)).numpy()
    zero = np.zeros_like(t_induction)
    u, s = _splicing_solution(t_induction, alpha, beta, gamma, zero, zero)
    scaling = module.unspliced_scaling().detach().numpy()
    np.testing.assert_allclose(out["mean_u"][..., 0].numpy(), scaling * u, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(out["mean_s"][..., 0].numpy(), s, rtol=1e-4, atol=1e-6)
    # The induction steady state is the branch's α/β, α/γ.
    np.testing.assert_allclose(
        out["mean_s"][..., 1].numpy(), np.tile(alpha / gamma, (30, 1)), 1e-5
    )


def test_branches_differ_only_where_their_offsets_do():
    module = _module(2)
    with torch.no_grad():
        module.branch_log_alpha[0, 1] = 1.0  # gene 1's α differs between the branches
    z = torch.randn(10, 3, generator=torch.Generator().manual_seed(3))
    outputs = []
    for branch in (0, 1):
        _force_branch(module, branch)
        with torch.no_grad():
            outputs.append(module.generative(z)["mean_s"])
    different = (outputs[0] - outputs[1]).abs().amax(dim=(0, 2))
    assert different[1] > 1e-2
    torch.testing.assert_close(different[[0, 2, 3, 4]], torch.zeros(4))


@pytest.mark.parametrize("time_mode", ["gene", "shared"])
def test_gradients_reach_the_branch_parameters(time_mode):
    module = _module(3, time_mode).train()
    # With all offsets 0 (the start) the weights change nothing; the offsets learn first.
    _set_offsets(module)
    spliced = torch.rand(16, N_GENES, generator=torch.Generator().manual_seed(4))
    unspliced = torch.rand(16, N_GENES, generator=torch.Generator().manual_seed(5))
    tensors = {REGISTRY_KEYS.X_KEY: spliced, REGISTRY_KEYS.U_KEY: unspliced}
    inference = module.inference(spliced, unspliced)
    generative = module.generative(inference[MODULE_KEYS.Z_KEY])
    module.loss(tensors, inference, generative, kl_weight=0.5).loss.backward()
    for parameter in (
        module.branch_log_alpha,
        module.branch_switch_shift,
        module.decoder.branch_logits.weight,
    ):
        assert parameter.grad is not None
        assert parameter.grad.abs().sum() > 0
