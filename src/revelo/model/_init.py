"""Data-driven starting values: kinetic rates, switch points, count scales, cell ordering.

The kinetic fit and the cells' times are learned jointly, and a poor start can settle into a
fit whose time runs backwards. These estimates come from the phase portraits alone: above the
steady-state line u = γ′·s a gene is being induced, below it repressed, and within each phase
the abundance tells how far the cell has come.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from revelo._constants import REGISTRY_KEYS
from revelo._smoothing import neighbor_mean, neighbor_weights
from revelo._steady_state import steady_state_fit
from revelo.module import size_factors

from ._data import batch_codes, registered_array

if TYPE_CHECKING:
    from scvi.data import AnnDataManager

#: Cells processed at a time when ordering cells, bounding memory to ``_CHUNK × n_genes``.
_CHUNK = 4096


def switch_profile(
    unspliced: np.ndarray, spliced: np.ndarray, quantile: float = 0.99
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per gene, the median (u, s) of the cells nearest the switch, and those cells' indices.

    The switch from induction to repression is where both abundances are high, so cells are
    ranked by u/max(u) + s/max(s); ranking by u alone would pick cells early in induction
    when u saturates faster than s.

    Returns
    -------
    ``(u_switch, s_switch, top)`` with ``top`` an array n_top × genes of cell indices.
    """
    n_top = max(1, round((1 - quantile) * unspliced.shape[0]))
    score = unspliced / _positive(unspliced.max(0)) + spliced / _positive(spliced.max(0))
    top = np.argpartition(score, -n_top, axis=0)[-n_top:]
    u_top = np.take_along_axis(unspliced, top, axis=0)
    s_top = np.take_along_axis(spliced, top, axis=0)
    return np.median(u_top, axis=0), np.median(s_top, axis=0), top


def initial_cell_order(
    spliced: np.ndarray, unspliced: np.ndarray, gamma: np.ndarray | None = None
) -> np.ndarray:
    """A rough position of each cell on [0, 1] along the shared kinetics.

    Per gene, a cell above the steady-state line is placed in the first half of the time axis
    and one below it in the second half, further along the more of the gene's range it covers
    (u/max(u) + s/max(s)); the per-cell median over genes with a positive steady-state ratio
    is then turned into ranks.

    Parameters
    ----------
    spliced, unspliced
        Dense cells × genes abundances.
    gamma
        Per-gene steady-state ratios u/s, as from
        :func:`~revelo._steady_state.steady_state_fit`; fitted here when ``None``.

    Returns
    -------
    Per-cell positions in (0, 1), uniformly spread.
    """
    if gamma is None:
        gamma, _ = steady_state_fit(spliced, unspliced)
    genes = gamma > 0
    if not genes.any():
        return np.full(spliced.shape[0], 0.5)
    s = spliced[:, genes]
    u = unspliced[:, genes]
    gamma = gamma[genes]
    s_max, u_max = _positive(s.max(0)), _positive(u.max(0))
    median = np.empty(s.shape[0])
    for start in range(0, s.shape[0], _CHUNK):
        rows = slice(start, start + _CHUNK)
        progress = 0.25 * (u[rows] / u_max + s[rows] / s_max)
        inducing = u[rows] > gamma * s[rows]
        median[rows] = np.median(np.where(inducing, progress, 1.0 - progress), axis=1)
    ranks = np.argsort(np.argsort(median, kind="stable"), kind="stable")
    return (ranks + 0.5) / len(ranks)


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, 1.0)


def kinetic_start_values(spliced: np.ndarray, unspliced: np.ndarray, t_max: float) -> dict:
    """Starting rates, switch times and state anchors of the kinetic model, from the data.

    With β = 1 the induction steady state is (α, α/γ): it starts just past the switch point,
    and each gene switches at the median initial time of its switch-point cells.

    Parameters
    ----------
    spliced, unspliced
        Dense cells × genes abundances in the kinetic units.
    t_max
        Length of the time axis.

    Returns
    -------
    Keyword arguments of :class:`~revelo.module.REVELOVAE` (``alpha_init``, ``beta_init``,
    ``gamma_init``, ``switch_time_init``, ``switch_unspliced``, ``switch_spliced``,
    ``steady_state_ratio``, ``residual_scale``), and ``cell_order``, each cell's initial
    position on [0, 1].
    """
    u_switch, s_switch, top = switch_profile(unspliced, spliced)
    u_switch = np.maximum(u_switch, 1e-3)
    s_switch = np.maximum(s_switch, 1e-3)
    ratio, _ = steady_state_fit(spliced, unspliced)
    order = initial_cell_order(spliced, unspliced, ratio)
    return {
        "alpha_init": 1.2 * u_switch,
        "beta_init": np.ones_like(u_switch),
        "gamma_init": np.clip(u_switch / s_switch, 0.05, 20.0),
        "switch_time_init": t_max * np.median(order[top], axis=0),
        "switch_unspliced": u_switch,
        "switch_spliced": s_switch,
        "steady_state_ratio": ratio,
        "residual_scale": np.maximum((unspliced - ratio * spliced).std(0), 1e-3),
        "cell_order": order,
    }


def library_medians(library: np.ndarray, batch: np.ndarray) -> np.ndarray:
    """Median positive library of spliced and unspliced (columns) per batch (rows).

    A batch without a positive library keeps 1.
    """
    median = np.ones((batch.max() + 1, 2), dtype=np.float32)
    for code in range(len(median)):
        for layer in range(2):
            values = library[batch == code, layer]
            values = values[values > 0]
            if len(values):
                median[code, layer] = np.median(values)
    return median


def count_scales(spliced: np.ndarray, unspliced: np.ndarray, size: np.ndarray) -> np.ndarray:
    """Per-gene factors from the kinetic units to counts (rows: spliced, unspliced).

    The 99th percentile of each layer's size-normalised counts (the maximum where that is 0),
    the counterpart of the per-gene scaling of the moments ``Ms``/``Mu``.
    """
    scale = np.stack(
        [robust_max(layer / size[:, [i]]) for i, layer in enumerate((spliced, unspliced))]
    )
    return np.maximum(scale, 1e-3).astype(np.float32)


def robust_max(values: np.ndarray, quantile: float = 0.99) -> np.ndarray:
    """Per column, the ``quantile`` of the values, or their maximum where that is 0."""
    top = np.quantile(values, quantile, axis=0)
    return np.where(top > 0, top, values.max(0))


def batch_log_ratios(
    unspliced: np.ndarray, spliced: np.ndarray, batch: np.ndarray, n_batch: int
) -> np.ndarray:
    """Starting batch factors, ``(n_batch − 1) × 2 × genes``.

    Per batch after the first, the log-ratio of each gene's 95th percentile of u and s to the
    first batch's. An upper quantile reflects a scale difference rather than a difference in
    how many cells of each batch are far along; where either quantile is 0 the ratio starts
    at 0.
    """
    ratios = np.zeros((n_batch - 1, 2, spliced.shape[1]), dtype=np.float32)
    for layer, values in enumerate((unspliced, spliced)):
        top = np.stack(
            [
                np.quantile(values[batch == code], 0.95, axis=0)
                if (batch == code).any()
                else np.zeros(values.shape[1])
                for code in range(n_batch)
            ]
        )
        valid = (top[1:] > 0) & (top[:1] > 0)
        log_ratio = np.log(np.where(valid, top[1:], 1.0) / np.where(valid, top[:1], 1.0))
        ratios[:, layer] = np.clip(log_ratio, -3.0, 3.0)
    return ratios


def start_values(manager: AnnDataManager, *, likelihood: str, t_max: float) -> dict:
    """Every data-derived starting value of the module, from the registered data.

    Reads the registered arrays once and derives from them, with the pure functions of this
    module: the covariates' sizes and centring, for the count likelihoods the library medians
    and count scales (the data are then taken to the kinetic units: size-normalised, scaled
    and, when ``obsp["connectivities"]`` holds a graph, averaged over each cell's neighbours),
    the batch factors, and the kinetic starting values.

    Returns
    -------
    Keyword arguments of :class:`~revelo.module.REVELOVAE`, and ``cell_order``.
    """
    spliced = registered_array(manager, REGISTRY_KEYS.X_KEY)
    unspliced = registered_array(manager, REGISTRY_KEYS.U_KEY)
    init = covariate_sizes(manager)
    batch = batch_codes(manager)
    if likelihood != "gaussian":
        library = np.stack((spliced.sum(1), unspliced.sum(1)), axis=1)
        median = library_medians(library, batch)
        given = None
        if REGISTRY_KEYS.SIZE_FACTOR_KEY in manager.data_registry:
            given = registered_array(manager, REGISTRY_KEYS.SIZE_FACTOR_KEY)
        size = size_factors(library, median, batch, given)
        var = manager.adata.var
        if "Ms_scale" in var and "Mu_scale" in var:
            scale = np.stack((var["Ms_scale"].to_numpy(), var["Mu_scale"].to_numpy()))
            scale = np.maximum(scale, 1e-3).astype(np.float32)
        else:
            scale = count_scales(spliced, unspliced, size)
        init.update(library_median=median, count_scale=scale)
        spliced = spliced / size[:, [0]] / scale[0]
        unspliced = unspliced / size[:, [1]] / scale[1]
        graph = manager.adata.obsp.get("connectivities")
        if graph is not None:
            # The upper quantiles behind the switch anchors are inflated by count noise;
            # neighbour means (only for these starting values) remove most of it.
            weights = neighbor_weights(graph)
            spliced, unspliced = neighbor_mean(weights, spliced), neighbor_mean(weights, unspliced)
    if init["n_batch"] > 1:
        init["batch_log_scale_init"] = batch_log_ratios(unspliced, spliced, batch, init["n_batch"])
    init.update(kinetic_start_values(spliced, unspliced, t_max))
    return init


def covariate_sizes(manager: AnnDataManager) -> dict:
    """Covariate sizes of the registered data, and the continuous ones' centring."""
    registry = manager.data_registry
    init = {"n_batch": manager.summary_stats.get("n_batch", 1)}
    if REGISTRY_KEYS.CAT_COVS_KEY in registry:
        state = manager.get_state_registry(REGISTRY_KEYS.CAT_COVS_KEY)
        init["n_cats_per_cov"] = list(state.n_cats_per_key)
    if REGISTRY_KEYS.CONT_COVS_KEY in registry:
        cont = registered_array(manager, REGISTRY_KEYS.CONT_COVS_KEY)
        init["n_continuous_cov"] = cont.shape[1]
        init["continuous_center"] = cont.mean(0)
        init["continuous_scale"] = cont.std(0)
    return init
