"""Choosing each gene's kinetic regime from its data, ordered by the cells' shared time.

A single gene's phase portrait cannot tell an induction from a repression run backwards; the
order of the cells along the time that all genes share can. After a first fit with every gene
a full switch, the cells are ordered by that fit's latent time, and each gene's binned mean
abundance along it says whether the gene rises and falls (full switch), only rises (induction),
only falls (repression from its steady state) or does neither (steady). That time is first
turned, where needed, to run the way the first fit's velocities point
(:func:`time_along_velocity`): early in training the aggregated time may run backwards while
the velocities are already right, and regimes read along a reversed time would flip them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from scipy import sparse

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


def time_along_velocity(
    time: np.ndarray,
    velocity: np.ndarray,
    spliced: np.ndarray,
    graph: sparse.spmatrix,
    *,
    chunk: int = 1 << 22,
) -> float:
    """Whether ``time`` runs the way the velocities point: the sign of their agreement.

    For each edge ``(i, j)`` of the neighbour ``graph`` (weight ``w``), the velocity of cell
    ``i`` projected on the step to ``j``, ``v_i · (s_j − s_i)``, says whether ``j`` lies ahead
    of ``i``; the score is ``Σ w · v_i · (s_j − s_i) · (t_j − t_i)``, positive when time grows
    where the velocities lead.

    Parameters
    ----------
    time
        Each cell's time.
    velocity, spliced
        Cells × genes spliced velocity and abundance, in the same units.
    graph
        Cells × cells neighbour weights.
    chunk
        Largest number of edge × gene entries held at once.

    Returns
    -------
    ``1.0`` when the score is positive or zero, ``-1.0`` when negative.
    """
    graph = sparse.coo_matrix(graph)
    rows, cols, weight = graph.row, graph.col, graph.data
    velocity = np.asarray(velocity, dtype=np.float64)
    spliced = np.asarray(spliced, dtype=np.float64)
    time = np.asarray(time, dtype=np.float64)
    self_projection = (velocity * spliced).sum(1)
    step = max(1, chunk // max(spliced.shape[1], 1))
    score = 0.0
    for start in range(0, len(rows), step):
        i, j = rows[start : start + step], cols[start : start + step]
        ahead = (velocity[i] * spliced[j]).sum(1) - self_projection[i]
        score += float(np.sum(weight[start : start + step] * ahead * (time[j] - time[i])))
    return 1.0 if score >= 0 else -1.0


def select_regimes(model: REVELO, *, n_samples: int = 5) -> np.ndarray:
    """The regime of each gene of a fitted ``model``, from its data along its latent time.

    The per-gene times of ``n_samples`` posterior draws are aggregated into one time per cell
    by :func:`revelo.tl.latent_time` (with the neighbour graph of the model's AnnData when it
    has one), turned to run the way the velocities point (:func:`time_along_velocity`, on that
    graph; as it is without one), and :func:`regime_codes` reads the observed abundances along
    it.
    """
    from anndata import AnnData

    from revelo.tl import latent_time

    adata = model.adata
    _, _, batches = query_batches(model, None, None, None)
    out = posterior_means(
        model.module, batches, ("time", "log_likelihood", "velocity"), n_samples, model.device
    )
    work = AnnData(
        obs=pd.DataFrame(index=adata.obs_names.copy()),
        var=pd.DataFrame(
            {"revelo_log_likelihood": out["log_likelihood"].mean(0)},
            index=adata.var_names.copy(),
        ),
    )
    work.layers["fit_t"] = out["time"]
    graph = adata.obsp["connectivities"] if "connectivities" in adata.obsp else None
    if graph is not None:
        work.obsp["connectivities"] = graph
    latent_time(work, fit_t_key="fit_t")
    spliced, unspliced = observed_abundances(model, adata)
    time = work.obs["latent_time"].to_numpy()
    if graph is not None:
        time = time * time_along_velocity(time, out["velocity"], spliced, graph)
    return regime_codes(unspliced, spliced, time)
