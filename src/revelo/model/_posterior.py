"""Posterior draws: the one loop over minibatches and draws of z behind every query."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from revelo._constants import EXPRESSION_KEYS, REGISTRY_KEYS
from revelo._validation import check_positive_int
from revelo.module import REVELOVAE, covariates_of

from ._data import registered_tensors

if TYPE_CHECKING:
    from anndata import AnnData
    from scvi.model.base import BaseModelClass


def posterior_draws(
    module: REVELOVAE,
    batches: Iterable[dict[str, torch.Tensor]],
    keys: Sequence[str],
    n_samples: int,
    device: torch.device | str,
) -> Iterator[Iterator[dict[str, torch.Tensor]]]:
    """Per minibatch, an iterator over ``n_samples`` draws of ``module.posterior_fit``.

    Each draw samples z from q(z | u, s) by the encoder's reparameterization and decodes it,
    without dropout and without gradients. Draws are made as they are consumed, so a caller
    that keeps running sums holds one draw at a time.

    Yields
    ------
    Per minibatch, an iterator of dictionaries key → cells × genes (× states) tensor on
    ``device``, one per draw.
    """
    module.eval()
    for batch in batches:
        spliced = batch[REGISTRY_KEYS.X_KEY].to(device)
        unspliced = batch[REGISTRY_KEYS.U_KEY].to(device)
        yield _draws(module, spliced, unspliced, covariates_of(batch, device), keys, n_samples)


@torch.inference_mode()
def _draws(module, spliced, unspliced, covariates, keys, n_samples):
    for _ in range(n_samples):
        fit = module.posterior_fit(spliced, unspliced, covariates=covariates)
        yield {key: fit[key] for key in keys}


def posterior_means(
    module: REVELOVAE,
    batches: Iterable[dict[str, torch.Tensor]],
    keys: Sequence[str],
    n_samples: int,
    device: torch.device | str,
) -> dict[str, np.ndarray]:
    """The mean over ``n_samples`` posterior draws of each of ``keys``, for all cells.

    Peak memory holds one minibatch's running sums, whatever ``n_samples`` is.
    """
    check_positive_int("n_samples", n_samples)
    out: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for draws in posterior_draws(module, batches, keys, n_samples, device):
        sums: dict[str, torch.Tensor] = {}
        for draw in draws:
            for key in keys:
                sums[key] = draw[key] if key not in sums else sums[key] + draw[key]
        for key in keys:
            out[key].append((sums[key] / n_samples).cpu().numpy())
    return {key: np.concatenate(parts) for key, parts in out.items()}


def posterior_stacks(
    module: REVELOVAE,
    batches: Iterable[dict[str, torch.Tensor]],
    key: str,
    n_samples: int,
    device: torch.device | str,
) -> Iterator[torch.Tensor]:
    """Per minibatch, the ``n_samples`` draws of ``key`` stacked along a first dimension."""
    for draws in posterior_draws(module, batches, (key,), n_samples, device):
        yield torch.stack([draw[key] for draw in draws])


@torch.inference_mode()
def observed_abundances(model: BaseModelClass, adata: AnnData) -> tuple[np.ndarray, np.ndarray]:
    """Observed ``(spliced, unspliced)`` of ``adata`` in the units of the fit and velocities.

    The registered layers for the Gaussian likelihood; size-normalised, scaled counts for the
    count likelihoods (:meth:`~revelo.module.REVELOVAE.scaled_observation`).
    """
    tensors = registered_tensors(model.get_anndata_manager(adata, required=True))
    spliced, unspliced = model.module.scaled_observation(
        *(tensors[key].to(model.device) for key in EXPRESSION_KEYS),
        covariates_of(tensors, model.device),
    )
    return spliced.cpu().numpy(), unspliced.cpu().numpy()
