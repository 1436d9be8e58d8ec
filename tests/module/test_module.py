"""REVELOVAE on hand-built tensors: shapes, the likelihood, and velocity as a time derivative."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revelo._constants import REGISTRY_KEYS
from revelo.module import REVELOVAE, induction, repression, uniform_clock_penalty


@pytest.fixture
def module():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    n_genes = 6
    return REVELOVAE(
        n_genes,
        n_hidden=16,
        n_latent=3,
        alpha_init=rng.uniform(0.5, 2, n_genes),
        beta_init=rng.uniform(0.5, 2, n_genes),
        gamma_init=rng.uniform(0.2, 1, n_genes),
    ).eval()


def _tensors(n_cells=5, n_genes=6):
    torch.manual_seed(1)
    return {
        REGISTRY_KEYS.X_KEY: torch.rand(n_cells, n_genes),
        REGISTRY_KEYS.U_KEY: torch.rand(n_cells, n_genes),
    }


def test_forward_returns_per_cell_losses(module):
    _, _, loss = module(_tensors())
    assert loss.loss.ndim == 0 and torch.isfinite(loss.loss)
    assert loss.reconstruction_loss["reconstruction_loss"].shape == (5,)
    assert loss.kl_local["kl_local"].shape == (5,)


def test_velocity_is_the_time_derivative_of_the_fitted_trajectory(module):
    with torch.no_grad():
        z = torch.randn(4, 3)
        out = module.generative(z)
        alpha, beta, gamma = module.rates()
        t_switch = module.switch_time()
        c = module.unspliced_scaling()
        h = 1e-3
        # Induction state: finite difference of the closed form at the cell's induction time.
        t_ind = t_switch * out["rho"]
        _, s_plus = induction(alpha, beta, gamma, t_ind + h)
        _, s_minus = induction(alpha, beta, gamma, t_ind - h)
        u_plus, _ = induction(alpha, beta, gamma, t_ind + h)
        u_minus, _ = induction(alpha, beta, gamma, t_ind - h)
        torch.testing.assert_close(
            out["velocity_s"][..., 0], (s_plus - s_minus) / (2 * h), rtol=1e-2, atol=1e-3
        )
        torch.testing.assert_close(
            out["velocity_u"][..., 0], c * (u_plus - u_minus) / (2 * h), rtol=1e-2, atol=1e-3
        )
        # Repression state: derivative in the time elapsed since the switch.
        u_sw, s_sw = induction(alpha, beta, gamma, t_switch)
        t_rep = (module.t_max - t_switch) * out["tau"]
        _, s_plus = repression(u_sw, s_sw, beta, gamma, t_rep + h)
        _, s_minus = repression(u_sw, s_sw, beta, gamma, t_rep - h)
        torch.testing.assert_close(
            out["velocity_s"][..., 2], (s_plus - s_minus) / (2 * h), rtol=1e-2, atol=1e-3
        )
        # Steady states do not move.
        assert torch.all(out["velocity_s"][..., (1, 3)] == 0)


def test_each_state_sits_on_the_trajectory_at_its_time(module):
    # Induction, repression and the off state report the time at which the closed-form
    # trajectory passes through their expected (u, s); the off state (0, 0) is where
    # induction starts, at t = 0, which repression only approaches.
    with torch.no_grad():
        out = module.generative(torch.randn(4, 3))
        alpha, beta, gamma = module.rates()
        t_switch = module.switch_time()
        c = module.unspliced_scaling()
        time = out["time"]
        assert torch.all(time[..., 3] == 0)
        torch.testing.assert_close(time[..., 1], t_switch.expand_as(time[..., 1]))
        for k in (0, 3):
            u, s = induction(alpha, beta, gamma, time[..., k])
            torch.testing.assert_close(out["mean_u"][..., k], c * u)
            torch.testing.assert_close(out["mean_s"][..., k], s)
        u_sw, s_sw = induction(alpha, beta, gamma, t_switch)
        u, s = repression(u_sw, s_sw, beta, gamma, time[..., 2] - t_switch)
        torch.testing.assert_close(out["mean_u"][..., 2], c * u)
        torch.testing.assert_close(out["mean_s"][..., 2], s)


def test_state_log_joint_is_a_normalized_mixture(module):
    tensors = _tensors()
    with torch.no_grad():
        inference = module.inference(tensors["X"], tensors["U"])
        generative = module.generative(inference["z"])
        log_joint = module.state_log_joint(tensors["X"], tensors["U"], generative)
    # With u and s at each state's mean, that state's log-density is the Gaussian peak.
    assert log_joint.shape == (5, 6, 4)
    probs = torch.softmax(generative["state_logits"], -1)
    torch.testing.assert_close(probs.sum(-1), torch.ones(5, 6))


def test_posterior_fit_weights_states_by_responsibility(module):
    tensors = _tensors()
    torch.manual_seed(3)
    with torch.no_grad():
        fit = module.posterior_fit(tensors["X"], tensors["U"], use_mean=True)
        inference = module.inference(tensors["X"], tensors["U"])
        generative = module.generative(inference["qzm"])
        log_joint = module.state_log_joint(tensors["X"], tensors["U"], generative)
    responsibilities = torch.softmax(log_joint, -1)
    torch.testing.assert_close(fit["state_probs"], responsibilities)
    torch.testing.assert_close(fit["fit_s"], (responsibilities * generative["mean_s"]).sum(-1))
    torch.testing.assert_close(fit["log_likelihood"], torch.logsumexp(log_joint, -1))


def test_posterior_time_leaves_out_the_off_state(module):
    # Cells at (0, 0) are mostly in the off state; their time comes from the other three
    # states' responsibilities, renormalised, not from the off state's own time.
    tensors = _tensors()
    spliced, unspliced = tensors["X"].clone(), tensors["U"].clone()
    spliced[:2], unspliced[:2] = 0.0, 0.0
    with torch.no_grad():
        fit = module.posterior_fit(spliced, unspliced, use_mean=True)
        generative = module.generative(module.inference(spliced, unspliced)["qzm"])
        log_joint = module.state_log_joint(spliced, unspliced, generative)
    probs = torch.softmax(log_joint.double(), -1)
    assert (probs[:2, :, 3] > 0.5).float().mean() > 0.5  # the off state dominates there
    kept = probs[..., :3] / probs[..., :3].sum(-1, keepdim=True)
    expected = (kept * generative["time"][..., :3].double()).sum(-1)
    torch.testing.assert_close(fit["time"].double(), expected, rtol=1e-4, atol=1e-4)
    with_off = (probs * generative["time"].double()).sum(-1)
    assert (fit["time"][:2].double() - with_off[:2]).abs().max() > 0.1


@pytest.mark.parametrize("margin", [0.0, 1.5])
def test_state_anchoring_by_hand(margin):
    """Side log-probabilities against a hand computation, and the margin around the line."""
    module = REVELOVAE(
        2,
        n_hidden=8,
        n_latent=2,
        steady_state_ratio=np.array([0.5, 0.5]),
        residual_scale=np.array([0.1, 0.1]),
        state_prior_margin=margin,
    )
    # Residuals r = (u − 0.5 s) / 0.1: gene 0 on the line (0), gene 1 well above it (+3).
    spliced = torch.tensor([[1.0, 1.0]])
    unspliced = torch.tensor([[0.5, 0.8]])
    # State probabilities (induction, induced steady, repression, repressed steady).
    probs = torch.tensor([[[0.4, 0.1, 0.3, 0.2], [0.1, 0.1, 0.6, 0.2]]])
    outputs = {"state_logits": probs.log(), "log_covariate_scale": None}
    side = module.state_anchoring(spliced, unspliced, outputs)

    p_line, p_above = 0.5, 1 / (1 + np.exp(-9.0))
    line = p_line * np.log(0.5) + (1 - p_line) * np.log(0.5)
    above = p_above * np.log(0.2) + (1 - p_above) * np.log(0.8)
    if margin > 0:
        line *= 1 / (1 + np.exp(8.0 * margin))  # |r| = 0: well inside the margin
        above *= 1 / (1 + np.exp(-8.0 * (3.0 - margin)))
    np.testing.assert_allclose(side.detach().numpy(), [[line, above]], rtol=1e-5, atol=1e-7)
    if margin > 0:
        # A cell on the line is not pulled toward either side; one far off it is.
        assert abs(side[0, 0].item()) < 1e-4 < abs(side[0, 1].item())


def test_uniform_clock_penalty_by_hand():
    # Two values: the slices of [0, 1] have midpoints 0.25 and 0.75, whatever the order.
    penalty = uniform_clock_penalty(torch.tensor([0.9, 0.1]))
    torch.testing.assert_close(penalty, torch.tensor(0.15**2))
    # Evenly spread values cost nothing; the same number bunched together costs (i/n − c)².
    n = 8
    grid = (torch.arange(n) + 0.5) / n
    assert uniform_clock_penalty(grid.flip(0)).item() == pytest.approx(0.0, abs=1e-12)
    bunched = torch.full((n,), 0.9)
    expected = ((grid - 0.9) ** 2).mean()
    torch.testing.assert_close(uniform_clock_penalty(bunched), expected)


def _shared_module(**kwargs):
    torch.manual_seed(0)
    return REVELOVAE(6, n_hidden=16, n_latent=3, time_mode="shared", **kwargs)


def test_shared_clock_loss_adds_the_uniform_penalty():
    tensors = _tensors()
    losses = {}
    for weight in (0.0, 2.0):
        module = _shared_module(clock_uniform_weight=weight).eval()
        torch.manual_seed(5)
        _, generative, loss = module(tensors)
        losses[weight] = loss.loss
    clock = generative["cell_time"] / module.t_max
    expected = 2.0 * 6 * uniform_clock_penalty(clock)
    torch.testing.assert_close(losses[2.0] - losses[0.0], expected)


def test_shared_clock_decides_the_side_of_the_switch():
    module = _shared_module().eval()
    # Switch times spread over the axis, so some genes are before and some after the clock.
    with torch.no_grad():
        module.switch_raw.copy_(torch.logit(torch.linspace(0.1, 0.9, 6)))
    tensors = _tensors(n_cells=40)
    with torch.no_grad():
        fit = module.posterior_fit(tensors["X"], tensors["U"], use_mean=True)
        generative = module.generative(module.inference(tensors["X"], tensors["U"])["qzm"])
        log_joint = module.state_log_joint(tensors["X"], tensors["U"], generative)
    before = fit["time"] < module.switch_time()
    assert before.any() and (~before).any()
    probs = fit["state_probs"]
    # No mass on the other side of the switch; within a side, the data's responsibilities.
    assert torch.all(probs[..., 2:].sum(-1)[before] == 0)
    assert torch.all(probs[..., :2].sum(-1)[~before] == 0)
    torch.testing.assert_close(probs.sum(-1), torch.ones_like(fit["time"]))
    within = torch.where(
        before.unsqueeze(-1),
        torch.softmax(log_joint[..., :2], -1).repeat(1, 1, 2) * torch.tensor([1, 1, 0, 0]),
        torch.softmax(log_joint[..., 2:], -1).repeat(1, 1, 2) * torch.tensor([0, 0, 1, 1]),
    )
    torch.testing.assert_close(probs, within)
    torch.testing.assert_close(fit["velocity"], (within * generative["velocity_s"]).sum(-1))
    # The reported likelihood is still that of the whole mixture.
    torch.testing.assert_close(fit["log_likelihood"], torch.logsumexp(log_joint, -1))
