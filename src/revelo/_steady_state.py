"""Steady-state (deterministic) fit per gene, used to pick the genes velocity is fitted on."""

from __future__ import annotations

import numpy as np

#: Genes fitted at a time, to bound the temporary arrays to ``n_obs × _CHUNK``.
_CHUNK = 512


def steady_state_fit(
    spliced, unspliced, *, quantile: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Fit ``u ≈ gamma * s`` per gene on the cells at the extremes of the phase portrait.

    Cells near steady state (fully induced or fully repressed) are those with the highest or
    lowest ``s / max(s) + u / max(u)``; the slope through the origin on those cells estimates
    the degradation/splicing ratio ``gamma``. The ``r2`` is evaluated on *all* cells: a gene
    whose unspliced counts are unrelated to its spliced counts gets a negative ``r2`` because
    the residual ``u - gamma * s`` varies more than ``u`` itself.

    Parameters
    ----------
    spliced
        Dense cells × genes spliced values (moments or normalised counts).
    unspliced
        Dense cells × genes unspliced values, same shape.
    quantile
        Fraction of cells taken from each extreme.

    Returns
    -------
    ``(gamma, r2)``, float64 vectors of length ``n_vars``. Genes without spliced signal get
    ``gamma = 0``; genes with constant unspliced values get ``r2 = 0``.
    """
    spliced = np.asarray(spliced)
    unspliced = np.asarray(unspliced)
    n_vars = spliced.shape[1]
    gamma = np.zeros(n_vars)
    r2 = np.zeros(n_vars)
    for start in range(0, n_vars, _CHUNK):
        genes = slice(start, min(start + _CHUNK, n_vars))
        gamma[genes], r2[genes] = _fit_chunk(
            spliced[:, genes].astype(np.float64), unspliced[:, genes].astype(np.float64), quantile
        )
    return gamma, r2


def _fit_chunk(s: np.ndarray, u: np.ndarray, quantile: float) -> tuple[np.ndarray, np.ndarray]:
    extent = s / _positive(s.max(axis=0)) + u / _positive(u.max(axis=0))
    low, high = np.quantile(extent, [quantile, 1 - quantile], axis=0)
    extreme = (extent <= low) | (extent >= high)
    s_sq = np.sum(extreme * s * s, axis=0)
    su = np.sum(extreme * s * u, axis=0)
    gamma = np.divide(su, s_sq, out=np.zeros_like(su), where=s_sq > 0)
    residual = np.sum((u - gamma * s) ** 2, axis=0)
    total = np.sum((u - u.mean(axis=0)) ** 2, axis=0)
    r2 = np.divide(residual, total, out=np.ones_like(total), where=total > 0)
    return gamma, 1 - r2


def _positive(values: np.ndarray) -> np.ndarray:
    return np.where(values > 0, values, 1.0)
