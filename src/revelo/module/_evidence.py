"""KL control and model evidence: the free-bits KL floor and the importance-weighted bound."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from scvi.module._constants import MODULE_KEYS

from ._components import kl_standard_normal, normal_log_prob, reparameterize, state_logsumexp

if TYPE_CHECKING:
    from ._module import REVELOVAE


def kl_per_dimension(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) of each latent dimension, same shape as ``mean``."""
    return kl_standard_normal(mean.unsqueeze(-1), log_var.unsqueeze(-1))


def free_bits_kl(
    mean: torch.Tensor, log_var: torch.Tensor, free_bits: float = 0.0
) -> torch.Tensor:
    """KL term of the training objective: the batch-mean KL of each dimension, floored, summed.

    Free bits (Kingma et al., 2016) replace each dimension's batch-mean KL by
    ``max(KL_d, free_bits)``: a dimension whose KL is below the floor gets no gradient from the
    prior, so the encoder may keep up to ``free_bits`` nats per dimension and cell at no cost,
    and dimensions are not pushed to collapse onto the prior. The floor acts on the batch mean,
    not on each cell, so single cells can still use less than it. With ``free_bits=0`` this is
    the batch mean of :func:`~revelo.module.kl_standard_normal`.

    Parameters
    ----------
    mean
        Posterior means, cells × latent dimensions.
    log_var
        Posterior log-variances, same shape.
    free_bits
        Floor per latent dimension, in nats.

    Returns
    -------
    A scalar, to be weighted like the mean per-cell KL.
    """
    per_dim = kl_per_dimension(mean, log_var)
    per_dim = per_dim.reshape(-1, per_dim.shape[-1]).mean(0)
    if free_bits > 0:
        per_dim = per_dim.clamp_min(free_bits)
    return per_dim.sum()


def log_importance_weights(
    module: REVELOVAE,
    spliced: torch.Tensor,
    unspliced: torch.Tensor,
    n_samples: int,
    covariates: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """Log-weights log p(x, z_k) − log q(z_k | x) of ``n_samples`` draws z_k ~ q(z | x) per cell.

    log p(x | z) is the module's likelihood, the four-state mixture summed over genes; log p(z)
    is the standard normal prior and log q the encoder's Gaussian. The draws are decoded as one
    flat batch of ``n_samples × cells`` rows, the shape the decoder is trained on.

    Parameters
    ----------
    module
        A :class:`~revelo.module.REVELOVAE` (anything with its ``inference``, ``generative``
        and ``state_log_joint``).
    spliced, unspliced
        Cells × genes.
    n_samples
        Draws per cell.
    covariates
        The cells' covariate tensors (batch, categorical, continuous, size factor), if any.

    Returns
    -------
    Log-weights, ``n_samples × cells``. Their mean over draws estimates the ELBO of each cell.
    """
    inference = module.inference(spliced, unspliced, covariates)
    mean, log_var = inference[MODULE_KEYS.QZM_KEY], inference["qz_log_var"]
    mean = mean.expand(n_samples, *mean.shape)
    log_var = log_var.expand(n_samples, *log_var.shape)
    z = reparameterize(mean, log_var)
    log_q = normal_log_prob(z, mean, torch.exp(0.5 * log_var)).sum(-1)
    log_prior = normal_log_prob(z, torch.zeros_like(z), torch.ones_like(z)).sum(-1)

    n_cells = spliced.shape[0]
    repeated = {key: value.repeat(n_samples, 1) for key, value in (covariates or {}).items()}
    generative = module.generative(z.reshape(n_samples * n_cells, -1), repeated)
    log_joint = module.state_log_joint(
        spliced.repeat(n_samples, 1), unspliced.repeat(n_samples, 1), generative, repeated
    )
    log_lik = state_logsumexp(log_joint).sum(-1).reshape(n_samples, n_cells)
    return log_lik + log_prior - log_q


def importance_weighted_bound(log_weights: torch.Tensor) -> torch.Tensor:
    """The bound log (1/K) Σ_k w_k per cell from log-weights ``K × cells`` (Burda et al., 2016).

    A lower bound on log p(x) that equals the ELBO in expectation for K = 1 and does not
    decrease in expectation as K grows. Computed in float64: the log-weights are sums over
    genes and can be large.
    """
    log_weights = log_weights.double()
    return torch.logsumexp(log_weights, dim=0) - math.log(log_weights.shape[0])
