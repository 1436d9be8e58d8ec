"""First-order moments: neighbour means of normalised spliced and unspliced counts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from .._smoothing import neighbor_mean, neighbor_weights
from .._threads import with_thread_limit
from .._utils import to_dense
from .._validation import check_min_cells, check_not_backed, check_spliced_unspliced
from ._neighbors import neighbors
from ._normalize import cell_totals, normalize_per_cell

if TYPE_CHECKING:
    from anndata import AnnData


def minmax_scale(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale every gene (column) to [0, 1].

    Parameters
    ----------
    matrix
        Dense cells × genes array.

    Returns
    -------
    ``(scaled, minimum, scale)`` with ``matrix = scaled * scale + minimum``. Constant genes get
    ``scale = 1`` (and scale to all zeros) so that the inverse always exists.
    """
    minimum = matrix.min(axis=0)
    scale = matrix.max(axis=0) - minimum
    scale = np.where(scale > 0, scale, 1.0).astype(matrix.dtype)
    scaled = (matrix - minimum) / scale
    return scaled.astype(np.float32), minimum, scale


#: Where the raw counts of each layer are kept once ``layers["spliced"|"unspliced"]`` hold
#: values in the units of the moments.
COUNT_LAYERS = {"spliced": "spliced_counts", "unspliced": "unspliced_counts"}


def count_layer(adata: AnnData, key: str) -> str:
    """Name of the layer with the raw counts of ``key`` (``"spliced"`` or ``"unspliced"``).

    ``layers[COUNT_LAYERS[key]]`` when present (written by :func:`revelo.pp.preprocess` and
    :func:`moments`), else ``key`` itself (counts as they were read).
    """
    return COUNT_LAYERS[key] if COUNT_LAYERS[key] in adata.layers else key


def keep_counts(adata: AnnData) -> None:
    """Keep the raw counts of ``layers["spliced"|"unspliced"]`` under their count names."""
    for key, counts_key in COUNT_LAYERS.items():
        if counts_key not in adata.layers:
            adata.layers[counts_key] = adata.layers[key]


def normalized_layers(adata: AnnData, *, normalize: bool = True) -> tuple:
    """Return the per-cell normalised spliced and unspliced counts of ``adata``.

    Library sizes are read from ``obs["initial_size_spliced"]``/``["initial_size_unspliced"]``
    (written by :func:`revelo.pp.preprocess` before its gene subsetting), or computed over the
    genes present when those columns are absent.

    Parameters
    ----------
    adata
        Annotated data matrix with raw counts in ``layers["spliced_counts"]`` and
        ``["unspliced_counts"]``, or (when those are absent) ``layers["spliced"]`` and
        ``["unspliced"]``.
    normalize
        With ``False``, return the counts as they are (as float32).

    Returns
    -------
    ``(spliced, unspliced)``, float32, sparse when the layers are sparse.
    """
    out = []
    for key in ("spliced", "unspliced"):
        counts = adata.layers[count_layer(adata, key)]
        size_key = f"initial_size_{key}"
        if size_key in adata.obs:
            totals = adata.obs[size_key].to_numpy(dtype=np.float64)
        else:
            totals = cell_totals(counts)
        out.append(normalize_per_cell(counts, totals if normalize else None))
    return tuple(out)


@with_thread_limit
def moments(
    adata: AnnData,
    *,
    n_neighbors: int | None = None,
    normalize: bool = True,
    scale: bool = True,
    copy: bool = False,
) -> AnnData | None:
    """Compute first-order moments ``Ms`` and ``Mu``.

    Each cell's moment is the mean of its own and its neighbours' normalised counts, with
    neighbours taken from ``obsp["connectivities"]`` (connectivity > 0, equal weights).
    :func:`revelo.pp.preprocess` calls this; use it directly to recompute moments on a graph of
    your own.

    Parameters
    ----------
    adata
        Annotated data matrix with raw counts in ``layers["spliced"]`` and
        ``layers["unspliced"]`` (or, after :func:`revelo.pp.preprocess` or an earlier call, in
        ``layers["spliced_counts"]`` and ``["unspliced_counts"]``).
    n_neighbors
        When given, first build a new graph with :func:`scanpy.pp.neighbors` on
        ``obsm["X_pca"]`` (or on ``X`` when there is no PCA); otherwise use the graph in
        ``obsp["connectivities"]``.
    normalize
        Normalise every cell to the median library size first (see
        :func:`revelo.pp.preprocess`); ``False`` smooths the raw counts.
    scale
        Min-max scale every gene of ``Ms`` and ``Mu`` to [0, 1].
    copy
        Return a modified copy instead of writing into ``adata``.

    Returns
    -------
    ``None``, or a copy when ``copy=True``, with these fields written:

    ``layers["Ms"]``, ``layers["Mu"]``
        Dense float32 moments of spliced and unspliced counts (scaled when ``scale=True``).
    ``var["Ms_min"]``, ``var["Ms_scale"]``, ``var["Mu_min"]``, ``var["Mu_scale"]``
        Only when ``scale=True``: per-gene minimum and range, so that
        ``Ms * Ms_scale + Ms_min`` gives normalised units back.
    ``layers["spliced"]``, ``layers["unspliced"]``
        Float32 normalised counts in the units of ``Ms``/``Mu``, ``(x - Ms_min) / Ms_scale``
        (sparse for sparse input), so that ``Ms`` is their neighbour mean and scVelo's
        second-order moments (``scv.tl.velocity(mode="stochastic")``) match ``Ms``/``Mu``.
    ``layers["spliced_counts"]``, ``layers["unspliced_counts"]``
        The raw counts, moved from ``layers["spliced"|"unspliced"]`` when absent.
    ``obsp["connectivities"]``, ``obsp["distances"]``, ``uns["neighbors"]``
        Only when ``n_neighbors`` is given.
    """
    check_not_backed(adata)
    check_spliced_unspliced(
        adata,
        spliced_layer=count_layer(adata, "spliced"),
        unspliced_layer=count_layer(adata, "unspliced"),
        counts=True,
    )
    if copy:
        adata = adata.copy()
    if n_neighbors is not None:
        check_min_cells(adata.n_obs, n_neighbors)
        use_rep = "X_pca" if "X_pca" in adata.obsm else "X"
        neighbors(adata, n_neighbors=n_neighbors, use_rep=use_rep)
    elif "connectivities" not in adata.obsp:
        msg = (
            "No neighbour graph in adata.obsp['connectivities']. Pass `n_neighbors=30` to "
            "build one, or run `sc.pp.neighbors(adata)` or `revelo.pp.preprocess(adata)` first."
        )
        raise KeyError(msg)
    write_moments(adata, *normalized_layers(adata, normalize=normalize), scale=scale)
    return adata if copy else None


def write_moments(adata: AnnData, spliced, unspliced, *, scale: bool = True) -> None:
    """Write ``layers["Ms"]``/``["Mu"]`` (and their scaling) from normalised counts.

    ``layers["spliced"]``/``["unspliced"]`` get the normalised counts in the units of the
    moments, so that every layer scVelo reads agrees with ``Ms``/``Mu``; the raw counts are kept
    first in ``layers["spliced_counts"]``/``["unspliced_counts"]``.

    Parameters
    ----------
    adata
        Annotated data matrix with a graph in ``obsp["connectivities"]``.
    spliced
        Normalised spliced counts, cells × genes of ``adata``.
    unspliced
        Normalised unspliced counts.
    scale
        Min-max scale every gene and write ``var["Ms_min"|"Ms_scale"|"Mu_min"|"Mu_scale"]``.
    """
    keep_counts(adata)
    weights = neighbor_weights(adata.obsp["connectivities"])
    for key, layer, matrix in (("Ms", "spliced", spliced), ("Mu", "unspliced", unspliced)):
        smoothed = neighbor_mean(weights, matrix)
        minimum, gene_scale = np.float32(0.0), np.float32(1.0)
        if scale:
            smoothed, minimum, gene_scale = minmax_scale(smoothed)
            adata.var[f"{key}_min"] = minimum
            adata.var[f"{key}_scale"] = gene_scale
        adata.layers[key] = smoothed
        adata.layers[layer] = _moment_units(matrix, minimum, gene_scale)


def _moment_units(matrix, minimum, scale):
    """``(matrix - minimum) / scale`` per gene, as float32.

    A sparse input stays sparse: only the genes with a nonzero ``minimum`` (whose zeros move
    off zero) are stored densely, so memory grows with those genes, not with all of them.
    """
    n_genes = matrix.shape[1]
    minimum = np.broadcast_to(np.asarray(minimum, dtype=np.float32), (n_genes,))
    scale = np.broadcast_to(np.asarray(scale, dtype=np.float32), (n_genes,))
    if not sparse.issparse(matrix):
        return ((to_dense(matrix, np.float32) - minimum) / scale).astype(np.float32)
    scaled = sparse.csc_matrix(matrix, dtype=np.float32) @ sparse.diags(1.0 / scale)
    shifted = np.flatnonzero(minimum != 0)
    if shifted.size == 0:
        return sparse.csr_matrix(scaled, dtype=np.float32)
    kept = np.flatnonzero(minimum == 0)
    moved = scaled[:, shifted].toarray() - minimum[shifted] / scale[shifted]
    stacked = sparse.hstack([scaled[:, kept], sparse.csc_matrix(moved)], format="csc")
    order = np.argsort(np.concatenate([kept, shifted]))
    return sparse.csr_matrix(stacked[:, order], dtype=np.float32)
