"""Building blocks of the variational model: encoder, decoder, reparameterization, KL."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from scvi.nn import FCLayers
from torch import nn

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

_LOG_2PI = math.log(2 * math.pi)


def reparameterize(
    mean: torch.Tensor, log_var: torch.Tensor, eps: torch.Tensor | None = None
) -> torch.Tensor:
    """Draw z = μ + σ·ε with ε ~ N(0, I) and σ = exp(½·log σ²).

    Writing the sample as a deterministic function of (μ, log σ²) and parameter-free noise ε is
    what lets gradients of the ELBO flow into the encoder: ∂z/∂μ = 1 and ∂z/∂(log σ²) = ½σε.
    Drawing z from N(μ, σ²) directly would cut the graph at the sample, leaving only the
    high-variance score-function estimator.

    Parameters
    ----------
    mean
        Mean μ of the Gaussian posterior.
    log_var
        Log-variance log σ², same shape as ``mean``.
    eps
        Standard-normal noise; drawn when ``None``. Pass it to make the sample deterministic.

    Returns
    -------
    The sample z, same shape as ``mean``.
    """
    if eps is None:
        eps = torch.randn_like(mean)
    return mean + torch.exp(0.5 * log_var) * eps


def kl_standard_normal(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(μ, σ²) ‖ N(0, I)) in closed form, summed over the last dimension.

    KL = ½·Σ(σ² + μ² − 1 − log σ²).
    """
    return 0.5 * (torch.exp(log_var) + mean.square() - 1.0 - log_var).sum(-1)


def normal_log_prob(x: torch.Tensor, mean: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """Elementwise Gaussian log-density log N(x; mean, scale²)."""
    return -0.5 * ((x - mean) / scale).square() - torch.log(scale) - 0.5 * _LOG_2PI


def state_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over the last dimension, the few kinetic states of each cell and gene.

    Computed along a leading dimension, where torch's CPU kernels vectorise over the cells and
    genes; along a last dimension of four entries they are several times slower.
    """
    return torch.softmax(logits.movedim(-1, 0), dim=0).movedim(0, -1)


def state_logsumexp(logits: torch.Tensor) -> torch.Tensor:
    """Log-sum-exp over the last dimension, the few kinetic states of each cell and gene.

    Read off the softmax: with m the largest logit, log Σ exp = m − log softmax(m). torch's
    softmax kernel stays fast where the exponentials of far-off states underflow, whereas its
    ``exp`` and ``logsumexp`` slow down several times there, and the log-joints of far-off
    states do underflow. The gradient is the softmax, as for ``torch.logsumexp``.
    """
    return state_softmax_logsumexp(logits)[1]


def state_softmax_logsumexp(logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`state_softmax` and :func:`state_logsumexp` of ``logits``, from one softmax."""
    states = logits.movedim(-1, 0)
    probs = torch.softmax(states, dim=0)
    return probs.movedim(0, -1), states.amax(0) - torch.log(probs.amax(0))


def state_log_softmax(logits: torch.Tensor) -> torch.Tensor:
    """Log-softmax over the last dimension, computed as :func:`state_softmax` is."""
    return torch.log_softmax(logits.movedim(-1, 0), dim=0).movedim(0, -1)


class GaussianEncoder(nn.Module):
    """Amortized encoder q(z | u, s) = N(μ(u, s), diag σ²(u, s)).

    It outputs a mean and a log-variance: the log-variance is unconstrained, so no activation is
    needed to keep σ² positive, and both enter :func:`reparameterize` and
    :func:`kl_standard_normal` directly.

    Parameters
    ----------
    n_input
        Input width (spliced and unspliced genes concatenated).
    n_latent
        Latent dimension.
    n_hidden
        Units per hidden layer.
    n_layers
        Number of hidden layers.
    dropout_rate
        Dropout in the hidden layers.
    n_cat_list
        Category counts of categorical covariates injected into the hidden layers.
    n_continuous
        Number of continuous covariates concatenated to the input.
    """

    def __init__(
        self,
        n_input: int,
        n_latent: int,
        *,
        n_hidden: int = 256,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        n_cat_list: Iterable[int] | None = None,
        n_continuous: int = 0,
    ):
        super().__init__()
        self.hidden = FCLayers(
            n_in=n_input + n_continuous,
            n_out=n_hidden,
            n_cat_list=n_cat_list,
            n_layers=n_layers,
            n_hidden=n_hidden,
            dropout_rate=dropout_rate,
            use_batch_norm=False,
            use_layer_norm=True,
            activation_fn=nn.ReLU,
        )
        self.mean = nn.Linear(n_hidden, n_latent)
        self.log_var = nn.Linear(n_hidden, n_latent)

    def forward(
        self, x: torch.Tensor, *cat_list: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the posterior mean and log-variance for each row of ``x``."""
        h = self.hidden(x, *_pad(cat_list, self.hidden.n_cat_list))
        # A soft bound keeps exp(log σ²) finite early in training without hiding any gradient.
        log_var = 10.0 * torch.tanh(self.log_var(h) / 10.0)
        return self.mean(h), log_var


class KineticStateDecoder(nn.Module):
    """Decode z into each gene's position on its trajectory and its state probabilities.

    Returns, per cell, the time heads that the time mode reads (each in (0, 1); see
    :func:`~revelo.module.time_model`: ``rho`` and ``tau``, the fractions of the induction and the
    repression phase elapsed for the per-gene time, ``rho`` and ``cell_time`` for the shared
    clock) and, per gene, logits over the four kinetic states (induction, induction steady
    state, repression, repression steady state). Only the heads named are built.

    Parameters
    ----------
    n_latent
        Latent dimension.
    n_genes
        Number of genes.
    n_hidden
        Units per hidden layer.
    n_layers
        Number of hidden layers.
    n_cat_list
        Category counts of categorical covariates injected into the hidden layers.
    n_continuous
        Number of continuous covariates concatenated to z.
    gene_heads
        Time heads with one output per gene.
    cell_heads
        Time heads with one output per cell.
    """

    n_states = 4

    def __init__(
        self,
        n_latent: int,
        n_genes: int,
        *,
        n_hidden: int = 256,
        n_layers: int = 1,
        n_cat_list: Iterable[int] | None = None,
        n_continuous: int = 0,
        gene_heads: Sequence[str] = ("rho", "tau"),
        cell_heads: Sequence[str] = (),
        n_branches: int = 1,
    ):
        super().__init__()
        self.n_genes = n_genes
        self.head_names = (*gene_heads, *cell_heads)
        kwargs = {
            "n_cat_list": n_cat_list,
            "n_layers": n_layers,
            "n_hidden": n_hidden,
            "dropout_rate": 0.0,
            "use_batch_norm": False,
            "use_layer_norm": True,
            "activation_fn": nn.ReLU,
        }
        self.time_hidden = FCLayers(n_in=n_latent + n_continuous, n_out=n_hidden, **kwargs)
        self.state_hidden = FCLayers(n_in=n_latent + n_continuous, n_out=n_hidden, **kwargs)
        # The heads are attributes of their own (``decoder.rho``, ...), as in saved models.
        for name in gene_heads:
            setattr(self, name, nn.Linear(n_hidden, n_genes))
        self.state_logits = nn.Linear(n_hidden, n_genes * self.n_states)
        for name in cell_heads:
            setattr(self, name, nn.Linear(n_hidden, 1))
        # Branch weights of each cell (a softmax), read only with more than one branch.
        self.branch_logits = nn.Linear(n_hidden, n_branches) if n_branches > 1 else None

    def forward(
        self, z: torch.Tensor, *cat_list: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Return the time heads (sigmoid outputs, by name) and the state logits.

        Shapes: cells × genes (per-gene heads) or cells × 1 (per-cell heads), and cells ×
        genes × 4.
        """
        cat_list = _pad(cat_list, self.time_hidden.n_cat_list)
        h_time = self.time_hidden(z, *cat_list)
        h_state = self.state_hidden(z, *cat_list)
        logits = self.state_logits(h_state)
        logits = logits.reshape(*logits.shape[:-1], self.n_genes, self.n_states)
        heads = {name: torch.sigmoid(getattr(self, name)(h_time)) for name in self.head_names}
        if self.branch_logits is not None:
            heads["branch"] = torch.softmax(self.branch_logits(h_time), dim=-1)
        return heads, logits


def _pad(cat_list: tuple, n_cat_list: list[int]) -> tuple:
    """Fill in ``None`` for covariates not passed; allowed where a covariate has one level."""
    return (*cat_list, *([None] * (len(n_cat_list) - len(cat_list))))
