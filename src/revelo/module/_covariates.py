"""Covariates of the kinetic model: batch, categorical and continuous factors on u and s."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from revelo._constants import REGISTRY_KEYS

_COVARIATE_KEYS = (
    REGISTRY_KEYS.BATCH_KEY,
    REGISTRY_KEYS.CAT_COVS_KEY,
    REGISTRY_KEYS.CONT_COVS_KEY,
    REGISTRY_KEYS.SIZE_FACTOR_KEY,
)


class CovariateMixin:
    """Per-gene log-factors that batches and covariates apply to the expected (u, s).

    Mixed into :class:`~revelo.module.REVELOVAE` (an :class:`torch.nn.Module`), which calls
    :meth:`_init_covariates` in its constructor; the parameters are its own attributes.
    """

    def _init_covariates(
        self,
        n_genes: int,
        *,
        n_batch: int = 1,
        n_cats_per_cov: list[int] | None = None,
        n_continuous_cov: int = 0,
        continuous_center: np.ndarray | None = None,
        continuous_scale: np.ndarray | None = None,
        batch_log_scale_init: np.ndarray | None = None,
    ) -> None:
        # Covariates: the first batch and the first category of each covariate are the
        # reference, so their factors are fixed at 1 and the rates keep their meaning.
        self.n_batch = n_batch
        self.n_cats_per_cov = list(n_cats_per_cov or [])
        self.n_continuous_cov = n_continuous_cov
        self.batch_log_scale = None
        if n_batch > 1:
            start = (
                np.zeros((n_batch - 1, 2, n_genes))
                if batch_log_scale_init is None
                else batch_log_scale_init
            )
            start = torch.tensor(start, dtype=torch.float32)  # a copy: training moves it
            self.batch_log_scale = nn.Parameter(start)
            self.register_buffer("batch_log_scale_mean", start.mean(-1, keepdim=True))
        self.cat_log_scale = nn.ParameterList(
            nn.Parameter(torch.zeros(max(n - 1, 0), 2, n_genes)) for n in self.n_cats_per_cov
        )
        if n_continuous_cov > 0:
            self.cont_log_scale = nn.Parameter(torch.zeros(n_continuous_cov, 2, n_genes))
            center = np.zeros(n_continuous_cov) if continuous_center is None else continuous_center
            scale = np.ones(n_continuous_cov) if continuous_scale is None else continuous_scale
            self.register_buffer("cont_center", torch.as_tensor(center, dtype=torch.float32))
            self.register_buffer(
                "cont_scale", torch.as_tensor(np.maximum(scale, 1e-8), dtype=torch.float32)
            )
        else:
            self.cont_log_scale = None

    def covariate_parameters(self) -> list[nn.Parameter]:
        """The per-gene covariate log-factors (batch, categorical, continuous)."""
        tables = [self.batch_log_scale, *self.cat_log_scale, self.cont_log_scale]
        return [table for table in tables if table is not None]

    def _categories(self, covariates: dict | None) -> list[torch.Tensor | None]:
        """Batch index and further categorical covariates, one ``cells × 1`` tensor each."""
        covariates = covariates or {}
        batch = covariates.get(REGISTRY_KEYS.BATCH_KEY)
        cats = covariates.get(REGISTRY_KEYS.CAT_COVS_KEY)
        if (self.n_batch > 1 and batch is None) or (self.n_cats_per_cov and cats is None):
            msg = (
                "This model is conditioned on a batch or categorical covariates; pass them "
                "(the registered tensors) as `covariates`."
            )
            raise ValueError(msg)
        columns = [] if cats is None else list(torch.split(cats.long(), 1, dim=-1))
        return [None if batch is None else batch.long(), *columns]

    def _continuous(self, covariates: dict | None) -> torch.Tensor | None:
        if self.n_continuous_cov == 0:
            return None
        cont = (covariates or {}).get(REGISTRY_KEYS.CONT_COVS_KEY)
        if cont is None:
            msg = "This model has continuous covariates; pass them as `covariates`."
            raise ValueError(msg)
        return (cont - self.cont_center) / self.cont_scale

    def _with_continuous(self, x: torch.Tensor, covariates: dict | None) -> torch.Tensor:
        """``x`` with the standardised continuous covariates appended to its last dimension."""
        cont = self._continuous(covariates)
        if cont is None:
            return x
        return torch.cat((x, cont.expand(*x.shape[:-1], cont.shape[-1])), dim=-1)

    def log_covariate_scale(self, covariates: dict | None) -> torch.Tensor | None:
        """Per-cell log-factors that the covariates apply to the expected abundances.

        Returns cells × 2 × genes (rows u, s), or ``None`` for a model without covariates.
        """
        terms = []
        categories = self._categories(covariates)
        tables = [self.batch_log_scale, *self.cat_log_scale]
        for table, index in zip(tables, categories):
            if table is None or table.shape[0] == 0:
                continue
            if table is self.batch_log_scale:
                # Each batch's mean log-factor over genes stays at its data-driven start: an
                # overall scale would otherwise trade off against where the batch's cells sit
                # in time. The factors of single genes are free.
                table = table - table.mean(-1, keepdim=True) + self.batch_log_scale_mean
            full = torch.cat((torch.zeros_like(table[:1]), table))
            terms.append(full[index.squeeze(-1)])
        cont = self._continuous(covariates)
        if cont is not None:
            terms.append(torch.einsum("nc,cog->nog", cont, self.cont_log_scale))
        if not terms:
            return None
        return torch.stack(terms).sum(0)


def covariates_of(
    tensors: dict[str, torch.Tensor], device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """The covariate tensors (batch, categorical, continuous, size factor) of a minibatch.

    Moved to ``device`` when one is given.
    """
    return {
        key: tensors[key] if device is None else tensors[key].to(device)
        for key in _COVARIATE_KEYS
        if key in tensors
    }
