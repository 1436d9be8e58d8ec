"""One shared latent time per cell, aggregated from the model's per-gene times."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse
from scipy.stats import rankdata

from revelo._utils import chunks, to_dense
from revelo._validation import HINT_VELOCITY, check_layer, root_mask

if TYPE_CHECKING:
    from collections.abc import Sequence

    from anndata import AnnData

#: Cells per block of the weighted median (its sort order and sums are cells × genes).
_CELL_BLOCK = 4096


def latent_time(
    adata: AnnData,
    *,
    fit_t_key: str = "fit_t",
    root_key: str | None = None,
    root_cells: Sequence[str] | Sequence[int] | np.ndarray | None = None,
    min_likelihood: float | None = None,
    smooth: bool = True,
    key_added: str = "latent_time",
    copy: bool = False,
) -> AnnData | None:
    """Aggregate the per-gene latent times into one time per cell, in [0, 1].

    Each gene's times are replaced by their ranks over cells (scaled to [0, 1]), which makes
    genes with different time scales or saturated kinetics comparable. A cell's time is the
    weighted median of its genes' ranks (weights: the model's mean log-likelihood
    ``var["revelo_log_likelihood"]``, else ``var["fit_likelihood"]``, when present; their
    rank over genes when none is positive, as for count likelihoods),
    which ignores the few genes whose fit is off for that cell; with ``smooth``, it is then
    averaged once with its neighbours' (``obsp["connectivities"]``).

    Without a root, time runs the way the model's gene times run: the cells that the genes
    put first get 0. With a root (``root_key`` or ``root_cells``), time is the distance
    from the root cells' median time, so they sit near 0 wherever they are; choosing the last
    cells as root reverses the direction.

    Parameters
    ----------
    adata
        Annotated data with ``layers[fit_t_key]`` (cells x genes, written by
        ``model.add_outputs``; NaN for genes that were not fitted).
    fit_t_key
        Layer with the per-gene latent times.
    root_key
        Boolean column of ``obs`` marking the root cells.
    root_cells
        Root cells as ``obs_names`` or integer positions. Give ``root_key`` or ``root_cells``,
        not both.
    min_likelihood
        Ignore genes whose ``var["fit_likelihood"]`` is below this value.
    smooth
        Average each cell's time with its neighbours' once, if ``obsp["connectivities"]``
        exists.
    key_added
        Column of ``obs`` to write the time to.
    copy
        Return a modified copy instead of writing to ``adata``.

    Returns
    -------
    Returns ``None``, or a copy of ``adata`` if ``copy=True``, with this field set:

    ``obs[key_added]``
        Shared latent time in [0, 1].
    """
    adata = adata.copy() if copy else adata
    check_layer(adata, fit_t_key, HINT_VELOCITY)
    root = root_mask(adata, root_key, root_cells)

    times = adata.layers[fit_t_key]
    genes = np.concatenate(
        [~np.all(np.isnan(to_dense(times[:, block])), axis=0) for block in chunks(adata.n_vars)]
    )
    if "velocity_genes" in adata.var:
        genes &= adata.var["velocity_genes"].to_numpy(dtype=bool)
    weights = np.ones(adata.n_vars)
    if "fit_likelihood" in adata.var:
        likelihood = np.nan_to_num(adata.var["fit_likelihood"].to_numpy(dtype=np.float64))
        if min_likelihood is not None:
            genes &= likelihood >= min_likelihood
        if "revelo_log_likelihood" in adata.var:
            likelihood = np.nan_to_num(
                adata.var["revelo_log_likelihood"].to_numpy(dtype=np.float64)
            )
        weights = np.clip(likelihood, 0, None)
        if not (weights[genes] > 0).any() and genes.any():
            # Log-probabilities of counts are never positive: weight by rank instead.
            weights = np.zeros(adata.n_vars)
            weights[genes] = rankdata(likelihood[genes]) / genes.sum()
    elif min_likelihood is not None:
        msg = "min_likelihood needs adata.var['fit_likelihood']: run model.add_outputs(adata)."
        raise KeyError(msg)
    genes &= weights > 0
    if not genes.any():
        msg = f"No gene has usable times in layers[{fit_t_key!r}] (all NaN or filtered out)."
        raise ValueError(msg)

    ranks = _gene_ranks(times, np.flatnonzero(genes))
    shared = np.concatenate(
        [
            _weighted_median(ranks[cells], weights[genes])
            for cells in chunks(adata.n_obs, _CELL_BLOCK)
        ]
    ).astype(np.float64)
    if smooth and "connectivities" in adata.obsp:
        shared = _neighbour_average(adata.obsp["connectivities"], shared)
    if root is not None:
        shared = np.abs(shared - np.nanmedian(shared[root]))
    shared -= np.nanmin(shared)
    if np.nanmax(shared) > 0:
        shared /= np.nanmax(shared)
    adata.obs[key_added] = shared
    return adata if copy else None


def _gene_ranks(times, genes: np.ndarray) -> np.ndarray:
    """Ranks over cells of the times of ``genes`` (column indices), scaled to [0, 1].

    NaN stays NaN. Computed a block of genes at a time into one float32 array, so the
    temporary float64 copies and sort orders hold a block, not every gene.
    """
    out = np.empty((times.shape[0], len(genes)), dtype=np.float32)
    for block in chunks(len(genes)):
        values = to_dense(times[:, genes[block]], np.float64)
        ranks = rankdata(values, axis=0, nan_policy="omit")
        counts = np.sum(~np.isnan(values), axis=0)
        out[:, block] = (ranks - 1) / np.maximum(counts - 1, 1)
    return out


def _weighted_median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Row-wise weighted median, skipping NaN entries (a row of NaN gives NaN)."""
    order = np.argsort(values, axis=1)  # NaN sorts last
    sorted_values = np.take_along_axis(values, order, axis=1)
    sorted_weights = np.where(np.isnan(sorted_values), 0, weights[order])
    cumulative = np.cumsum(sorted_weights, axis=1)
    half = cumulative[:, -1:] / 2
    position = (cumulative < half).sum(1).clip(max=values.shape[1] - 1)
    median = sorted_values[np.arange(len(values)), position]
    return np.where(cumulative[:, -1] > 0, median, np.nan)


def _neighbour_average(connectivities: sparse.spmatrix, values: np.ndarray) -> np.ndarray:
    """Average each cell's value with the connectivity-weighted mean of its neighbours'."""
    weights = sparse.csr_matrix(connectivities, dtype=np.float64)
    known = ~np.isnan(values)
    filled = np.where(known, values, 0)
    total = weights @ known.astype(np.float64)
    neighbours = np.divide(weights @ filled, total, out=filled.copy(), where=total > 0)
    own = np.where(known, values, neighbours)
    return 0.5 * own + 0.5 * neighbours
