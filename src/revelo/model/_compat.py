"""VeloVI's query arguments: which cells, genes and draws, and the shape of what comes back.

:class:`~revelo.REVELO` takes every argument of VeloVI's queries with VeloVI's meaning, so
that code written for ``scvi.external.VELOVI`` runs unchanged; this module turns those
arguments into revelo's posterior draws and shapes the results as VeloVI documents them.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import sparse

from revelo._constants import REGISTRY_KEYS
from revelo._threads import available_cpus, check_n_jobs
from revelo._validation import check_choice, check_positive_int, gene_mask

from ._data import TensorBatches, query_batches, registered_layers
from ._posterior import posterior_means, posterior_samples

if TYPE_CHECKING:
    from anndata import AnnData
    from scvi.model.base import BaseModelClass

#: VeloVI's ``velo_statistic`` and ``time_statistic``: the expectation over the kinetic
#: states, or the value of the most probable state.
STATISTICS: tuple[str, ...] = ("mean", "max")


class QueryResult(NamedTuple):
    """Posterior values of a query, with what is needed to shape them as VeloVI returns them."""

    adata: AnnData
    #: Positions of the cells, in the order returned (repeated with ``n_samples_overall``).
    indices: np.ndarray
    #: Boolean mask of the genes returned.
    genes: np.ndarray
    #: Key → cells × genes (× states), or draws × cells × genes (× states) for separate draws.
    values: dict[str, np.ndarray]
    #: Whether the result is an array rather than a DataFrame.
    as_array: bool

    def shaped(self, values: np.ndarray) -> np.ndarray | pd.DataFrame:
        """``values`` as an array, or as a DataFrame indexed by cells with genes as columns."""
        if self.as_array:
            return values
        return pd.DataFrame(
            values,
            index=self.adata.obs_names[self.indices],
            columns=self.adata.var_names[self.genes],
        )


def query_values(
    model: BaseModelClass,
    keys: Sequence[str],
    adata: AnnData | None,
    indices: Sequence[int] | None,
    *,
    gene_list: Sequence[str] | None,
    n_samples: int,
    batch_size: int | None,
    return_mean: bool,
    return_numpy: bool | None,
    n_samples_overall: int | None = None,
    latent_dim: int | None = None,
) -> QueryResult:
    """Posterior means, or every draw, of ``keys`` for the cells and genes a query asks for.

    With ``n_samples_overall``, that many cells are drawn with replacement from ``indices``
    (torch's global generator, which ``revelo.settings.seed`` seeds) and each gets one draw.
    Draws are kept apart when ``n_samples > 1`` and not ``return_mean``; they then come as an
    array whatever ``return_numpy`` says (with a warning when it asked for a DataFrame), as in
    VeloVI. Otherwise the result is a DataFrame unless ``return_numpy``.
    """
    check_positive_int("n_samples", n_samples)
    check_positive_int("n_samples_overall", n_samples_overall, none=True)
    adata, indices, batches = query_batches(model, adata, indices, batch_size)
    genes = gene_mask(adata.var_names, gene_list, name="gene_list")
    if n_samples_overall is not None:
        n_samples = 1
        indices = indices[torch.randint(len(indices), (n_samples_overall,)).numpy()]
        batches = TensorBatches(batches.tensors, indices, batch_size=batches.batch_size)
    separate = n_samples > 1 and not return_mean
    if separate and return_numpy is False:
        warnings.warn(
            "Separate posterior draws (n_samples > 1, return_mean=False) come as an array "
            "draws × cells × genes; return_numpy=False is ignored.",
            UserWarning,
            stacklevel=3,
        )
    draw = posterior_samples if separate else posterior_means
    values = draw(
        model.module,
        batches,
        keys,
        n_samples,
        model.device,
        genes=None if genes.all() else genes,
        latent_dim=latent_dim,
    )
    return QueryResult(adata, indices, genes, values, separate or bool(return_numpy))


def check_statistic(name: str, value: str) -> bool:
    """Check VeloVI's ``velo_statistic`` or ``time_statistic``; whether it asks for ``"max"``."""
    check_choice(name, value, STATISTICS)
    return value == "max"


def check_latent_dim(latent_dim: int | None, n_latent: int) -> None:
    """Raise unless ``latent_dim`` is ``None`` or a dimension of z."""
    if latent_dim is None:
        return
    check_positive_int("restrict_to_latent_dim", latent_dim, minimum=0)
    if latent_dim >= n_latent:
        msg = f"restrict_to_latent_dim must be below n_latent={n_latent}, got {latent_dim}."
        raise ValueError(msg)


def thread_count(n_jobs: int | None) -> int | None:
    """VeloVI's (joblib's) ``n_jobs`` as a number of threads for ``limit_threads``.

    ``-1`` (or ``None``) gives ``None``: ``revelo.settings.n_jobs``, by default every CPU this
    process may use; ``-2`` one CPU fewer, and so on; a positive number is taken as it is.
    """
    if n_jobs is None or n_jobs == -1:
        return None
    if isinstance(n_jobs, int | np.integer) and not isinstance(n_jobs, bool) and n_jobs < -1:
        return max(1, available_cpus() + 1 + int(n_jobs))
    return check_n_jobs(n_jobs)


def permuted_anndata(
    model: BaseModelClass, adata: AnnData, permuted: dict[str, torch.Tensor]
) -> AnnData:
    """A copy of ``adata`` whose registered layers hold ``permuted``'s values.

    The values are those the model read (float32), cast back to each layer's dtype and
    storage (sparse stays sparse). The copy carries no scvi-tools registration: a query on it
    registers it anew, rather than reading ``adata``'s data through a copied identifier.
    """
    copy = adata.copy()
    for key in ("_scvi_uuid", "_scvi_manager_uuid"):
        copy.uns.pop(key, None)
    layers = registered_layers(model)
    for key, name in (
        (REGISTRY_KEYS.X_KEY, layers["spliced_layer"]),
        (REGISTRY_KEYS.U_KEY, layers["unspliced_layer"]),
    ):
        original = adata.X if name is None else adata.layers[name]
        values = permuted[key].cpu().numpy().astype(original.dtype, copy=False)
        if sparse.issparse(original):
            values = type(original)(values)
        if name is None:
            copy.X = values
        else:
            copy.layers[name] = values
    return copy
