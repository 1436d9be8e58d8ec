"""revelo's fitted quantities in scVelo's conventions, for the ``var["fit_*"]`` columns.

scVelo divides the observed unspliced abundance by ``fit_scaling`` before it solves the
kinetics, and stores the splicing rate of that rescaled unspliced divided by ``fit_scaling``
once more; its readers (the phase-portrait curve, ``tl.velocity(mode="dynamical")``, its
``DynamicsRecovery(load_pars=True)``) multiply ``fit_beta`` back by ``fit_scaling``. revelo's
kinetic unspliced is the observed one divided by its scaling too, so its rates carry over with
``beta`` divided by the scaling, and ``alpha``, ``gamma``, the switch time and the scaling
itself as they are. scVelo's ``fit_likelihood`` is a goodness of fit, not a sum of
log-probabilities: :func:`curve_likelihood` computes it the same way. scVelo's other per-gene
keys of a dynamical fit (:func:`dynamics_columns`) are statistics of the data, computed as
scVelo computes them, of the curve's residuals, or constants where revelo has no counterpart
to fit (no basal abundance, one shared time axis).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pandas as pd

from revelo._utils import chunks

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
    return curve_statistics(unspliced, spliced, fit_unspliced, fit_spliced)["fit_likelihood"]


def curve_statistics(
    unspliced: np.ndarray,
    spliced: np.ndarray,
    fit_unspliced: np.ndarray,
    fit_spliced: np.ndarray,
) -> dict[str, np.ndarray]:
    """Per-gene scores of a fitted curve, as scVelo's ``fit_likelihood`` and ``fit_variance``.

    ``fit_likelihood`` is :func:`curve_likelihood`; ``fit_variance`` is the variance ``v`` of
    the signed distances it is computed with (1 where every residual is the same), the
    quantity scVelo stores under that name. Arguments as for :func:`curve_likelihood`.
    """
    u, s = (np.asarray(x, dtype=np.float64) for x in (unspliced, spliced))
    fit_u, fit_s = (np.asarray(x, dtype=np.float64) for x in (fit_unspliced, fit_spliced))
    n_genes = u.shape[1]
    out = {key: np.full(n_genes, np.nan) for key in ("fit_likelihood", "fit_variance")}
    for gene in range(n_genes):
        scores = _gene_likelihood(u[:, gene], s[:, gene], fit_u[:, gene], fit_s[:, gene])
        out["fit_likelihood"][gene], out["fit_variance"][gene] = scores
    return out


def _inliers(u: np.ndarray, s: np.ndarray, usable: np.ndarray) -> np.ndarray:
    """The usable cells with both abundances positive and neither above its 99th percentile."""
    expressed = usable & (u > 0) & (s > 0)
    inlier = expressed.copy()
    if expressed.sum() < 3:
        return inlier
    for values in (u, s):
        bound = np.percentile(values[expressed], _UPPER_PERCENTILE)
        if bound > 0:
            inlier &= values <= bound
    return inlier


def _gene_likelihood(u, s, fit_u, fit_s) -> tuple[float, float]:
    """``(likelihood, variance)`` of one gene; NaN for both when it cannot be scored."""
    expressed = (u > 0) & (s > 0) & np.isfinite(fit_u) & np.isfinite(fit_s)
    if expressed.sum() < 3:
        return np.nan, np.nan
    inlier = _inliers(u, s, expressed)
    spread_u, spread_s = u[inlier].std(), s[inlier].std()
    if spread_u == 0 or spread_s == 0:
        return np.nan, np.nan
    scored = (
        inlier & (u > _UPPER_FRACTION * u[inlier].max()) & (s > _UPPER_FRACTION * s[inlier].max())
    )
    if scored.sum() < 3:
        return np.nan, np.nan
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
    return float(min(np.exp(log_likelihood), 1.0)), float(variance)


def data_statistics(unspliced: np.ndarray, spliced: np.ndarray) -> dict[str, np.ndarray]:
    """Per-gene statistics of the data alone that scVelo's dynamical tools read.

    Computed on the cells of :func:`curve_likelihood`'s spread (both abundances positive,
    neither above its 99th percentile), as scVelo computes them before it fits a gene:

    - ``fit_std_u``, ``fit_std_s``: standard deviations of u and s over those cells, in the
      units of the input (1 for both where either is 0, or where fewer than three cells are
      expressed);
    - ``fit_pval_steady``: the larger of the two p-values of a test for an upper mode (cells
      held at the induction steady state) in u and in s. Each abundance's density (a Gaussian
      kernel estimate with Scott's bandwidth on 30 points from its smallest to its largest
      value; u divided by ``fit_std_u / fit_std_s`` first) is split at its lowest point among
      the four around the middle, and the upper part's peak is compared with that part's mean
      density, relative to the density's spread over the grid divided by √30 but at least 1:
      the one-sided normal p-value of that difference. The smaller, the more pronounced the
      upper mode of both; 1 where the density cannot be estimated;
    - ``fit_steady_u``, ``fit_steady_s``: where that upper mode lies, in the units of the input
      (NaN where the density cannot be estimated).

    Parameters
    ----------
    unspliced, spliced
        Observed abundances, cells × genes, in the units of the fit.

    Returns
    -------
    The five columns, each an array over genes.
    """
    u, s = (np.asarray(x, dtype=np.float64) for x in (unspliced, spliced))
    keys = ("fit_std_u", "fit_std_s", "fit_pval_steady", "fit_steady_u", "fit_steady_s")
    out = {key: np.full(u.shape[1], np.nan) for key in keys}
    for gene in range(u.shape[1]):
        values = _gene_data_statistics(u[:, gene], s[:, gene])
        for key, value in zip(keys, values, strict=True):
            out[key][gene] = value
    return out


def _gene_data_statistics(u: np.ndarray, s: np.ndarray) -> tuple[float, ...]:
    inlier = _inliers(u, s, np.isfinite(u) & np.isfinite(s))
    if inlier.sum() < 3:
        return 1.0, 1.0, 1.0, np.nan, np.nan
    u, s = u[inlier], s[inlier]
    std_u, std_s = u.std(), s.std()
    if std_u == 0 or std_s == 0:
        std_u = std_s = 1.0
    ratio = std_u / std_s
    pval_u, mode_u = _upper_mode(u / ratio)
    pval_s, mode_s = _upper_mode(s)
    return float(std_u), float(std_s), max(pval_u, pval_s), mode_u * ratio, mode_s


def _upper_mode(values: np.ndarray, n_points: int = 30) -> tuple[float, float]:
    """``(p-value, location)`` of an upper mode of ``values``; ``(1, NaN)`` when undefined."""
    from scipy.special import ndtr

    grid = np.linspace(values.min(), values.max(), n_points)
    # Gaussian kernel density with Scott's bandwidth (scipy.stats.gaussian_kde's default).
    bandwidth = values.std(ddof=1) * values.size ** (-0.2)
    if not np.isfinite(bandwidth) or bandwidth <= 0:
        return 1.0, np.nan
    z = (grid[:, None] - values[None, :]) / bandwidth
    density = np.exp(-0.5 * z**2).mean(1) / (bandwidth * np.sqrt(2 * np.pi))
    first = n_points // 2 - 2
    split = first + int(np.argmin(density[first : first + 4]))
    upper = density[split:]
    peak = int(np.argmax(upper))
    spread = max(density.std() / np.sqrt(n_points), 1.0)
    pval = float(ndtr(-(upper[peak] - upper.mean()) / spread))
    location = (grid[split + peak] + grid[min(split + peak + 1, n_points - 1)]) / 2
    return pval, float(location)


def dynamics_columns(
    unspliced: np.ndarray,
    spliced: np.ndarray,
    fit_unspliced: np.ndarray,
    fit_spliced: np.ndarray,
) -> dict[str, np.ndarray]:
    """Every ``var["fit_*"]`` column of scVelo's dynamical model besides the rates.

    :func:`curve_statistics` and :func:`data_statistics`, with ``fit_u0`` and ``fit_s0`` (the
    basal abundances scVelo adds to its curve: 0, where revelo's induction starts) and
    ``fit_alignment_scaling`` (the factor by which scVelo stretched a gene's time onto the
    shared axis: 1, as revelo's genes share one time axis). Arguments as for
    :func:`curve_likelihood`.
    """
    n_genes = np.shape(unspliced)[1]
    # A block of genes at a time: the float64 copies stay a fraction of the cells × genes data.
    blocks = [
        {
            **curve_statistics(
                unspliced[:, block],
                spliced[:, block],
                fit_unspliced[:, block],
                fit_spliced[:, block],
            ),
            **data_statistics(unspliced[:, block], spliced[:, block]),
        }
        for block in chunks(n_genes)
    ]
    return {
        **{key: np.concatenate([block[key] for block in blocks]) for key in blocks[0]},
        "fit_u0": np.zeros(n_genes),
        "fit_s0": np.zeros(n_genes),
        "fit_alignment_scaling": np.ones(n_genes),
    }


def recover_dynamics_settings(layers: Iterable[str]) -> dict[str, bool]:
    """The settings scVelo's dynamical tools read from ``uns["recover_dynamics"]``.

    ``use_raw`` as scVelo sets it (the abundances are ``spliced``/``unspliced`` unless both
    ``Ms`` and ``Mu`` are among ``layers``); ``fit_connected_states`` False (revelo does not
    average a gene's times over neighbours) and ``fit_basal_transcription`` False (no basal
    abundance is fitted: ``fit_u0`` = ``fit_s0`` = 0).
    """
    layers = set(layers)
    return {
        "fit_connected_states": False,
        "fit_basal_transcription": False,
        "use_raw": not {"Ms", "Mu"} <= layers,
    }
