"""Choosing each gene's kinetic regime from its data, ordered by where the velocities lead.

A single gene's phase portrait cannot tell an induction from a repression run backwards; the
order of the cells along the path that all genes share can. After a first fit with every gene
a full switch, the cells are ordered by the potential of that fit's velocities on the neighbour
graph (:func:`velocity_potential`), and each gene's binned mean abundance along it says whether
the gene rises and falls (full switch), only rises (induction), only falls (repression from its
steady state) or does neither (steady). The potential pools the velocities of all genes over
the graph, so it runs the way they point; the first fit's aggregated latent time, used before,
can place a population at a steady state (pancreas' ductal cells) after the cells it leads to,
and genes that peak in those cells were then read as repression only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse.linalg import cg

from revelo.module import REGIMES

from ._data import query_batches
from ._posterior import observed_abundances, posterior_means

FULL, INDUCTION, REPRESSION, STEADY = map(
    REGIMES.index, ("full", "induction", "repression", "steady")
)

if TYPE_CHECKING:
    from ._model import REVELO


def regime_codes(
    unspliced: np.ndarray,
    spliced: np.ndarray,
    time: np.ndarray,
    *,
    n_bins: int = 10,
    min_change: float = 0.25,
    min_trend: float = 6.0,
) -> np.ndarray:
    """Each gene's regime from its abundances along the cells' time.

    Cells are ordered by ``time`` and cut into ``n_bins`` equal groups; per gene and layer the
    group means form a profile, scaled to [0, 1] over the groups, and the two layers' profiles
    are averaged. With ``k`` the group where this profile peaks, the rise ``c[k] − c[0]`` and
    the fall ``c[k] − c[−1]`` decide: both at least ``min_change``, a full switch; only the
    rise, induction; only the fall, repression. A gene whose group means span less than
    ``min_trend`` standard errors of a group mean (its cells' standard deviation over the square
    root of the group size) in both layers is steady: without noise-free change over time.

    Parameters
    ----------
    unspliced, spliced
        Cells × genes abundances.
    time
        Each cell's time (only its order matters).
    n_bins
        Groups of cells along the time.
    min_change
        Smallest rise or fall of the scaled profile that counts.
    min_trend
        Smallest span of the group means, in standard errors, of a gene that is not steady
        (the span of ten group means of pure noise is about 3 and rarely above 5).

    Returns
    -------
    Per gene, the code of its regime (:data:`revelo.module.REGIMES`).
    """
    order = np.argsort(np.asarray(time), kind="stable")
    groups = np.array_split(order, min(n_bins, len(order)))
    trend = np.zeros(unspliced.shape[1])
    profile = np.zeros((len(groups), unspliced.shape[1]))
    for values in (unspliced, spliced):
        values = np.asarray(values, dtype=np.float64)
        means = np.stack([values[group].mean(0) for group in groups])
        span = means.max(0) - means.min(0)
        error = values.std(0) / np.sqrt(min(len(group) for group in groups))
        trend = np.maximum(trend, span / np.maximum(error, 1e-12))
        profile += (means - means.min(0)) / np.where(span > 0, span, 1.0) / 2
    peak = profile.argmax(0)
    top = profile[peak, np.arange(profile.shape[1])]
    rises = top - profile[0] >= min_change
    falls = top - profile[-1] >= min_change
    codes = np.full(unspliced.shape[1], FULL)
    codes[rises & ~falls] = INDUCTION
    codes[~rises & falls] = REPRESSION
    codes[trend < min_trend] = STEADY
    return codes


def velocity_potential(
    velocity: np.ndarray,
    spliced: np.ndarray,
    graph: sparse.spmatrix,
    *,
    chunk: int = 1 << 22,
) -> np.ndarray:
    """A time for each cell that rises where the velocities lead: their potential on ``graph``.

    For each edge ``(i, j)`` of the neighbour graph (weight ``w``), the cosine ``c_ij`` between
    the velocity of cell ``i`` and the step ``s_j − s_i`` says how far ``j`` lies ahead of ``i``;
    ``f_ij = (c_ij − c_ji) / 2`` is the flow along the edge, antisymmetric. The potential ``φ``
    is the least-squares fit of ``φ_j − φ_i ≈ f_ij`` over all edges, weighted by ``w``: the
    solution of ``L φ = −Σ_j w_ij f_ij`` with the graph Laplacian ``L`` (conjugate gradients,
    with a small ridge that centres each connected component). It pools every cell's velocity
    along the graph, so a population whose per-gene times say little (cells at a steady state)
    still lies before the cells its velocities lead to.

    Parameters
    ----------
    velocity, spliced
        Cells × genes spliced velocity and abundance, in the same units.
    graph
        Cells × cells neighbour weights (symmetrised here).
    chunk
        Largest number of edge × gene entries held at once.

    Returns
    -------
    Each cell's potential (only its order is meaningful).
    """
    graph = sparse.coo_matrix(graph)
    rows, cols = graph.row, graph.col
    velocity = np.asarray(velocity, dtype=np.float64)
    spliced = np.asarray(spliced, dtype=np.float64)
    speed = np.linalg.norm(velocity, axis=1)
    cosine = np.zeros(len(rows))
    step = max(1, chunk // max(spliced.shape[1], 1))
    for start in range(0, len(rows), step):
        i, j = rows[start : start + step], cols[start : start + step]
        move = spliced[j] - spliced[i]
        norm = speed[i] * np.linalg.norm(move, axis=1)
        ahead = (velocity[i] * move).sum(1)
        cosine[start : start + step] = np.divide(
            ahead, norm, out=np.zeros_like(ahead), where=norm > 0
        )
    shape = graph.shape
    flow = sparse.csr_matrix((cosine, (rows, cols)), shape=shape)
    flow = (flow - flow.T) / 2
    weight = graph.tocsr()
    weight = (weight + weight.T) / 2
    divergence = -np.asarray(weight.multiply(flow).sum(1)).ravel()
    degree = np.asarray(weight.sum(1)).ravel()
    laplacian = sparse.diags(degree + 1e-6 * max(degree.mean(), 1e-12)) - weight
    potential, _ = cg(laplacian, divergence, rtol=1e-8, maxiter=10 * shape[0])
    return potential


def select_regimes(model: REVELO, *, n_samples: int = 5) -> np.ndarray:
    """Each gene's regime in a fitted ``model``: :func:`regime_codes` along :func:`cell_order`."""
    spliced, unspliced = observed_abundances(model, model.adata)
    time = cell_order(model, n_samples=n_samples, spliced=spliced)
    return regime_codes(unspliced, spliced, time)


def cell_order(
    model: REVELO, *, n_samples: int = 5, spliced: np.ndarray | None = None
) -> np.ndarray:
    """The order of the cells of a fitted ``model`` that its genes' regimes are read along.

    With a neighbour graph in the model's AnnData (``obsp["connectivities"]``), the potential
    of the velocities (the posterior mean of ``n_samples`` draws) on that graph
    (:func:`velocity_potential`); without one, the per-gene times of those draws aggregated
    into one time per cell (:func:`revelo.tl.latent_time`). ``spliced``, the observed spliced
    abundances in the model's units (:func:`observed_abundances`), is read when not given.
    """
    adata = model.adata
    _, _, batches = query_batches(model, None, None, None)
    graph = adata.obsp["connectivities"] if "connectivities" in adata.obsp else None
    keys = ("velocity",) if graph is not None else ("time", "log_likelihood")
    out = posterior_means(model.module, batches, keys, n_samples, model.device)
    if graph is not None:
        if spliced is None:
            spliced, _ = observed_abundances(model, adata)
        return velocity_potential(out["velocity"], spliced, graph)
    return _latent_time(adata, out["time"], out["log_likelihood"].mean(0))


def _latent_time(adata, gene_times: np.ndarray, log_likelihood: np.ndarray) -> np.ndarray:
    """One time per cell from per-gene times, weighted by the genes' log-likelihoods."""
    from anndata import AnnData

    from revelo.tl import latent_time

    work = AnnData(
        obs=pd.DataFrame(index=adata.obs_names.copy()),
        var=pd.DataFrame({"revelo_log_likelihood": log_likelihood}, index=adata.var_names.copy()),
    )
    work.layers["fit_t"] = gene_times
    latent_time(work, fit_t_key="fit_t")
    return work.obs["latent_time"].to_numpy()
