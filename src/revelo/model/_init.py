"""Data-driven starting values: kinetic rates, switch points and an initial cell ordering.

The kinetic fit and the cells' times are learned jointly, and a poor start can settle into a
fit whose time runs backwards. These estimates come from the phase portraits alone: above the
steady-state line u = γ′·s a gene is being induced, below it repressed, and within each phase
the abundance tells how far the cell has come.
"""

from __future__ import annotations

import numpy as np

from revelo.pp._steady_state import steady_state_fit

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
        :func:`~revelo.pp._steady_state.steady_state_fit`; fitted here when ``None``.

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
