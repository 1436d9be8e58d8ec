"""Writing a fitted model's results into an AnnData, with scVelo's key names."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from revelo._scvelo_keys import curve_likelihood, scvelo_rate_columns
from revelo.module import REGIMES

from ._data import query_batches
from ._posterior import observed_abundances, posterior_means
from ._transaction import all_or_nothing

if TYPE_CHECKING:
    from anndata import AnnData

    from ._model import REVELO

#: The per-cell, per-gene posterior means that ``add_outputs`` writes (or reads).
_POSTERIOR_KEYS = ("velocity", "velocity_u", "time", "fit_s", "fit_u", "log_likelihood")


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

    adata, _, batches = query_batches(model, adata, None, batch_size)
    out = posterior_means(model.module, batches, _POSTERIOR_KEYS, n_samples, model.device)
    adata.layers["velocity"] = out["velocity"]
    adata.layers["velocity_u"] = out["velocity_u"]
    adata.layers["fit_t"] = out["time"]
    adata.layers["fit_s"] = out["fit_s"]
    adata.layers["fit_u"] = out["fit_u"]

    for key, column in scvelo_rate_columns(model.get_rates()).items():
        adata.var[key] = column
    adata.var["fit_regime"] = pd.Categorical.from_codes(
        model.module.regime.cpu().numpy(), categories=list(REGIMES)
    )
    log_likelihood = out["log_likelihood"].mean(0)
    adata.var["revelo_log_likelihood"] = log_likelihood
    observed_s, observed_u = observed_abundances(model, adata)
    adata.var["fit_likelihood"] = curve_likelihood(
        observed_u, observed_s, out["fit_u"], out["fit_s"]
    )
    finite = np.isfinite(log_likelihood) & np.isfinite(out["velocity"]).all(0)
    if "velocity_genes" in adata.var:
        finite &= adata.var["velocity_genes"].to_numpy(dtype=bool)
    adata.var["velocity_genes"] = finite

    adata.uns["velocity_params"] = {
        "mode": "revelo",
        "n_samples": n_samples,
        "t_max": model.module.t_max,
        "model": model._model_summary_string,
    }
    latent_time(adata, fit_t_key="fit_t", root_key=root_key, root_cells=root_cells)
    if uncertainty:
        _write_uncertainty(
            model,
            adata,
            n_samples=n_samples,
            batch_size=batch_size,
            extrinsic=extrinsic_uncertainty,
        )


def _write_uncertainty(
    model: REVELO, adata: AnnData, *, n_samples: int, batch_size: int | None, extrinsic: bool
) -> None:
    """Write the directional (and, if asked, with neighbours and a UMAP, extrinsic) uncertainty."""
    genes = adata.var["velocity_genes"].to_numpy(dtype=bool)
    gene_list = adata.var_names[genes] if genes.any() else None
    frames = [
        model.get_directional_uncertainty(
            adata, n_samples=n_samples, gene_list=gene_list, batch_size=batch_size
        )
    ]
    if extrinsic and "X_umap" in adata.obsm and "distances" in adata.obsp and genes.any():
        frames.append(
            model.get_extrinsic_uncertainty(adata, n_samples=n_samples, batch_size=batch_size)
        )
    for frame in frames:
        for column in frame:
            adata.obs[column] = frame[column].to_numpy()
