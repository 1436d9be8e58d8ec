"""Ground-truth accuracy of velocities and latent time, for simulations with a known truth."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy.stats import rankdata

from revelo._utils import to_dense
from revelo._validation import gene_mask

from ._metrics import _layer, _obs_column, _row_cosine

if TYPE_CHECKING:
    from anndata import AnnData


def velocity_accuracy(
    adata: AnnData,
    *,
    vkey: str = "velocity",
    true_key: str = "true_velocity",
    genes: Sequence[str] | np.ndarray | None = None,
    zero_tol: float = 1e-8,
) -> dict[str, float]:
    """Agreement of inferred velocities with the true ones of a simulation.

    Only genes whose inferred and true velocities are finite in every cell are compared.

    Parameters
    ----------
    adata
        Annotated data matrix with ``layers[vkey]`` and ``layers[true_key]``.
    vkey
        Layer of the inferred velocities.
    true_key
        Layer of the true velocities.
    genes
        Gene names or a boolean mask over ``var_names`` to restrict to; ``None`` uses all genes.
    zero_tol
        Entries whose true velocity has an absolute value at most this are left out of the sign
        agreement: their sign is meaningless.

    Returns
    -------
    ``"sign_agreement"``: fraction of the compared cell × gene entries where the inferred
    velocity has the sign of the true one. ``"cosine"``: mean over cells of the cosine similarity
    between the inferred and true velocity vectors (0 for a cell where either is zero).
    """
    velocity = to_dense(_layer(adata, vkey), np.float64)
    truth = to_dense(_layer(adata, true_key), np.float64)
    keep = np.isfinite(velocity).all(axis=0) & np.isfinite(truth).all(axis=0)
    if genes is not None:
        keep &= gene_mask(adata.var_names, genes)
    if not keep.any():
        msg = f"No gene has finite values in both layers[{vkey!r}] and layers[{true_key!r}]."
        raise ValueError(msg)
    velocity, truth = velocity[:, keep], truth[:, keep]
    signed = np.abs(truth) > zero_tol
    n_signed = int(signed.sum())
    sign_agreement = (
        float(np.mean(np.sign(velocity[signed]) == np.sign(truth[signed])))
        if n_signed
        else float("nan")
    )
    return {
        "sign_agreement": sign_agreement,
        "cosine": float(np.mean(_row_cosine(velocity, truth))),
    }


def latent_time_accuracy(
    adata: AnnData,
    *,
    time_key: str = "latent_time",
    true_key: str = "true_t",
    gene_time_key: str = "fit_t",
) -> dict[str, float]:
    """Rank agreement of inferred times with the true time of a simulation.

    Parameters
    ----------
    adata
        Annotated data matrix with ``obs[time_key]`` and ``obs[true_key]``.
    time_key
        Column of ``adata.obs`` with the shared latent time.
    true_key
        Column of ``adata.obs`` with the true time.
    gene_time_key
        Layer with per-gene times (cells × genes); optional.

    Returns
    -------
    ``"spearman"``: Spearman correlation between ``obs[time_key]`` and ``obs[true_key]`` over
    cells where both are finite. ``"median_gene_spearman"``: median over genes of the Spearman
    correlation between each column of ``layers[gene_time_key]`` and the true time, skipping
    genes with non-finite or constant times; NaN when the layer is absent.
    """
    truth = _obs_column(adata, true_key, hint="revelo.datasets.simulate")
    latent = _obs_column(adata, time_key, hint="revelo.tl.latent_time(adata)")
    finite = np.isfinite(truth) & np.isfinite(latent)
    spearman = _spearman_columns(latent[finite, None], truth[finite])[0]

    median_gene = float("nan")
    if gene_time_key in adata.layers:
        gene_times = to_dense(adata.layers[gene_time_key], np.float64)
        cells = np.isfinite(truth)
        gene_times = gene_times[cells]
        usable = np.isfinite(gene_times).all(axis=0)
        if usable.any():
            per_gene = _spearman_columns(gene_times[:, usable], truth[cells])
            if np.isfinite(per_gene).any():
                median_gene = float(np.nanmedian(per_gene))
    return {"spearman": float(spearman), "median_gene_spearman": median_gene}


def _spearman_columns(matrix: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Spearman correlation of every column with ``reference``; NaN for constant columns."""
    ranks = rankdata(matrix, axis=0)
    ranks -= ranks.mean(axis=0)
    ref = rankdata(reference)
    ref -= ref.mean()
    scale = np.sqrt((ranks**2).sum(axis=0) * (ref**2).sum())
    return np.divide(ref @ ranks, scale, out=np.full(matrix.shape[1], np.nan), where=scale > 0)
