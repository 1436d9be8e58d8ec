"""Hand-worked checks of the reparameterization, the KL and one ELBO step."""

from __future__ import annotations

import math

import pytest
import torch

from revelo.module import (
    GaussianEncoder,
    kl_standard_normal,
    normal_log_prob,
    reparameterize,
)


def test_reparameterization_value_and_gradients():
    mean = torch.tensor([0.5], requires_grad=True)
    log_var = torch.tensor([-1.0], requires_grad=True)
    eps = torch.tensor([0.8])
    z = reparameterize(mean, log_var, eps)
    assert z.item() == pytest.approx(0.9852, abs=1e-4)

    # Upstream gradient dL/dz = 2.0
    (2.0 * z).sum().backward()
    assert mean.grad.item() == pytest.approx(2.0, abs=1e-4)
    assert log_var.grad.item() == pytest.approx(0.4852, abs=1e-4)


def test_reparameterization_gradient_wrt_sigma():
    mean = torch.tensor([0.5])
    sigma = torch.tensor([math.exp(-0.5)], requires_grad=True)
    z = reparameterize(mean, 2 * torch.log(sigma), torch.tensor([0.8]))
    (2.0 * z).sum().backward()
    assert sigma.grad.item() == pytest.approx(1.6, abs=1e-4)


def test_reparameterization_draws_have_the_posterior_moments():
    torch.manual_seed(0)
    mean = torch.full((200_000,), 1.5)
    log_var = torch.full((200_000,), math.log(0.25))
    z = reparameterize(mean, log_var)
    assert z.mean().item() == pytest.approx(1.5, abs=0.01)
    assert z.std().item() == pytest.approx(0.5, abs=0.01)


@pytest.mark.parametrize(
    ("mu", "sigma", "expected"),
    [(0.0, 1.0, 0.0), (2.0, 1.0, 2.0), (0.0, 0.5, 0.318), (1.0, 2.0, 1.307)],
)
def test_kl_closed_form(mu, sigma, expected):
    kl = kl_standard_normal(torch.tensor([[mu]]), torch.tensor([[2 * math.log(sigma)]]))
    assert kl.item() == pytest.approx(expected, abs=1e-3)
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(mu, sigma), torch.distributions.Normal(0.0, 1.0)
    )
    assert kl.item() == pytest.approx(reference.item(), abs=1e-6)


def test_kl_sums_over_latent_dimensions():
    mean = torch.tensor([[2.0, 0.0]])
    log_var = torch.tensor([[0.0, 2 * math.log(0.5)]])
    assert kl_standard_normal(mean, log_var).item() == pytest.approx(2.0 + 0.318, abs=1e-3)


def test_one_dimensional_elbo_step():
    mean, log_var, eps, x = (torch.tensor([v]) for v in (0.5, 0.0, -0.3, 1.2))
    z = reparameterize(mean, log_var, eps)
    reconstruction = -normal_log_prob(x, z, torch.tensor([1.0])).sum()
    kl = kl_standard_normal(mean, log_var).sum()
    assert reconstruction.item() == pytest.approx(1.419, abs=1e-3)
    assert kl.item() == pytest.approx(0.125, abs=1e-3)
    assert (reconstruction + kl).item() == pytest.approx(1.544, abs=1e-3)


def test_normal_log_prob_matches_torch():
    x, mean, scale = torch.randn(5), torch.randn(5), torch.rand(5) + 0.1
    expected = torch.distributions.Normal(mean, scale).log_prob(x)
    torch.testing.assert_close(normal_log_prob(x, mean, scale), expected)


def test_encoder_outputs_mean_and_log_variance_per_cell():
    torch.manual_seed(0)
    encoder = GaussianEncoder(6, 3, n_hidden=8).eval()
    x = torch.rand(4, 6)
    mean, log_var = encoder(x)
    assert mean.shape == log_var.shape == (4, 3)
    # Different cells give different posterior means: the encoder is amortized, not constant.
    assert torch.cdist(mean, mean).max() > 0
    # Gradients reach the encoder through the reparameterized sample.
    z = reparameterize(mean, log_var)
    z.sum().backward()
    assert encoder.mean.weight.grad.abs().sum() > 0
    assert encoder.log_var.weight.grad.abs().sum() > 0


def test_count_log_probabilities_match_scipy():
    from scipy import stats

    from revelo.module import nb_log_prob, poisson_log_prob

    x = torch.tensor([0.0, 1.0, 3.0, 17.0, 120.0], dtype=torch.float64)
    mean = torch.tensor([0.3, 2.0, 3.0, 9.5, 80.0], dtype=torch.float64)
    theta = torch.tensor([0.5, 2.0, 10.0, 1.5, 40.0], dtype=torch.float64)
    expected_poisson = stats.poisson.logpmf(x.numpy(), mean.numpy())
    torch.testing.assert_close(poisson_log_prob(x, mean).numpy(), expected_poisson)
    # scipy's nbinom(n, p): n = θ, p = θ / (θ + μ) has mean μ and variance μ + μ²/θ.
    p = (theta / (theta + mean)).numpy()
    expected_nb = stats.nbinom.logpmf(x.numpy(), theta.numpy(), p)
    torch.testing.assert_close(nb_log_prob(x, mean, theta).numpy(), expected_nb)
    # A large θ approaches the Poisson.
    big = torch.full_like(theta, 1e7)
    torch.testing.assert_close(
        nb_log_prob(x, mean, big), poisson_log_prob(x, mean), rtol=1e-4, atol=1e-4
    )


def test_state_softmax_matches_a_hand_computed_softmax_and_its_gradient():
    from revelo.module._components import state_log_softmax, state_softmax

    torch.manual_seed(0)
    logits = 3 * torch.randn(2, 5, 7, 4, dtype=torch.float64)
    exp = torch.exp(logits - logits.amax(-1, keepdim=True))
    expected = exp / exp.sum(-1, keepdim=True)
    torch.testing.assert_close(state_softmax(logits), expected)
    torch.testing.assert_close(state_log_softmax(logits), torch.log(expected))
    # A closed state (logit -inf) gets probability 0 and the open ones share the rest.
    closed = torch.tensor([-torch.inf, 0.0, 1.0, -torch.inf], dtype=torch.float64)
    assert state_softmax(closed).tolist() == pytest.approx(
        [0.0, 1 / (1 + math.e), math.e / (1 + math.e), 0.0]
    )

    weights = torch.randn_like(logits)
    leaf = logits.clone().requires_grad_()
    (grad,) = torch.autograd.grad((state_log_softmax(leaf) * weights).sum(), leaf)
    leaf = logits.clone().requires_grad_()
    log_expected = leaf - torch.log(torch.exp(leaf).sum(-1, keepdim=True))
    (reference,) = torch.autograd.grad((log_expected * weights).sum(), leaf)
    torch.testing.assert_close(grad, reference)


def test_state_logsumexp_matches_the_direct_sum_its_gradient_and_far_off_states():
    from revelo.module._components import state_logsumexp, state_softmax_logsumexp

    torch.manual_seed(1)
    logits = 3 * torch.randn(2, 5, 7, 4, dtype=torch.float64)
    logits[0, 0, 0] = 2.0  # a tie among the states: the gradient is still the softmax
    direct = torch.log(torch.exp(logits).sum(-1))
    torch.testing.assert_close(state_logsumexp(logits), direct)
    probs, total = state_softmax_logsumexp(logits)
    torch.testing.assert_close(total, direct)
    torch.testing.assert_close(probs, torch.exp(logits - direct.unsqueeze(-1)))

    leaf = logits.clone().requires_grad_()
    (grad,) = torch.autograd.grad(state_logsumexp(leaf).sum(), leaf)
    exp = torch.exp(logits)
    torch.testing.assert_close(grad, exp / exp.sum(-1, keepdim=True))

    # States hundreds of nats apart (their exponentials underflow in float32) and closed ones.
    far = torch.tensor([[-1000.0, 5.0, -400.0, -torch.inf], [3.0, 3.0, -torch.inf, -torch.inf]])
    assert state_logsumexp(far).tolist() == pytest.approx([5.0, 3.0 + math.log(2.0)])
