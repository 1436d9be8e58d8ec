"""From raw spliced/unspliced counts to a model-ready AnnData."""

from __future__ import annotations

import logging
import time
import warnings
from typing import TYPE_CHECKING

import numpy as np
import scanpy as sc
from scipy import sparse

from .._steady_state import steady_state_fit
from .._threads import with_thread_limit
from .._utils import to_dense
from .._validation import (
    check_min_cells,
    check_n_top_genes,
    check_not_backed,
    check_spliced_unspliced,
    check_unique_names,
    empty_cells_and_genes,
    raise_no_variable_genes,
)
from ._moments import keep_counts, write_moments
from ._neighbors import neighbors
from ._normalize import cell_totals, normalize_per_cell

if TYPE_CHECKING:
    from anndata import AnnData

logger = logging.getLogger(__name__)


@with_thread_limit
def preprocess(
    adata: AnnData,
    *,
    min_shared_counts: int = 20,
    n_top_genes: int | None = 2000,
    n_pcs: int = 30,
    n_neighbors: int = 30,
    normalize: bool = True,
    smooth: bool = True,
    filter_velocity_genes: bool = True,
    compute_umap: bool | None = None,
    random_state: int = 0,
) -> AnnData:
    """Filter, normalise and smooth raw spliced/unspliced counts for velocity inference.

    The steps are: drop cells and genes without any count; keep genes with at least
    ``min_shared_counts`` shared counts (spliced counts in cells where the gene is also
    unspliced, plus unspliced counts in cells where it is also spliced); normalise every cell of
    each layer to the median library size of that layer; log-transform ``X`` (the spliced
    counts); keep the ``n_top_genes`` highly variable genes (scanpy's ``"seurat"`` flavour on the
    log data); PCA; a kNN graph; first-order moments ``Ms``/``Mu`` scaled per gene to [0, 1]; a
    steady-state fit that flags (and by default keeps) the genes with a usable phase portrait;
    UMAP. Matrices stay sparse until the gene subset is fixed, so this scales to 10⁵ cells.

    The input is never modified. Extra layers (e.g. a simulation's ground truth), ``obs``,
    ``obsm`` and ``uns`` entries are carried over and subset with the cells and genes.

    Parameters
    ----------
    adata
        Annotated data matrix with raw integer counts (any numeric dtype holding whole numbers;
        dense, CSR or CSC) in ``layers["spliced"]`` and ``layers["unspliced"]``.
    min_shared_counts
        Minimum shared counts for a gene to be kept.
    n_top_genes
        Number of highly variable genes to keep; ``None`` (or more than there are genes) keeps
        every gene that passed the count filter, which suits small simulations.
    n_pcs
        Number of principal components for the neighbour graph (capped by the data size).
    n_neighbors
        Number of neighbours per cell, the cell itself included.
    normalize
        Normalise every cell of each layer to the median library size of that layer. Turn it
        off for data whose library size is not technical, such as :func:`revelo.datasets.simulate`
        (all genes start at zero there, so early cells have almost no counts).
    smooth
        Compute the moments ``Ms``/``Mu``. With ``False`` the data are left as counts: no
        moments are written and the velocity genes are chosen from a steady-state fit on the
        per-cell normalised counts instead. This is the input for count likelihoods, which read
        the raw ``layers["spliced_counts"]``/``["unspliced_counts"]`` (always kept) with
        ``obs["initial_size_spliced"]``/``["initial_size_unspliced"]`` as library sizes.
    filter_velocity_genes
        Keep only the genes flagged in ``var["velocity_genes"]``.
    compute_umap
        Compute a UMAP embedding. `None` computes one only when the input has no
        ``obsm["X_umap"]``, so that a published embedding is kept (and says so in the log);
        `True` computes one and replaces it; `False` never computes one.
    random_state
        Seed for PCA, the neighbour search and UMAP.

    Returns
    -------
    A new AnnData over the kept cells and genes with these fields written:

    ``X``
        ``log1p`` of the normalised (with ``normalize=False``: raw) spliced counts; float32,
        sparse when the input is.
    ``layers["spliced_counts"]``, ``layers["unspliced_counts"]``
        The raw counts, unchanged apart from subsetting; the layers to register for the count
        likelihoods.
    ``layers["Ms"]``, ``layers["Mu"]``
        Only when ``smooth=True``: dense float32 first-order moments (mean over each cell
        and its neighbours of the normalised counts), min-max scaled to [0, 1] per gene.
    ``layers["spliced"]``, ``layers["unspliced"]``
        With ``smooth=True``: float32 normalised counts in the units of ``Ms``/``Mu``
        (``(x - Ms_min) / Ms_scale``; sparse when the input is, except the genes whose
        ``Ms_min`` is not zero), whose neighbour mean is ``Ms``, so that scVelo's
        tools that read them (second-order moments in
        ``scv.tl.velocity(mode="stochastic")``) agree with ``Ms``/``Mu``. With
        ``smooth=False``: the raw counts (the same arrays as ``*_counts``).
    ``obs["initial_size_spliced"]``, ``obs["initial_size_unspliced"]``
        Library sizes over the genes that passed the shared-count filter.
    ``var["shared_counts"]``
        Shared counts of each gene.
    ``var["Ms_min"]``, ``var["Ms_scale"]``, ``var["Mu_min"]``, ``var["Mu_scale"]``
        Only when ``smooth=True``: per-gene minimum and range of the unscaled moments;
        ``Ms * Ms_scale + Ms_min`` gives back normalised units.
    ``var["velocity_gamma"]``, ``var["velocity_r2"]``
        Steady-state ratio ``gamma`` (in the scaled units of ``Ms``/``Mu``, or normalised
        counts when ``smooth=False``) and the ``r2`` of ``u ≈ gamma * s`` over all cells.
    ``var["velocity_genes"]``
        ``r2 > 0``, ``gamma > 0`` and both layers vary across cells.
    ``obsm["X_pca"]``, ``varm["PCs"]``, ``uns["pca"]``
        PCA of ``X`` over the highly variable genes (written by :func:`scanpy.pp.pca`).
    ``obsp["connectivities"]``, ``obsp["distances"]``, ``uns["neighbors"]``
        The kNN graph (written by :func:`scanpy.pp.neighbors`).
    ``obsm["X_umap"]``, ``uns["umap"]``
        Written by :func:`scanpy.tl.umap` with ``compute_umap=True``, or with the default
        `None` when the input had no ``obsm["X_umap"]``; otherwise the input's embedding is
        carried over (subset to the kept cells).
    ``uns["revelo_preprocess"]``
        The settings used, the number of genes left after each step and, under
        ``"step_seconds"``, the wall seconds of each step (``filter``, ``normalize``,
        ``highly_variable``, ``pca``, ``neighbors``, ``moments`` (with ``smooth=False``: the
        dense counts), ``velocity_genes``, ``umap``); the same times are logged at the ``INFO``
        level.

    Raises
    ------
    ValueError
        When the input is invalid (see ``revelo._validation``), when too few cells remain for
        the graph, or when no gene passes a filter.
    """
    check_not_backed(adata)
    check_unique_names(adata)
    check_spliced_unspliced(adata, counts=True)
    if n_pcs < 1:
        msg = f"n_pcs={n_pcs} must be at least 1."
        raise ValueError(msg)
    check_n_top_genes(n_top_genes)

    clock = _StepClock()
    spliced, unspliced = adata.layers["spliced"], adata.layers["unspliced"]
    empty_cells, empty_genes = empty_cells_and_genes(adata)
    _warn_dropped(empty_cells, "cells")
    _warn_dropped(empty_genes, "genes")
    shared = _shared_counts(spliced, unspliced)
    keep_genes = ~empty_genes & (shared >= min_shared_counts)
    keep_cells = ~empty_cells
    if not keep_cells.any():
        msg = "Every cell has zero spliced and unspliced counts; nothing to preprocess."
        raise ValueError(msg)
    if not keep_genes.any():
        msg = (
            f"No gene has min_shared_counts={min_shared_counts} shared spliced/unspliced counts "
            f"(the highest is {shared.max():g}). Lower min_shared_counts."
        )
        raise ValueError(msg)
    check_min_cells(int(keep_cells.sum()), n_neighbors)

    out = adata[keep_cells, keep_genes].copy()
    out.var["shared_counts"] = shared[keep_genes]
    clock.lap("filter")
    normalized = {}
    for key in ("spliced", "unspliced"):
        totals = cell_totals(out.layers[key])
        out.obs[f"initial_size_{key}"] = totals
        normalized[key] = normalize_per_cell(out.layers[key], totals if normalize else None)
    out.X = _log1p(normalized["spliced"])
    n_shared = out.n_vars
    clock.lap("normalize")

    if n_top_genes is not None and n_top_genes < out.n_vars:
        try:
            hvg = sc.pp.highly_variable_genes(
                out, n_top_genes=n_top_genes, flavor="seurat", inplace=False
            )
        except (IndexError, ValueError) as error:
            raise_no_variable_genes(out.layers["spliced"], n_top_genes, error)
        keep = hvg["highly_variable"].to_numpy()
        out = out[:, keep].copy()
        normalized = {key: matrix[:, keep] for key, matrix in normalized.items()}
    n_hvg = out.n_vars
    clock.lap("highly_variable")

    if out.n_vars < 2:
        msg = (
            f"Only {out.n_vars} gene is left after filtering; at least 2 are needed. Lower "
            "min_shared_counts or raise n_top_genes."
        )
        raise ValueError(msg)
    n_comps = min(n_pcs, out.n_obs - 1, out.n_vars - 1)
    sc.pp.pca(out, n_comps=n_comps, random_state=random_state, mask_var=None)
    clock.lap("pca")
    neighbors(out, n_neighbors=n_neighbors, use_rep="X_pca", random_state=random_state)
    clock.lap("neighbors")

    if smooth:
        write_moments(out, normalized["spliced"], normalized["unspliced"])
        fit_s, fit_u = out.layers["Ms"], out.layers["Mu"]
    else:
        keep_counts(out)
        fit_s, fit_u = (to_dense(normalized[key]) for key in ("spliced", "unspliced"))
    clock.lap("moments")
    gamma, r2 = steady_state_fit(fit_s, fit_u)
    varies = (np.ptp(fit_s, axis=0) > 0) & (np.ptp(fit_u, axis=0) > 0)
    out.var["velocity_gamma"] = gamma
    out.var["velocity_r2"] = r2
    out.var["velocity_genes"] = (r2 > 0) & (gamma > 0) & varies
    n_velocity = int(out.var["velocity_genes"].sum())
    if filter_velocity_genes:
        if n_velocity == 0:
            msg = (
                f"None of the {out.n_vars} genes passes the steady-state fit (r2 > 0, gamma > 0);"
                " pass filter_velocity_genes=False, or keep more genes (larger n_top_genes, "
                "smaller min_shared_counts)."
            )
            raise ValueError(msg)
        out = out[:, out.var["velocity_genes"].to_numpy()].copy()

    clock.lap("velocity_genes")
    umap_computed = _umap(out, compute_umap, random_state)
    clock.lap("umap")

    out.uns["revelo_preprocess"] = {
        "min_shared_counts": min_shared_counts,
        "n_top_genes": n_top_genes,
        "n_pcs": n_comps,
        "n_neighbors": n_neighbors,
        "normalize": normalize,
        "smooth": smooth,
        "filter_velocity_genes": filter_velocity_genes,
        "compute_umap": umap_computed,
        "random_state": random_state,
        "n_cells": out.n_obs,
        "n_genes_input": adata.n_vars,
        "n_genes_shared_counts": n_shared,
        "n_genes_highly_variable": n_hvg,
        "n_velocity_genes": n_velocity,
        "step_seconds": clock.seconds,
    }
    removed = {
        "without any spliced or unspliced count": int(empty_genes.sum()),
        f"with fewer than min_shared_counts={min_shared_counts} shared counts": (
            adata.n_vars - int(empty_genes.sum()) - n_shared
        ),
    }
    if n_top_genes is not None:
        removed[f"outside the n_top_genes={n_top_genes} most variable"] = n_shared - n_hvg
    if filter_velocity_genes:
        why = "without a usable steady-state fit (r2 or gamma <= 0, or constant)"
        removed[why] = n_hvg - out.n_vars
    logger.info(_gene_report(adata.n_vars, out.n_vars, removed))
    logger.info(
        "preprocess took "
        + ", ".join(f"{step} {seconds:.1f} s" for step, seconds in clock.seconds.items())
    )
    return out


class _StepClock:
    """Wall seconds of consecutive steps: each :meth:`lap` closes the step since the last."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, step: str) -> None:
        now = time.perf_counter()
        self.seconds[step] = now - self._last
        self._last = now


def _gene_report(n_input: int, n_kept: int, removed: dict[str, int]) -> str:
    """How many genes each filter removed, and why, on one line per filter."""
    width = len(f"{n_input:,}")
    lines = [f"preprocess kept {n_kept:,} of {n_input:,} genes; removed:"]
    lines += [f"  {n:>{width},} {why}" for why, n in removed.items()]
    return "\n".join(lines)


def _shared_counts(spliced, unspliced) -> np.ndarray:
    """Spliced counts where unspliced > 0 plus unspliced counts where spliced > 0, per gene."""
    if sparse.issparse(spliced):
        spliced, unspliced = sparse.csr_matrix(spliced), sparse.csr_matrix(unspliced)
        in_both = spliced.multiply(unspliced > 0).sum(axis=0)
        total = in_both + unspliced.multiply(spliced > 0).sum(axis=0)
    else:
        spliced, unspliced = np.asarray(spliced), np.asarray(unspliced)
        total = (spliced * (unspliced > 0)).sum(axis=0) + (unspliced * (spliced > 0)).sum(axis=0)
    return np.asarray(total, dtype=np.float64).ravel()


def _log1p(matrix):
    if sparse.issparse(matrix):
        logged = matrix.copy()
        logged.data = np.log1p(logged.data)
        return logged
    return np.log1p(matrix)


def _umap(adata: AnnData, compute_umap: bool | None, random_state: int) -> bool:
    """Compute a UMAP as ``compute_umap`` asks; return whether one was computed."""
    if compute_umap is None and "X_umap" in adata.obsm:
        logger.info(
            "Keeping the input's obsm['X_umap']; pass compute_umap=True to compute a new one."
        )
        return False
    if compute_umap is False:
        return False
    sc.tl.umap(adata, random_state=random_state)
    return True


def _warn_dropped(mask: np.ndarray, what: str) -> None:
    if mask.any():
        msg = f"Dropping {int(mask.sum())} {what} without any spliced or unspliced count."
        warnings.warn(msg, UserWarning, stacklevel=3)
