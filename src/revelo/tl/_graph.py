"""Velocity graph: cosine similarity between velocities and displacements to nearby cells."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch
from scipy import sparse
from scipy.sparse.csgraph import reverse_cuthill_mckee

from revelo._threads import with_thread_limit
from revelo._validation import (
    HINT_MOMENTS,
    HINT_VELOCITY,
    check_layer,
    check_neighbors,
    check_positive_int,
)

from ._utils import (
    dense_layer,
    knn_indices,
    recursive_neighbors,
    resolve_device,
    velocity_gene_mask,
)

if TYPE_CHECKING:
    from anndata import AnnData

# cells per matrix product in the inner-product path
_GRAM_CHUNK = 128
# elements of the (cells, neighbours, genes) displacement block of the explicit path
_GATHER_ELEMENTS = 2**22


@with_thread_limit
def velocity_graph(
    adata: AnnData,
    *,
    vkey: str = "velocity",
    xkey: str = "Ms",
    n_neighbors: int | None = None,
    n_recurse_neighbors: int | None = None,
    sqrt_transform: bool | None = None,
    gene_subset: list[str] | np.ndarray | None = None,
    device: str | torch.device | None = None,
    copy: bool = False,
) -> AnnData | None:
    r"""Cosine similarity between each cell's velocity and the displacements to nearby cells.

    For cell :math:`i` with velocity :math:`v_i` and each cell :math:`j` within
    ``n_recurse_neighbors`` steps of the kNN graph, the graph holds

    .. math::
        \pi_{ij} = \cos\angle(\delta_{ij} - \bar\delta_{ij},\ v_i - \bar v_i),
        \qquad \delta_{ij} = x_j - x_i,

    where bars are means over genes. This is the quantity scVelo's ``tl.velocity_graph``
    computes, with the same defaults, but vectorised in torch over chunks of cells.

    Parameters
    ----------
    adata
        Annotated data with ``layers[vkey]``, ``layers[xkey]`` and a neighbour graph.
    vkey
        Layer with the velocities.
    xkey
        Layer with the expression states (the smoothed spliced moments).
    n_neighbors
        Use this many nearest neighbours of the stored graph (at most as many as it holds).
        ``None`` uses them all.
    n_recurse_neighbors
        How many kNN steps to follow; defaults to 2 (neighbours of neighbours) when
        ``n_neighbors`` is ``None``, 1 otherwise.
    sqrt_transform
        Take the signed square root of velocities and displacements first (variance
        stabilisation). ``None`` enables it when ``uns[f"{vkey}_params"]["mode"]`` is
        ``"stochastic"``.
    gene_subset
        Gene names (or a boolean mask) to use instead of ``var[f"{vkey}_genes"]``.
    device
        Torch device; ``None`` picks CUDA when available, else the CPU.
    copy
        Return a modified copy instead of writing to ``adata``.

    Returns
    -------
    Returns ``None``, or a copy of ``adata`` if ``copy=True``, with these fields set:

    ``uns[f"{vkey}_graph"]``
        :class:`~scipy.sparse.csr_matrix` with the positive cosine similarities.
    ``uns[f"{vkey}_graph_neg"]``
        :class:`~scipy.sparse.csr_matrix` with the negative cosine similarities.
    ``obs[f"{vkey}_self_transition"]``
        Self-transition probability used by scVelo-style transition matrices.
    ``uns[f"{vkey}_params"]``
        Gains ``"mode_neighbors"`` and ``"n_recurse_neighbors"``; any stored ``"embeddings"``
        entry is dropped because earlier projections are now stale.
    """
    check_positive_int("n_neighbors", n_neighbors, none=True)
    check_positive_int("n_recurse_neighbors", n_recurse_neighbors, none=True)
    adata = adata.copy() if copy else adata
    check_layer(adata, vkey, HINT_VELOCITY)
    check_layer(adata, xkey, HINT_MOMENTS)
    dist = check_neighbors(adata)

    params = adata.uns.get(f"{vkey}_params", {})
    if sqrt_transform is None:
        sqrt_transform = params.get("mode") == "stochastic"
    if n_recurse_neighbors is None:
        n_recurse_neighbors = 2 if n_neighbors is None else 1
    available = int(np.diff(dist.indptr).min())
    if n_neighbors is not None and n_neighbors > available:
        msg = (
            f"n_neighbors={n_neighbors} exceeds the {available} neighbours stored in "
            "adata.obsp['distances']: recompute them with scanpy.pp.neighbors(adata, "
            f"n_neighbors={n_neighbors + 1})."
        )
        raise ValueError(msg)

    genes = velocity_gene_mask(adata, vkey, gene_subset)
    device = resolve_device(device)
    states = torch.from_numpy(dense_layer(adata, xkey, genes)).to(device)
    velocity = torch.from_numpy(dense_layer(adata, vkey, genes)).to(device)
    indices = torch.from_numpy(knn_indices(dist, n_neighbors)).to(device)

    rows, cols, vals = _cosine_graph(
        states, velocity, indices, n_recurse_neighbors, sqrt_transform=sqrt_transform
    )
    shape = (adata.n_obs, adata.n_obs)
    positive = vals > 0
    graph = sparse.csr_matrix((vals[positive], (rows[positive], cols[positive])), shape=shape)
    negative = vals < 0
    graph_neg = sparse.csr_matrix((vals[negative], (rows[negative], cols[negative])), shape=shape)

    adata.uns[f"{vkey}_graph"] = graph
    adata.uns[f"{vkey}_graph_neg"] = graph_neg
    confidence = graph.max(1).toarray().ravel()
    adata.obs[f"{vkey}_self_transition"] = np.clip(
        np.percentile(confidence, 98) - confidence, 0, 1
    )
    params = dict(params)
    params.pop("embeddings", None)
    params["mode_neighbors"] = "distances"
    params["n_recurse_neighbors"] = n_recurse_neighbors
    adata.uns[f"{vkey}_params"] = params
    return adata if copy else None


@torch.inference_mode()
def _cosine_graph(
    states: torch.Tensor,
    velocity: torch.Tensor,
    indices: torch.Tensor,
    n_recurse: int,
    *,
    sqrt_transform: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cosine similarities of all (cell, reachable cell) pairs, as COO rows, cols and values."""
    if sqrt_transform:
        velocity = velocity.abs().sqrt() * velocity.sign()
    velocity = velocity - velocity.mean(1, keepdim=True)
    # number cells so that kNN neighbourhoods are close in index: chunks then share neighbours
    order = _bandwidth_order(indices)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order), device=order.device)
    states, velocity, indices = states[order], velocity[order], rank[indices[order]]
    cosines = _cosines_sqrt if sqrt_transform else _cosines_gram
    rows, cols, vals = cosines(states, velocity, indices, n_recurse)
    return order[rows].cpu().numpy(), order[cols].cpu().numpy(), vals.cpu().numpy()


def _bandwidth_order(indices: torch.Tensor) -> torch.Tensor:
    """Reverse Cuthill-McKee order of the symmetrised kNN graph."""
    n_obs, k = indices.shape
    knn = sparse.csr_matrix(
        (np.ones(n_obs * k), indices.cpu().numpy().ravel(), np.arange(0, n_obs * k + 1, k)),
        shape=(n_obs, n_obs),
    )
    order = reverse_cuthill_mckee((knn + knn.T).tocsr(), symmetric_mode=True)
    return torch.from_numpy(order.astype(np.int64)).to(indices.device)


def _cosines_gram(
    states: torch.Tensor, velocity: torch.Tensor, indices: torch.Tensor, n_recurse: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cosines from inner products, without forming the displacement vectors.

    With states and velocities centred per cell (``x``, ``v``), the centred displacement is
    ``x_j - x_i``, so ``cos = (x_j·v_i - x_i·v_i) / (|x_j - x_i| |v_i|)`` and
    ``|x_j - x_i|² = |x_j|² + |x_i|² - 2 x_j·x_i``. A chunk's inner products with its
    neighbourhood are one matrix product, in float64 because the last identity cancels.
    """
    n_obs = states.shape[0]
    x = states.double()
    x = x - x.mean(1, keepdim=True)
    v = velocity.double()
    sq_norm = (x * x).sum(1)
    v_norm = torch.linalg.vector_norm(v, dim=1)
    self_dot = (x * v).sum(1)

    all_rows, all_cols, all_vals = [], [], []
    for start in range(0, n_obs, _GRAM_CHUNK):
        rows = torch.arange(start, min(start + _GRAM_CHUNK, n_obs), device=x.device)
        neighbors, valid = recursive_neighbors(indices, rows, n_recurse)
        cols = neighbors[valid]
        pair_rows = rows[:, None].expand_as(neighbors)[valid]
        lo, hi = int(cols.min()), int(cols.max()) + 1
        reached = torch.unique(cols)
        if hi - lo <= 2 * len(reached):
            block, local = x[lo:hi], cols - lo  # a view: no copy when neighbourhoods are banded
        else:
            block, local = x[reached], torch.searchsorted(reached, cols)
        products = block @ torch.cat([v[rows], x[rows]]).T
        chunk_pos = pair_rows - start
        dot = products[local, chunk_pos] - self_dot[pair_rows]
        cross = products[local, chunk_pos + len(rows)]
        dist_sq = sq_norm[cols] + sq_norm[pair_rows] - 2 * cross
        # identical states (e.g. the cell itself) have no direction: no edge, as in scVelo
        moved = (dist_sq > 1e-12 * (sq_norm[cols] + sq_norm[pair_rows])) & (cols != pair_rows)
        norm = dist_sq.clamp(min=0).sqrt() * v_norm[pair_rows]
        cosine = torch.where(moved & (norm > 0), dot / norm, 0.0).clamp(-1, 1).float()
        keep = cosine != 0
        all_rows.append(pair_rows[keep])
        all_cols.append(cols[keep])
        all_vals.append(cosine[keep])
    return torch.cat(all_rows), torch.cat(all_cols), torch.cat(all_vals)


def _cosines_sqrt(
    states: torch.Tensor, velocity: torch.Tensor, indices: torch.Tensor, n_recurse: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cosines of signed-square-rooted displacements, which must be formed explicitly."""
    n_obs, n_genes = states.shape
    v_norm = torch.linalg.vector_norm(velocity, dim=1)
    reach = min((indices.shape[1] + 1) ** n_recurse, n_obs)
    chunk = max(1, _GATHER_ELEMENTS // (reach * n_genes))
    all_rows, all_cols, all_vals = [], [], []
    for start in range(0, n_obs, chunk):
        rows = torch.arange(start, min(start + chunk, n_obs), device=states.device)
        neighbors, valid = recursive_neighbors(indices, rows, n_recurse)
        flat = neighbors.clamp(max=n_obs - 1).flatten()
        displacement = states.index_select(0, flat).view(*neighbors.shape, n_genes)
        displacement -= states[rows, None]
        displacement = displacement.abs().sqrt_() * displacement.sign()
        displacement -= displacement.mean(2, keepdim=True)
        dot = (displacement * velocity[rows, None]).sum(2)
        norm = torch.linalg.vector_norm(displacement, dim=2) * v_norm[rows, None]
        # a zero norm means no displacement (the cell itself) or no velocity: no edge
        cosine = torch.where(norm > 0, dot / norm, 0.0).clamp(-1, 1)
        keep = valid & (cosine != 0)
        all_rows.append(rows[:, None].expand_as(neighbors)[keep])
        all_cols.append(neighbors[keep])
        all_vals.append(cosine[keep])
    return torch.cat(all_rows), torch.cat(all_cols), torch.cat(all_vals)
