"""revelo's fitted quantities in scVelo's conventions, for the ``var["fit_*"]`` columns.

scVelo divides the observed unspliced abundance by ``fit_scaling`` before it solves the
kinetics, and stores the splicing rate of that rescaled unspliced divided by ``fit_scaling``
once more; its readers (the phase-portrait curve, ``tl.velocity(mode="dynamical")``, its
``DynamicsRecovery(load_pars=True)``) multiply ``fit_beta`` back by ``fit_scaling``. revelo's
kinetic unspliced is the observed one divided by its scaling too, so its rates carry over with
``beta`` divided by the scaling, and ``alpha``, ``gamma``, the switch time and the scaling
itself as they are. scVelo's ``fit_likelihood`` is a goodness of fit, not a sum of
log-probabilities: :func:`curve_likelihood` computes it the same way.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Percentile above which scVelo leaves cells out of a gene's spread (outliers).
_UPPER_PERCENTILE = 99.0
#: scVelo scores the fit on the cells beyond this fraction of the gene's largest u and s.
_UPPER_FRACTION = 1.0 / 3.0


def scvelo_rate_columns(rates: pd.DataFrame) -> dict[str, np.ndarray]:
    """Turn revelo's per-gene rates into scVelo's ``var["fit_*"]`` columns.

    Parameters
    ----------
    rates
        Output of :meth:`revelo.REVELO.get_rates`: columns ``alpha``, ``beta``, ``gamma``,
        ``t_switch`` and ``scaling`` (observed unspliced = ``scaling`` × kinetic unspliced).

    Returns
    -------
    ``fit_alpha``, ``fit_beta`` (``beta / scaling``), ``fit_gamma``, ``fit_t_`` and
    ``fit_scaling``, each an array over genes. scVelo's curve, solved with ``fit_alpha``,
    ``fit_beta × fit_scaling`` and ``fit_gamma`` and drawn at ``u × fit_scaling``, is then
    revelo's.
    """
    scaling = rates["scaling"].to_numpy(dtype=np.float64)
    return {
        "fit_alpha": rates["alpha"].to_numpy(dtype=np.float64),
        "fit_beta": rates["beta"].to_numpy(dtype=np.float64) / scaling,
        "fit_gamma": rates["gamma"].to_numpy(dtype=np.float64),
        "fit_t_": rates["t_switch"].to_numpy(dtype=np.float64),
        "fit_scaling": scaling,
    }


def revelo_rates(var: pd.DataFrame) -> dict[str, np.ndarray]:
    """Read revelo's own rates back from scVelo-convention ``var`` columns.

    Parameters
    ----------
    var
        ``adata.var`` with ``fit_alpha``, ``fit_beta``, ``fit_gamma``, ``fit_t_`` and (when
        present; 1 otherwise) ``fit_scaling``.

    Returns
    -------
    ``alpha``, ``beta`` (``fit_beta × fit_scaling``), ``gamma``, ``t_switch`` and
    ``scaling``, each an array over genes, in revelo's kinetic units.
    """
    n_genes = len(var)
    scaling = (
        var["fit_scaling"].to_numpy(dtype=np.float64) if "fit_scaling" in var else np.ones(n_genes)
    )
    return {
        "alpha": var["fit_alpha"].to_numpy(dtype=np.float64),
        "beta": var["fit_beta"].to_numpy(dtype=np.float64) * scaling,
        "gamma": var["fit_gamma"].to_numpy(dtype=np.float64),
        "t_switch": var["fit_t_"].to_numpy(dtype=np.float64),
        "scaling": scaling,
    }


def curve_likelihood(
    unspliced: np.ndarray,
    spliced: np.ndarray,
    fit_unspliced: np.ndarray,
    fit_spliced: np.ndarray,
) -> np.ndarray:
    """Per-gene goodness of fit with the meaning of scVelo's ``var["fit_likelihood"]``.

    For each gene: the cells where both abundances are positive, minus those above the 99th
    percentile of either, give the spread ``σ_u``, ``σ_s``; among them, the cells beyond a
    third of the largest u and of the largest s (the upper part of the phase portrait, where
    the kinetics are told apart from noise) are scored. With the residuals
    ``d = ((û − u) / σ_u, (ŝ − s) / σ_s)`` of those ``m`` cells, ``v`` the variance of the signed
    distances ``sign(d_s)·|d|`` and ``n = max(m − N/100, 2)`` (N cells in all), the likelihood is
    ``exp(−Σ|d|² / (2 n v) − log(2π v) / 2)``: the geometric mean of a normal density of the
    residuals, capped at 1 (a density exceeds 1 only where the residuals are tighter than
    ``v < 1/(2πe)`` of the gene's spread, as on noise-free simulations), so that it lies in
    [0, 1] as scVelo's filters (``min_likelihood=0.1``) assume.

    Parameters
    ----------
    unspliced, spliced
        Observed abundances, cells × genes (e.g. ``layers["Mu"]``, ``layers["Ms"]``).
    fit_unspliced, fit_spliced
        Each cell's fitted abundances, cells × genes, in the same units.

    Returns
    -------
    Array over genes; NaN for genes with fewer than three cells to score.
    """
    u, s = (np.asarray(x, dtype=np.float64) for x in (unspliced, spliced))
    fit_u, fit_s = (np.asarray(x, dtype=np.float64) for x in (fit_unspliced, fit_spliced))
    n_genes = u.shape[1]
    out = np.full(n_genes, np.nan)
    for gene in range(n_genes):
        out[gene] = _gene_likelihood(u[:, gene], s[:, gene], fit_u[:, gene], fit_s[:, gene])
    return out


def _gene_likelihood(u, s, fit_u, fit_s) -> float:
    expressed = (u > 0) & (s > 0) & np.isfinite(fit_u) & np.isfinite(fit_s)
    if expressed.sum() < 3:
        return np.nan
    inlier = expressed.copy()
    for values in (u, s):
        bound = np.percentile(values[expressed], _UPPER_PERCENTILE)
        if bound > 0:
            inlier &= values <= bound
    spread_u, spread_s = u[inlier].std(), s[inlier].std()
    if spread_u == 0 or spread_s == 0:
        return np.nan
    scored = (
        inlier & (u > _UPPER_FRACTION * u[inlier].max()) & (s > _UPPER_FRACTION * s[inlier].max())
    )
    if scored.sum() < 3:
        return np.nan
    du = (fit_u[scored] - u[scored]) / spread_u
    ds = (fit_s[scored] - s[scored]) / spread_s
    squared = du**2 + ds**2
    signed = np.sign(ds) * np.sqrt(squared)
    variance = squared.mean() - signed.mean() ** 2
    if variance <= 0:
        # Every residual the same: a perfect fit up to a shift, scored as a unit variance.
        variance = 1.0
    n = max(scored.sum() - u.size / 100, 2.0)
    log_likelihood = -0.5 * squared.sum() / n / variance - 0.5 * np.log(2 * np.pi * variance)
    return float(min(np.exp(log_likelihood), 1.0))
