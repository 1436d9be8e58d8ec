"""KL control and model evidence: training options, marginal likelihood, latent diagnostics."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from revelo._constants import REGISTRY_KEYS
from revelo.module import (
    covariates_of,
    importance_weighted_bound,
    kl_per_dimension,
    log_importance_weights,
)

from ._data import query_batches
from ._docs import query_docs

if TYPE_CHECKING:
    from anndata import AnnData

# Cells × genes × states × draws decoded in one pass of the marginal likelihood (32 MiB each
# for the largest decoder outputs).
_DECODE_ELEMENTS = 2**23


def kl_loss_kwargs(kl_weight: float, free_bits: float) -> dict[str, float]:
    """Check the KL options of ``train`` and return them as keyword arguments of ``module.loss``.

    The training plan's warm-up weight still rises from 0 to 1 (and fades out the anchoring
    terms); the module multiplies the KL by that weight times ``kl_weight``.
    """
    if not (math.isfinite(kl_weight) and kl_weight > 0):
        msg = f"kl_weight must be a positive number, got {kl_weight}."
        raise ValueError(msg)
    if not (math.isfinite(free_bits) and free_bits >= 0):
        msg = f"free_bits must be a non-negative number of nats, got {free_bits}."
        raise ValueError(msg)
    return {"kl_scale": float(kl_weight), "free_bits": float(free_bits)}


class EvidenceMixin:
    """Model evidence and posterior-collapse diagnostics of a model with a Gaussian encoder.

    Mixed into a scvi-tools model whose ``module`` is a :class:`~revelo.module.REVELOVAE` and
    which has ``get_latent_representation``, such as :class:`~revelo.REVELO`.
    """

    @query_docs
    @torch.inference_mode()
    def get_marginal_ll(
        self,
        adata: AnnData | None = None,
        *,
        indices: Sequence[int] | None = None,
        n_mc_samples: int = 100,
        batch_size: int | None = None,
        return_mean: bool = True,
    ) -> float | np.ndarray:
        """Importance-weighted estimate of each cell's log-evidence log p(u, s).

        With K = ``n_mc_samples`` draws z_k ~ q(z | u, s), the estimate is
        log (1/K) Σ_k p(u, s | z_k) p(z_k) / q(z_k | u, s) (Burda et al., 2016): a lower
        bound on log p(u, s) that equals the ELBO in expectation for K = 1 and tightens as K
        grows. Higher is better; compare models only on the same cells and registered layers.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        n_mc_samples
            Importance samples K per cell.
        %(batch_size)s
        return_mean
            Return the mean over cells instead of one value per cell.

        Returns
        -------
        The mean log-evidence per cell, or an array with one value per cell of ``indices``.
        """
        if n_mc_samples < 1:
            msg = f"n_mc_samples must be at least 1, got {n_mc_samples}."
            raise ValueError(msg)
        # The evidence of an untrained model is a baseline that training should beat.
        _, _, batches = query_batches(self, adata, indices, batch_size, require_trained=False)
        self.module.eval()
        device = self.device
        bounds = []
        for batch in batches:
            spliced = batch[REGISTRY_KEYS.X_KEY].to(device)
            unspliced = batch[REGISTRY_KEYS.U_KEY].to(device)
            per_pass = max(1, _DECODE_ELEMENTS // (4 * spliced.numel()))
            log_weights = torch.cat(
                [
                    log_importance_weights(
                        self.module,
                        spliced,
                        unspliced,
                        min(per_pass, n_mc_samples - start),
                        covariates_of(batch, device),
                    )
                    for start in range(0, n_mc_samples, per_pass)
                ]
            )
            bounds.append(importance_weighted_bound(log_weights).cpu())
        per_cell = torch.cat(bounds).numpy()
        return float(per_cell.mean()) if return_mean else per_cell

    @query_docs
    def get_latent_diagnostics(
        self,
        adata: AnnData | None = None,
        *,
        indices: Sequence[int] | None = None,
        threshold: float = 0.01,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Per latent dimension: how much it carries about the cells (posterior collapse).

        A dimension that has collapsed onto the prior encodes every cell as N(0, 1): its
        encoder mean no longer varies across cells and its KL is near 0. Following Burda et al.
        (2016), a dimension is *active* when the variance of its encoder mean across cells
        exceeds ``threshold``.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        threshold
            Variance of the encoder mean above which a dimension counts as active.
        %(batch_size)s

        Returns
        -------
        One row per latent dimension (index ``dimension``, the column of
        :meth:`get_latent_representation`) with ``kl``, the closed-form KL to the prior
        averaged over cells; ``mean_variance``, the variance over cells of the encoder mean;
        and ``active``, whether ``mean_variance > threshold``.
        """
        mean, variance = self.get_latent_representation(
            adata, indices=indices, batch_size=batch_size, return_dist=True
        )
        kl = kl_per_dimension(torch.from_numpy(mean), torch.log(torch.from_numpy(variance)))
        mean_variance = mean.var(0)
        return pd.DataFrame(
            {
                "kl": kl.mean(0).numpy(),
                "mean_variance": mean_variance,
                "active": mean_variance > threshold,
            },
            index=pd.RangeIndex(mean.shape[1], name="dimension"),
        )
