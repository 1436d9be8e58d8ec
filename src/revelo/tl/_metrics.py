"""Evaluation metrics for RNA velocity on the kNN graph: boundary direction, coherence, mixing.

The graph-based scores (:func:`cross_boundary_correctness`, :func:`in_cluster_coherence`,
:func:`velocity_consistency`) follow the definitions of the VeloAE paper (Qiao et al. 2021, PNAS)
and UniTVelo (Gao et al. 2022). They work on the edges of the kNN graph as (cell, neighbour)
pairs with gathers and sparse products; no Python loop runs per cell.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, NamedTuple

import numpy as np
import pandas as pd
from scipy import sparse

from revelo._docs import shared_docs
from revelo._utils import to_dense
from revelo._validation import HINT_MOMENTS, HINT_NEIGHBORS, HINT_VELOCITY, check_layer

from ._utils import velocity_gene_mask

if TYPE_CHECKING:
    from anndata import AnnData

# Bounds the size of the (pairs × features) blocks gathered at once, about 32 MiB in float64.
_CHUNK_ELEMENTS = 2**22

# Parameter text shared by the graph-based metrics, at indentation 0.
_DOCS: dict[str, str] = {
    "adata": """\
adata
    Annotated data matrix with a kNN graph.""",
    "cluster_key": """\
cluster_key
    Column of ``adata.obs`` holding the cluster labels.""",
    "basis": """\
basis
    Embedding to work in (velocities from ``obsm[f"{vkey}_{basis}"]``); ``None`` uses
    ``layers[vkey]`` on finite (and, when marked, velocity) genes.""",
    "vkey": """\
vkey
    Key of the velocities.""",
    "neighbors_key": """\
neighbors_key
    Key in ``adata.uns`` of a :func:`scanpy.pp.neighbors` result; ``None`` reads
    ``obsp["connectivities"]``.""",
}

#: Fills the ``%(name)s`` placeholders of a metric's docstring with the shared parameter text.
_metric_docs = shared_docs(_DOCS, indent=4)


class MetricScores(NamedTuple):
    """Scores per group (edge, cluster or cell) and their summary.

    A named tuple, so ``scores, mean = cross_boundary_correctness(...)`` works.
    """

    #: One score per transition edge, cluster or cell; NaN where it is undefined.
    scores: pd.Series
    #: Mean of the non-NaN ``scores``.
    mean: float


# --------------------------------------------------------------------------------------------
# graph-based metrics
# --------------------------------------------------------------------------------------------


@_metric_docs
def cross_boundary_correctness(
    adata: AnnData,
    *,
    cluster_key: str,
    edges: Sequence[tuple[str, str]],
    basis: str | None = None,
    vkey: str = "velocity",
    xkey: str = "Ms",
    neighbors_key: str | None = None,
) -> MetricScores:
    """Cross-boundary direction correctness (CBDir).

    For a known transition ``(A, B)``, each cell ``i`` of ``A`` with at least one neighbour of
    ``B`` in the kNN graph scores the mean cosine similarity between its velocity ``v_i`` and the
    displacements ``x_j - x_i`` to those neighbours ``j``. The edge's score is the mean over such
    cells (cells of ``A`` without a neighbour in ``B`` are skipped); +1 means every boundary cell
    points straight at its neighbours in ``B``, -1 straight away from them.

    Parameters
    ----------
    %(adata)s
    %(cluster_key)s
    edges
        Ground-truth transitions as ``(source, target)`` cluster pairs.
    basis
        Embedding to work in, e.g. ``"umap"``: positions from ``obsm[f"X_{basis}"]`` and
        velocities from ``obsm[f"{vkey}_{basis}"]``. ``None`` works in gene space on
        ``layers[xkey]`` and ``layers[vkey]``, using the genes whose velocity is finite in every
        cell, restricted to ``var["velocity_genes"]`` when that column exists.
    %(vkey)s
    xkey
        Layer holding the expression positions in gene space; ignored when ``basis`` is given.
    %(neighbors_key)s

    Returns
    -------
    :class:`~revelo.tl._metrics.MetricScores` with ``scores`` indexed by a
    ``(source, target)`` MultiIndex, one entry per edge (NaN where no cell of ``source``
    neighbours ``target``), and ``mean`` over edges.
    """
    labels = _cluster_labels(adata, cluster_key)
    known = set(labels)
    missing = sorted({name for edge in edges for name in edge} - known)
    if len(edges) == 0 or missing:
        msg = (
            f"`edges` must be a non-empty list of (source, target) pairs of clusters in "
            f"adata.obs[{cluster_key!r}]; unknown: {missing}, available: {sorted(known)}."
        )
        raise ValueError(msg)
    velocity, position = _velocity_and_position(adata, vkey=vkey, basis=basis, xkey=xkey)
    rows, cols = _neighbor_pairs(adata, neighbors_key)

    scores = {}
    for source, target in edges:
        on_boundary = (labels[rows] == source) & (labels[cols] == target)
        cosine = _displacement_cosine(velocity, position, rows[on_boundary], cols[on_boundary])
        scores[source, target] = _mean_of_cell_means(rows[on_boundary], cosine)
    result = pd.Series(scores, dtype=float)
    result.index = pd.MultiIndex.from_tuples(list(scores), names=["source", "target"])
    empty = result.index[result.isna()].tolist()
    if empty:
        msg = f"No cell of the source cluster has a neighbour in the target cluster for {empty}."
        warnings.warn(msg, UserWarning, stacklevel=2)
    return MetricScores(result, _nanmean(result))


@_metric_docs
def in_cluster_coherence(
    adata: AnnData,
    *,
    cluster_key: str,
    basis: str | None = None,
    vkey: str = "velocity",
    neighbors_key: str | None = None,
) -> MetricScores:
    """In-cluster coherence (ICCoh) of velocities.

    Each cell scores the mean cosine similarity between its velocity and those of its kNN
    neighbours in the same cluster (cells without such a neighbour are skipped); a cluster's
    score is the mean over its cells.

    Parameters
    ----------
    %(adata)s
    %(cluster_key)s
    %(basis)s
    %(vkey)s
    %(neighbors_key)s

    Returns
    -------
    :class:`~revelo.tl._metrics.MetricScores` with one score per cluster (index named
    ``cluster_key``) and ``mean`` over clusters.
    """
    labels = _cluster_labels(adata, cluster_key)
    velocity, _ = _velocity_and_position(adata, vkey=vkey, basis=basis, xkey=None)
    rows, cols = _neighbor_pairs(adata, neighbors_key)
    same = labels[rows] == labels[cols]
    per_cell = _neighbor_cosine(velocity, rows[same], cols[same])
    clusters = _observed_clusters(adata, cluster_key)
    result = pd.Series(
        [_nanmean(per_cell[labels == cluster]) for cluster in clusters],
        index=pd.Index(clusters, name=cluster_key),
        dtype=float,
    )
    return MetricScores(result, _nanmean(result))


@_metric_docs
def velocity_consistency(
    adata: AnnData,
    *,
    vkey: str = "velocity",
    method: Literal["cosine", "pearson"] = "cosine",
    basis: str | None = None,
    neighbors_key: str | None = None,
) -> MetricScores:
    """Local consistency of velocities over the kNN graph.

    Each cell scores the mean similarity between its velocity and those of all its kNN
    neighbours, whatever their cluster. ``method="pearson"`` centres every velocity vector first,
    which is the per-cell score of scVelo's ``velocity_confidence``.

    Parameters
    ----------
    %(adata)s
    %(vkey)s
    method
        ``"cosine"`` similarity or ``"pearson"`` correlation.
    %(basis)s
    %(neighbors_key)s

    Returns
    -------
    :class:`~revelo.tl._metrics.MetricScores` with one score per cell (indexed by
    ``obs_names``; NaN for cells without neighbours) and ``mean`` over cells.
    """
    if method not in ("cosine", "pearson"):
        msg = f"`method` must be 'cosine' or 'pearson', not {method!r}."
        raise ValueError(msg)
    velocity, _ = _velocity_and_position(adata, vkey=vkey, basis=basis, xkey=None)
    if method == "pearson":
        velocity = velocity - velocity.mean(axis=1, keepdims=True)
    rows, cols = _neighbor_pairs(adata, neighbors_key)
    per_cell = _neighbor_cosine(velocity, rows, cols)
    result = pd.Series(per_cell, index=adata.obs_names.copy(), name=f"{vkey}_consistency")
    return MetricScores(result, _nanmean(result))


# --------------------------------------------------------------------------------------------
# ground-truth metrics (simulations)
# --------------------------------------------------------------------------------------------


def batch_mixing(
    adata: AnnData,
    *,
    batch_key: str,
    use_rep: str = "X_revelo",
    n_neighbors: int = 15,
) -> MetricScores:
    """How well batches mix among each cell's nearest neighbours in a representation.

    For every cell, the fraction of its ``n_neighbors`` nearest neighbours (Euclidean, in
    ``obsm[use_rep]``, the cell itself excluded) that come from another batch, divided by the
    fraction expected if batch labels were shuffled, ``(n − n_b) / (n − 1)`` for a cell of a
    batch with ``n_b`` of the ``n`` cells. A neighbour-purity score in the spirit of kBET:
    1 when batches are as mixed as chance, 0 when every neighbour is from the cell's own
    batch.

    Parameters
    ----------
    adata
        Annotated data matrix with ``obs[batch_key]`` and ``obsm[use_rep]``, e.g. a model's
        latent space: ``adata.obsm["X_revelo"] = model.get_latent_representation()``.
    batch_key
        Column of ``adata.obs`` with the batches (at least two).
    use_rep
        Key of ``adata.obsm`` with the representation.
    n_neighbors
        Neighbours per cell.

    Returns
    -------
    Per-batch mean scores (indexed by batch) and the mean over cells.
    """
    from sklearn.neighbors import NearestNeighbors

    if use_rep not in adata.obsm:
        msg = (
            f"adata.obsm has no {use_rep!r}; store the representation first, e.g. "
            f"adata.obsm[{use_rep!r}] = model.get_latent_representation()."
        )
        raise KeyError(msg)
    labels = _cluster_labels(adata, batch_key)
    batches, codes, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    if len(batches) < 2:
        msg = f"adata.obs[{batch_key!r}] has a single batch; mixing needs at least two."
        raise ValueError(msg)
    n_cells = len(labels)
    if not 1 <= n_neighbors < n_cells:
        msg = f"n_neighbors={n_neighbors} must be between 1 and the number of cells minus 1."
        raise ValueError(msg)
    representation = np.asarray(adata.obsm[use_rep], dtype=np.float64)
    search = NearestNeighbors(n_neighbors=n_neighbors + 1).fit(representation)
    neighbours = search.kneighbors(representation, return_distance=False)
    # Drop each cell itself (the first column unless duplicated points tie with it).
    own = neighbours == np.arange(n_cells)[:, None]
    own[own.sum(1) == 0, -1] = True
    neighbours = neighbours[~own].reshape(n_cells, n_neighbors)
    observed = (codes[neighbours] != codes[:, None]).mean(1)
    expected = (n_cells - sizes[codes]) / (n_cells - 1)
    score = observed / expected
    per_batch = pd.Series(
        [score[codes == code].mean() for code in range(len(batches))],
        index=pd.Index(batches, name=batch_key),
    )
    return MetricScores(per_batch, float(score.mean()))


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def _layer(adata: AnnData, key: str) -> np.ndarray:
    hints = {"Ms": HINT_MOMENTS, "true_velocity": "simulate data with revelo.datasets.simulate"}
    check_layer(adata, key, hints.get(key, HINT_VELOCITY))
    return adata.layers[key]


def _obs_column(adata: AnnData, key: str, *, hint: str) -> np.ndarray:
    if key not in adata.obs:
        msg = f"adata.obs[{key!r}] not found; it is written by {hint}."
        raise KeyError(msg)
    return adata.obs[key].to_numpy(dtype=np.float64)


def _cluster_labels(adata: AnnData, cluster_key: str) -> np.ndarray:
    if cluster_key not in adata.obs:
        msg = f"adata.obs[{cluster_key!r}] not found; pass the column holding cluster labels."
        raise KeyError(msg)
    return adata.obs[cluster_key].astype(str).to_numpy()


def _observed_clusters(adata: AnnData, cluster_key: str) -> list[str]:
    """Cluster names present in the data, in category order when the column is categorical."""
    column = adata.obs[cluster_key]
    present = set(column.astype(str))
    if isinstance(column.dtype, pd.CategoricalDtype):
        return [str(c) for c in column.cat.categories if str(c) in present]
    return sorted(present)


def _velocity_and_position(
    adata: AnnData, *, vkey: str, basis: str | None, xkey: str | None
) -> tuple[np.ndarray, np.ndarray | None]:
    """Velocities and, when ``xkey`` is set (or in an embedding), the positions they move from."""
    if basis is not None:
        embedding_key, velocity_key = f"X_{basis}", f"{vkey}_{basis}"
        if embedding_key not in adata.obsm:
            msg = f"adata.obsm[{embedding_key!r}] not found; compute the {basis!r} embedding."
            raise KeyError(msg)
        if velocity_key not in adata.obsm:
            msg = (
                f"adata.obsm[{velocity_key!r}] not found; it is written by "
                f"revelo.tl.velocity_embedding(adata, basis={basis!r})."
            )
            raise KeyError(msg)
        return to_dense(adata.obsm[velocity_key], np.float64), to_dense(
            adata.obsm[embedding_key], np.float64
        )

    velocity = to_dense(_layer(adata, vkey), np.float64)
    keep = velocity_gene_mask(adata, vkey)
    position = None if xkey is None else to_dense(_layer(adata, xkey), np.float64)[:, keep]
    return velocity[:, keep], position


def _neighbor_pairs(adata: AnnData, neighbors_key: str | None) -> tuple[np.ndarray, np.ndarray]:
    """(cell, neighbour) index pairs: the non-zero, off-diagonal entries of the kNN graph."""
    graph_key = "connectivities"
    if neighbors_key is not None:
        if neighbors_key not in adata.uns:
            msg = f"adata.uns[{neighbors_key!r}] not found; run scanpy.pp.neighbors first."
            raise KeyError(msg)
        graph_key = adata.uns[neighbors_key].get("connectivities_key", graph_key)
    if graph_key not in adata.obsp:
        msg = f"adata.obsp[{graph_key!r}] not found: {HINT_NEIGHBORS}."
        raise KeyError(msg)
    graph = sparse.coo_matrix(adata.obsp[graph_key])
    edge = (graph.row != graph.col) & (graph.data != 0)
    return graph.row[edge].astype(np.intp), graph.col[edge].astype(np.intp)


def _row_cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of matching rows, 0 where either row is zero (no direction)."""
    dot = np.einsum("ij,ij->i", a, b)
    norm = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return np.divide(dot, norm, out=np.zeros_like(dot), where=norm > 0)


def _displacement_cosine(
    velocity: np.ndarray, position: np.ndarray, rows: np.ndarray, cols: np.ndarray
) -> np.ndarray:
    """``cos(v[rows], x[cols] - x[rows])`` per pair.

    Pairs are processed in chunks so the gathered blocks stay small on many genes.
    """
    out = np.empty(len(rows))
    step = max(1, _CHUNK_ELEMENTS // max(1, velocity.shape[1]))
    for start in range(0, len(rows), step):
        r, c = rows[start : start + step], cols[start : start + step]
        out[start : start + step] = _row_cosine(velocity[r], position[c] - position[r])
    return out


def _neighbor_cosine(velocity: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Per cell, the mean cosine between its velocity and those of its neighbours in the pairs.

    With unit vectors ``u``, the mean of ``u_i · u_j`` over neighbours ``j`` is ``u_i`` dotted
    with the sum of the neighbours' ``u_j``: one sparse product instead of a gather per pair.
    NaN for cells without neighbours.
    """
    n_cells = velocity.shape[0]
    norm = np.linalg.norm(velocity, axis=1, keepdims=True)
    unit = np.divide(velocity, norm, out=np.zeros_like(velocity), where=norm > 0)
    adjacency = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_cells, n_cells))
    total = np.einsum("ij,ij->i", unit, adjacency @ unit)
    count = np.bincount(rows, minlength=n_cells)
    return np.divide(total, count, out=np.full(n_cells, np.nan), where=count > 0)


def _mean_of_cell_means(rows: np.ndarray, values: np.ndarray) -> float:
    """Mean over cells of each cell's mean of ``values``; NaN when there are no pairs."""
    if rows.size == 0:
        return float("nan")
    total, count = np.bincount(rows, weights=values), np.bincount(rows)
    present = count > 0
    return float(np.mean(total[present] / count[present]))


def _nanmean(values) -> float:
    values = np.asarray(values, dtype=np.float64)
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else float("nan")
