"""Observation models: how (u, s) are seen given each kinetic state's expected abundance.

Each model owns three things: the normalisation of the encoder's input, the log-probability
of the observed (u, s) under each state's expected values, and (count models) the size factors
and the per-gene scales from kinetic units to counts. :func:`observation_model` picks one from
the ``likelihood`` string, once; a new likelihood is a new class here with these methods, a
name in ``revelo._constants.Likelihood`` and a case in :func:`observation_model`.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from scvi.distributions import NegativeBinomial
from torch import nn

from revelo._constants import REGISTRY_KEYS, Likelihood
from revelo._validation import check_likelihood

from ._components import normal_log_prob

Array = TypeVar("Array", np.ndarray, torch.Tensor)

#: Floor added to the kinetic abundances of count likelihoods (in the scaled units, where a
#: gene's range is about 1), so the repression steady state u = s = 0 can still emit a count.
_COUNT_FLOOR = 1e-2


def softplus_inverse(x: np.ndarray | float) -> torch.Tensor:
    """The value whose softplus is ``x`` (positive), as a float32 tensor."""
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return torch.where(x > 20, x, torch.log(torch.expm1(x.clamp_min(1e-6))))


def size_factors(
    library: Array,
    library_median: Array,
    batch: Array | None = None,
    given: Array | None = None,
) -> Array:
    """Cells × 2 size factors of spliced and unspliced counts (columns), for arrays or tensors.

    A given size factor (one per cell) is used for both layers; otherwise each layer's library
    is divided by the median library of the cell's batch. Works on numpy arrays and on torch
    tensors alike, so the model's start values and the module use the same factors.

    Parameters
    ----------
    library
        Cells × 2 library sizes (spliced, unspliced) over the model's genes.
    library_median
        Batches × 2 median library sizes.
    batch
        Cells' batch codes (one per cell); the first batch's median when ``None``.
    given
        Registered size factors, one per cell; replace the library ratio when given.

    Returns
    -------
    Cells × 2, floored at 1e-8 (given) or 1e-3 (library ratios).
    """
    if given is not None:
        return given.reshape(-1, 1)[:, [0, 0]].clip(min=1e-8)
    median = library_median[0] if batch is None else library_median[batch.reshape(-1)]
    return (library / median).clip(min=1e-3)


def poisson_log_prob(x: torch.Tensor, rate: torch.Tensor) -> torch.Tensor:
    """Elementwise Poisson log-probability log Pois(x; rate) of counts ``x``."""
    return torch.distributions.Poisson(rate, validate_args=False).log_prob(x)


def nb_log_prob(x: torch.Tensor, mean: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Elementwise negative-binomial log-probability of counts ``x``.

    Parameterised by the ``mean`` μ and the inverse dispersion θ (variance μ + μ²/θ), through
    :class:`scvi.distributions.NegativeBinomial`.
    """
    return NegativeBinomial(mu=mean, theta=theta, validate_args=False).log_prob(x)


class GaussianObservation(nn.Module):
    """Gaussian noise on the scaled moments, with a learned per-gene scale for u and s (VeloVI's).

    Parameters
    ----------
    n_genes
        Number of genes.
    noise_init
        Initial noise scale of u and s.
    steady_scale_factor
        Noise scale of the repression steady state (u = s = 0) relative to the other states.
    """

    def __init__(self, n_genes: int, *, noise_init: float = 0.1, steady_scale_factor: float = 0.1):
        super().__init__()
        self.steady_scale_factor = steady_scale_factor
        # Noise scales of u and s (rows), per gene, on the softplus scale.
        self.noise_raw = nn.Parameter(
            torch.full((2, n_genes), float(softplus_inverse(noise_init)))
        )

    def noise_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-gene noise scales of unspliced and spliced."""
        scale = F.softplus(self.noise_raw) + 1e-4
        return scale[0], scale[1]

    def normalise(
        self, spliced: torch.Tensor, unspliced: torch.Tensor, covariates: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The moments are already normalised: returned as they are."""
        return spliced, unspliced

    def encoder_input(
        self, spliced: torch.Tensor, unspliced: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The encoder sees the normalised moments as they are."""
        return spliced, unspliced

    def kinetic_units(
        self, spliced: torch.Tensor, unspliced: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scaled moments are the kinetic units."""
        return spliced, unspliced

    def log_prob(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        mean_s: torch.Tensor,
        mean_u: torch.Tensor,
        covariates: dict | None = None,
    ) -> torch.Tensor:
        """Log p(u, s | state): cells × genes × 4 from cells × genes observations."""
        scale_u, scale_s = self.noise_scale()
        factor = torch.ones(4, device=scale_u.device)
        factor[3] = self.steady_scale_factor
        return normal_log_prob(
            unspliced.unsqueeze(-1), mean_u, scale_u.unsqueeze(-1) * factor
        ) + normal_log_prob(spliced.unsqueeze(-1), mean_s, scale_s.unsqueeze(-1) * factor)


class PoissonObservation(nn.Module):
    """Poisson counts around size factor × ``count_scale`` × the kinetic abundance.

    Parameters
    ----------
    n_genes
        Number of genes.
    count_scale
        Per-gene factors (rows: spliced, unspliced) from the kinetic units to the counts of a
        cell with size factor 1; ones when ``None``. The kinetics, and so the velocities, live
        in the counts divided by these, the units of the scaled moments when they are
        ``var["Ms_scale"]`` and ``var["Mu_scale"]``.
    library_median
        Median library size per batch (rows) of spliced and unspliced (columns); ones when
        ``None``. A cell's size factor is its library over its batch's median.
    n_batch
        Number of batches.
    """

    def __init__(
        self,
        n_genes: int,
        *,
        count_scale: np.ndarray | None = None,
        library_median: np.ndarray | None = None,
        n_batch: int = 1,
    ):
        super().__init__()
        scale = np.ones((2, n_genes)) if count_scale is None else count_scale
        median = np.ones((n_batch, 2)) if library_median is None else library_median
        self.register_buffer("count_scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("library_median", torch.as_tensor(median, dtype=torch.float32))

    def size_factors(
        self, spliced: torch.Tensor, unspliced: torch.Tensor, covariates: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell size factors of spliced and unspliced counts (see :func:`size_factors`)."""
        covariates = covariates or {}
        batch = covariates.get(REGISTRY_KEYS.BATCH_KEY)
        factor = size_factors(
            torch.stack((spliced.sum(-1), unspliced.sum(-1)), dim=-1),
            self.library_median,
            None if batch is None else batch.long(),
            covariates.get(REGISTRY_KEYS.SIZE_FACTOR_KEY),
        )
        return factor[..., 0], factor[..., 1]

    def normalise(
        self, spliced: torch.Tensor, unspliced: torch.Tensor, covariates: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Counts divided by the cell's size factors."""
        size_s, size_u = self.size_factors(spliced, unspliced, covariates)
        return spliced / size_s.unsqueeze(-1), unspliced / size_u.unsqueeze(-1)

    def encoder_input(
        self, spliced: torch.Tensor, unspliced: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``log1p`` of the size-normalised counts."""
        return torch.log1p(spliced), torch.log1p(unspliced)

    def kinetic_units(
        self, spliced: torch.Tensor, unspliced: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Size-normalised counts divided by ``count_scale``."""
        return spliced / self.count_scale[0], unspliced / self.count_scale[1]

    def expected_counts(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        mean_s: torch.Tensor,
        mean_u: torch.Tensor,
        covariates: dict | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Expected spliced and unspliced counts per cell, gene and state."""
        size_s, size_u = self.size_factors(spliced, unspliced, covariates)
        rate_s = (size_s.unsqueeze(-1) * self.count_scale[0]).unsqueeze(-1) * (
            mean_s + _COUNT_FLOOR
        )
        rate_u = (size_u.unsqueeze(-1) * self.count_scale[1]).unsqueeze(-1) * (
            mean_u + _COUNT_FLOOR
        )
        return rate_s, rate_u

    def log_prob(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        mean_s: torch.Tensor,
        mean_u: torch.Tensor,
        covariates: dict | None = None,
    ) -> torch.Tensor:
        """Log p(u, s | state): cells × genes × 4 from cells × genes counts."""
        rate_s, rate_u = self.expected_counts(spliced, unspliced, mean_s, mean_u, covariates)
        return self.layer_log_prob(unspliced.unsqueeze(-1), rate_u, 0) + self.layer_log_prob(
            spliced.unsqueeze(-1), rate_s, 1
        )

    def layer_log_prob(self, counts: torch.Tensor, rate: torch.Tensor, row: int) -> torch.Tensor:
        """Log-probability of one layer's counts (``row`` 0: unspliced, 1: spliced)."""
        return poisson_log_prob(counts, rate)


class NegativeBinomialObservation(PoissonObservation):
    """Negative-binomial counts with a learned per-gene inverse dispersion θ for each layer.

    Same expected counts and parameters as :class:`PoissonObservation`.
    """

    def __init__(self, n_genes: int, **kwargs):
        super().__init__(n_genes, **kwargs)
        # Inverse dispersion θ of u and s (rows) per gene, on the log scale.
        self.log_theta = nn.Parameter(torch.full((2, n_genes), float(np.log(10.0))))

    def layer_log_prob(self, counts: torch.Tensor, rate: torch.Tensor, row: int) -> torch.Tensor:
        """Log-probability of one layer's counts (``row`` 0: unspliced, 1: spliced)."""
        return nb_log_prob(counts, rate, torch.exp(self.log_theta[row]).unsqueeze(-1))


ObservationModel = GaussianObservation | PoissonObservation

_COUNT_MODELS = {"poisson": PoissonObservation, "nb": NegativeBinomialObservation}


def observation_model(
    likelihood: Likelihood,
    n_genes: int,
    *,
    noise_init: float = 0.1,
    steady_scale_factor: float = 0.1,
    count_scale: np.ndarray | None = None,
    library_median: np.ndarray | None = None,
    n_batch: int = 1,
) -> ObservationModel:
    """The observation model named by ``likelihood``, with the options that apply to it.

    Parameters
    ----------
    likelihood
        ``"gaussian"`` on scaled moments, ``"poisson"`` or ``"nb"`` on raw counts.
    n_genes
        Number of genes.
    noise_init, steady_scale_factor
        Gaussian: see :class:`GaussianObservation`.
    count_scale, library_median, n_batch
        Counts: see :class:`PoissonObservation`.

    Returns
    -------
    A :class:`GaussianObservation`, :class:`PoissonObservation` or
    :class:`NegativeBinomialObservation`.
    """
    check_likelihood(likelihood)
    if likelihood == "gaussian":
        return GaussianObservation(
            n_genes, noise_init=noise_init, steady_scale_factor=steady_scale_factor
        )
    return _COUNT_MODELS[likelihood](
        n_genes, count_scale=count_scale, library_median=library_median, n_batch=n_batch
    )
