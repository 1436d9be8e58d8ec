"""Posterior draws: the one loop over minibatches and draws of z behind every query."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

import numpy as np
import torch
from scvi.module._constants import MODULE_KEYS

from revelo._constants import EXPRESSION_KEYS, REGISTRY_KEYS
from revelo._memory import release_free_memory
from revelo._validation import check_positive_int
from revelo.module import REVELOVAE, covariates_of, reparameterize

from ._data import registered_tensors

if TYPE_CHECKING:
    from anndata import AnnData
    from scvi.model.base import BaseModelClass


#: Values of each draw's most probable state (VeloVI's ``"max"`` statistics), by key: the
#: per-state values of ``module.generative`` they are read from, and whether only the three
#: timed states compete (the off state has no time of its own).
MAP_KEYS: dict[str, tuple[str, bool]] = {
    "velocity_map": ("velocity_s", False),
    "velocity_u_map": ("velocity_u", False),
    "time_map": ("time", True),
}


def posterior_draws(
    module: REVELOVAE,
    batches: Iterable[dict[str, torch.Tensor]],
    keys: Sequence[str],
    n_samples: int,
    device: torch.device | str,
    *,
    genes: np.ndarray | None = None,
    latent_dim: int | None = None,
) -> Iterator[Iterator[dict[str, torch.Tensor]]]:
    """Per minibatch, an iterator over ``n_samples`` draws of ``module.posterior_fit``.

    Each draw samples z from q(z | u, s) by the encoder's reparameterization and decodes it,
    without dropout and without gradients. Draws are made as they are consumed, so a caller
    that keeps running sums holds one draw at a time. Besides the keys of ``posterior_fit``,
    ``keys`` may name those of :data:`MAP_KEYS`. ``genes``, a boolean mask, keeps only those
    genes of each draw; with ``latent_dim``, every dimension of z but that one is set to 0
    before decoding (the encoder and its draw are unchanged).

    Yields
    ------
    Per minibatch, an iterator of dictionaries key → cells × genes (× states) tensor on
    ``device``, one per draw.
    """
    module.eval()
    for batch in batches:
        spliced = batch[REGISTRY_KEYS.X_KEY].to(device)
        unspliced = batch[REGISTRY_KEYS.U_KEY].to(device)
        covariates = covariates_of(batch, device)
        yield _draws(module, spliced, unspliced, covariates, keys, n_samples, genes, latent_dim)
        # The draws of a minibatch free many blocks of megabytes; without this the C heap
        # fragments and the resident memory of a pass over 10⁵ cells grows by gigabytes.
        release_free_memory()


@torch.inference_mode()
def _draws(module, spliced, unspliced, covariates, keys, n_samples, genes, latent_dim):
    if genes is not None:
        genes = torch.as_tensor(genes, device=spliced.device)
    # The minibatch is encoded once; each draw samples its own z from that q(z | u, s).
    encoded = module.inference(spliced, unspliced, covariates)
    qz = encoded[MODULE_KEYS.QZM_KEY], encoded["qz_log_var"]
    for _ in range(n_samples):
        z = reparameterize(*qz)
        if latent_dim is None and not any(key in MAP_KEYS for key in keys):
            fit = module.posterior_fit(spliced, unspliced, covariates=covariates, z=z)
        else:
            with _decoding(module, latent_dim) as decoded:
                fit = module.posterior_fit(spliced, unspliced, covariates=covariates, z=z)
            probs = fit["state_probs"]
            maps = [key for key in keys if key in MAP_KEYS]
            fit.update({key: _most_probable(probs, decoded[-1], key) for key in maps})
        yield {key: fit[key] if genes is None else fit[key][:, genes] for key in keys}


@contextmanager
def _decoding(module: REVELOVAE, latent_dim: int | None) -> Iterator[list[dict]]:
    """Record what ``module.generative`` returns while the block runs, z restricted or not.

    ``posterior_fit`` decodes its draw of z through ``module.generative``; for the duration of
    the block that call goes through a wrapper (an instance attribute, removed afterwards)
    that keeps its per-state output, so that a draw's most probable state can be read from the
    same z, and that zeroes z outside ``latent_dim`` when that is given.
    """
    decoded: list[dict] = []
    generative = module.generative

    def decode(z: torch.Tensor, *args, **kwargs) -> dict:
        if latent_dim is not None:
            keep = torch.zeros_like(z)
            keep[..., latent_dim] = 1.0
            z = z * keep
        out = generative(z, *args, **kwargs)
        decoded.append(out)
        return out

    module.generative = decode
    try:
        yield decoded
    finally:
        del module.generative


def _most_probable(probs: torch.Tensor, generative: dict, key: str) -> torch.Tensor:
    """The value of ``key`` (of :data:`MAP_KEYS`) in each cell's and gene's most probable state."""
    name, timed = MAP_KEYS[key]
    values = generative[name]
    if timed:
        probs, values = probs[..., :3], values[..., :3]
    return values.gather(-1, probs.argmax(-1, keepdim=True)).squeeze(-1)


def posterior_means(
    module: REVELOVAE,
    batches: Iterable[dict[str, torch.Tensor]],
    keys: Sequence[str],
    n_samples: int,
    device: torch.device | str,
    *,
    genes: np.ndarray | None = None,
    latent_dim: int | None = None,
) -> dict[str, np.ndarray]:
    """The mean over ``n_samples`` posterior draws of each of ``keys``, for all cells.

    Peak memory holds one minibatch's running sums, whatever ``n_samples`` is.
    """
    out: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for means, _ in minibatch_means(
        module, batches, keys, n_samples, device, genes=genes, latent_dim=latent_dim
    ):
        for key in keys:
            out[key].append(means[key].cpu().numpy())
    return {key: np.concatenate(parts) for key, parts in out.items()}


def minibatch_means(
    module: REVELOVAE,
    batches: Iterable[dict[str, torch.Tensor]],
    keys: Sequence[str],
    n_samples: int,
    device: torch.device | str,
    *,
    keep: str | None = None,
    genes: np.ndarray | None = None,
    latent_dim: int | None = None,
) -> Iterator[tuple[dict[str, torch.Tensor], list[torch.Tensor]]]:
    """Per minibatch, the mean over ``n_samples`` draws of each of ``keys`` (running sums).

    With ``keep`` (one of ``keys``), every draw of that key is also kept, for statistics over
    the draws of one minibatch; otherwise the list is empty.
    """
    check_positive_int("n_samples", n_samples)
    for draws in posterior_draws(
        module, batches, keys, n_samples, device, genes=genes, latent_dim=latent_dim
    ):
        sums: dict[str, torch.Tensor] = {}
        kept: list[torch.Tensor] = []
        for draw in draws:
            for key in keys:
                sums[key] = draw[key] if key not in sums else sums[key] + draw[key]
            if keep is not None:
                kept.append(draw[keep])
        yield {key: value / n_samples for key, value in sums.items()}, kept


def posterior_samples(
    module: REVELOVAE,
    batches: Iterable[dict[str, torch.Tensor]],
    keys: Sequence[str],
    n_samples: int,
    device: torch.device | str,
    *,
    genes: np.ndarray | None = None,
    latent_dim: int | None = None,
) -> dict[str, np.ndarray]:
    """Every one of ``n_samples`` posterior draws of each of ``keys``: draws × cells × …."""
    check_positive_int("n_samples", n_samples)
    out: dict[str, list[np.ndarray]] = {key: [] for key in keys}
    for draws in posterior_draws(
        module, batches, keys, n_samples, device, genes=genes, latent_dim=latent_dim
    ):
        parts = list(draws)
        for key in keys:
            out[key].append(torch.stack([draw[key] for draw in parts]).cpu().numpy())
    return {key: np.concatenate(parts, axis=1) for key, parts in out.items()}


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
