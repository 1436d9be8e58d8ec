"""Writing a fitted model's results into an AnnData, with scVelo's key names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from revelo._scvelo_keys import dynamics_columns, recover_dynamics_settings, scvelo_rate_columns
from revelo.module import REGIMES

from ._data import query_batches
from ._posterior import minibatch_means, observed_abundances
from ._transaction import all_or_nothing
from ._uncertainty import _STATISTICS, _cosine_statistics, _draw_batch_size

if TYPE_CHECKING:
    from anndata import AnnData

    from ._model import REVELO

#: The per-cell, per-gene posterior means that ``add_outputs`` writes as layers.
_LAYER_KEYS = ("velocity", "velocity_u", "time", "fit_s", "fit_u")
#: ... and everything it draws: the log-likelihood is only kept as its mean over cells.
_POSTERIOR_KEYS = (*_LAYER_KEYS, "log_likelihood")


@all_or_nothing
def write_outputs(
    model: REVELO,
    adata: AnnData | None,
    *,
    n_samples: int,
    batch_size: int | None,
    root_key: str | None,
    root_cells: Sequence[str] | Sequence[int] | None,
    uncertainty: bool,
    extrinsic_uncertainty: bool = False,
) -> None:
    """Write the results of ``model`` into ``adata``; see :meth:`revelo.REVELO.add_outputs`."""
    from revelo.tl import latent_time

    if uncertainty and batch_size is None:
        batch_size = _draw_batch_size(n_samples, model.summary_stats.n_vars)
    adata, _, batches = query_batches(model, adata, None, batch_size)
    prior = (
        adata.var["velocity_genes"].to_numpy(dtype=bool)
        if "velocity_genes" in adata.var
        else np.ones(adata.n_vars, dtype=bool)
    )
    out, directional = _posterior_pass(
        model, batches, adata.shape, n_samples, prior if uncertainty else None
    )
    adata.layers["velocity"] = out["velocity"]
    adata.layers["velocity_u"] = out["velocity_u"]
    adata.layers["fit_t"] = out["time"]
    adata.layers["fit_s"] = out["fit_s"]
    adata.layers["fit_u"] = out["fit_u"]

    for key, column in scvelo_rate_columns(model.get_rates()).items():
        adata.var[key] = column
    if model.module.n_branches > 1:
        adata.obsm["fit_branch_weights"] = model.get_branch_weights(
            adata, batch_size=batch_size
        ).to_numpy()
    else:
        adata.obsm.pop("fit_branch_weights", None)
    adata.var["fit_regime"] = pd.Categorical.from_codes(
        model.module.regime.cpu().numpy(), categories=list(REGIMES)
    )
    log_likelihood = out["log_likelihood"]
    adata.var["revelo_log_likelihood"] = log_likelihood
    observed_s, observed_u = observed_abundances(model, adata)
    # scVelo's other per-gene keys of a dynamical fit (fit_likelihood, fit_std_u, ...) and the
    # settings its dynamical tools read with them.
    columns = dynamics_columns(observed_u, observed_s, out["fit_u"], out["fit_s"])
    for key, column in columns.items():
        adata.var[key] = column
    adata.uns["recover_dynamics"] = recover_dynamics_settings(adata.layers.keys())
    # An existing selection is kept, restricted to the genes with a finite fit.
    finite = prior & np.isfinite(log_likelihood) & np.isfinite(out["velocity"]).all(0)
    adata.var["velocity_genes"] = finite

    adata.uns["velocity_params"] = {
        "mode": "revelo",
        "n_samples": n_samples,
        "t_max": model.module.t_max,
        "model": model._model_summary_string,
    }
    latent_time(adata, fit_t_key="fit_t", root_key=root_key, root_cells=root_cells)
    if not uncertainty:
        return
    statistics, genes_used = directional
    if all(np.array_equal(used, finite) for used in genes_used) and finite.any():
        for name, values in statistics.items():
            adata.obs[f"directional_{name}"] = values
        if extrinsic_uncertainty:
            _write_uncertainty(
                model, adata, n_samples=n_samples, batch_size=batch_size, directional=False
            )
    else:
        # Some genes' fits are not finite: the statistics are taken again over the velocity
        # genes of the whole data set.
        _write_uncertainty(
            model,
            adata,
            n_samples=n_samples,
            batch_size=batch_size,
            extrinsic=extrinsic_uncertainty,
        )


@torch.inference_mode()
def _posterior_pass(
    model: REVELO, batches, shape: tuple[int, int], n_samples: int, genes: np.ndarray | None
) -> tuple[dict[str, np.ndarray], tuple[dict[str, np.ndarray], list[np.ndarray]] | None]:
    """Posterior means of ``_POSTERIOR_KEYS`` and, from the same draws, directional statistics.

    The means of ``_LAYER_KEYS`` are cells × genes (``shape``); the log-likelihood's is
    averaged over cells as well (a value per gene).

    The statistics are those of :meth:`~revelo.REVELO.get_directional_uncertainty` over
    ``genes``, restricted per minibatch to the genes whose velocity is finite in every draw; the
    masks used are returned with them (``None`` for both when ``genes`` is ``None``). One
    minibatch's draws of the velocity are held at a time, and the means (cells × genes,
    ``shape``) are written in place, so the peak holds one copy of them.
    """
    out: dict[str, np.ndarray] = {}
    log_likelihood = np.zeros(shape[1])
    start = 0
    parts: list[dict[str, torch.Tensor]] = []
    used: list[np.ndarray] = []
    keep = None if genes is None else "velocity"
    means_per_batch = minibatch_means(
        model.module, batches, _POSTERIOR_KEYS, n_samples, model.device, keep=keep
    )
    for means, velocities in means_per_batch:
        stop = start + len(means["velocity"])
        for key in _LAYER_KEYS:
            mean = means[key].cpu().numpy()
            out.setdefault(key, np.empty(shape, dtype=mean.dtype))[start:stop] = mean
        # float64 over cells: the sum of the float32 means of each minibatch
        log_likelihood += means["log_likelihood"].double().sum(0).cpu().numpy()
        start = stop
        if genes is not None:
            stack = torch.stack(velocities)
            mask = genes & torch.isfinite(stack).all(0).all(0).cpu().numpy()
            used.append(mask)
            parts.append(_cosine_statistics(stack[..., torch.from_numpy(mask).to(stack.device)]))
    out["log_likelihood"] = log_likelihood / shape[0]
    if genes is None:
        return out, None
    statistics = {
        name: torch.cat([part[name] for part in parts]).cpu().numpy() for name in _STATISTICS
    }
    return out, (statistics, used)


def _write_uncertainty(
    model: REVELO,
    adata: AnnData,
    *,
    n_samples: int,
    batch_size: int | None,
    directional: bool = True,
    extrinsic: bool = True,
) -> None:
    """Write the directional and (with neighbours and a UMAP) the extrinsic uncertainty."""
    genes = adata.var["velocity_genes"].to_numpy(dtype=bool)
    gene_list = adata.var_names[genes] if genes.any() else None
    frames = []
    if directional:
        frames.append(
            model.get_directional_uncertainty(
                adata, n_samples=n_samples, gene_list=gene_list, batch_size=batch_size
            )[0]
        )
    if extrinsic and "X_umap" in adata.obsm and "distances" in adata.obsp and genes.any():
        frames.append(
            model.get_extrinsic_uncertainty(adata, n_samples=n_samples, batch_size=batch_size)
        )
    for frame in frames:
        for column in frame:
            adata.obs[column] = frame[column].to_numpy()
