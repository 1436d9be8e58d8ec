"""Simulated spliced/unspliced counts with known kinetics."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from anndata import AnnData

from revelo._validation import check_choice

#: Medians and log-scale spreads of the log-normal rate distributions. With these, fully induced
#: genes reach about alpha / gamma ≈ 20 spliced and alpha / beta ≈ 8 unspliced counts.
_RATE_PRIORS = {"alpha": (8.0, 0.5), "beta": (1.0, 0.3), "gamma": (0.4, 0.3)}
#: Bounds of the log-uniform rate distributions of ``rates="broad"``: β spans sixteen-fold around
#: the model's starting value 1 and γ/β ratios from 1/40 to 6, so that neither matches a start.
_BROAD_RANGES = {"alpha": (3.0, 30.0), "beta": (0.25, 4.0), "gamma": (0.1, 1.5)}
#: Switch times are drawn uniformly in this fraction of ``t_max``; with the default ``t_max`` most
#: genes come close to both steady states (induced and off), so phase portraits are complete.
_SWITCH_RANGE = (0.3, 0.7)
#: Kinds of gene dynamics, as stored in ``var["true_kind"]``.
GENE_KINDS = ("full", "induction", "repression", "steady")


def simulate(
    n_obs: int = 1000,
    n_vars: int = 100,
    *,
    seed: int = 0,
    noise: Literal["poisson", "nb", "normal"] = "poisson",
    dispersion: float = 0.2,
    t_max: float = 20.0,
    n_clusters: int = 5,
    n_batches: int = 1,
    batch_effect: float = 0.0,
    induction_fraction: float = 0.0,
    repression_fraction: float = 0.0,
    steady_fraction: float = 0.0,
    time_skew: float = 1.0,
    library_noise: float = 0.0,
    rates: Literal["narrow", "broad"] = "narrow",
) -> AnnData:
    """Simulate raw spliced and unspliced counts from the splicing kinetics.

    Every gene follows ``du/dt = alpha(t) - beta * u`` and ``ds/dt = beta * u - gamma * s`` from
    ``u = s = 0`` at ``t = 0``, with transcription ``alpha(t) = alpha`` until the gene's switch
    time and ``0`` after it (one induction followed by one repression). Rates are drawn
    log-normally per gene (median ``alpha`` 8, ``beta`` 1, ``gamma`` 0.4), switch times uniformly
    in ``[0.3, 0.7] * t_max``, and cells' times uniformly in ``[0, t_max]``. The noise-free
    solution is exact (closed form); counts are drawn around it.

    All genes start at zero, so the earliest cells have very few counts and library sizes follow
    time. Per-cell normalisation would distort the phase portraits, so preprocess simulations
    with ``revelo.pp.preprocess(adata, normalize=False, n_top_genes=None)``.

    Parameters
    ----------
    n_obs
        Number of cells.
    n_vars
        Number of genes.
    seed
        Seed of the random generator; the same seed gives the same data.
    noise
        Count noise: ``"poisson"``; ``"nb"``, negative binomial with variance
        ``mean + dispersion * mean**2``; or ``"normal"``, Gaussian with standard deviation
        ``sqrt(mean) + 0.5``, rounded and clipped at zero.
    dispersion
        Over-dispersion of the ``"nb"`` noise (ignored otherwise).
    t_max
        Time span covered by the cells. Shorter spans (e.g. 10) leave fewer cells fully
        repressed, where a single gene cannot tell late cells from cells not yet induced, but
        fewer genes then pass the steady-state filter of :func:`revelo.pp.preprocess`.
    n_clusters
        Number of equal-width time bins in ``obs["clusters"]``.
    n_batches
        Number of batches; cells are assigned to them uniformly at random, independently of
        their time, so every batch covers the whole trajectory.
    batch_effect
        Technical distortion between batches: every batch multiplies each gene's expected
        unspliced and spliced counts by its own factors ``exp(N(0, batch_effect²))``, drawn
        separately for the two layers (as a protocol that captures intronic reads better
        would). Unequal factors move the steady-state line ``u = (gamma / beta) s`` from batch
        to batch, which a model that ignores batches reads as kinetics. ``0`` leaves the counts
        undistorted; the kinetics and the true velocities are the same in every batch.
    induction_fraction
        Fraction of genes that are only induced: they start at ``u = s = 0`` at ``t = 0`` and
        never switch off within ``[0, t_max]`` (``var["true_t_switch"]`` is ``inf``).
    repression_fraction
        Fraction of genes that are only repressed: they start at their induction steady state
        ``(alpha / beta, alpha / gamma)`` at ``t = 0`` and decay from the first cell on
        (``var["true_t_switch"]`` is 0).
    steady_fraction
        Fraction of genes that stay at their induction steady state in every cell (true velocity
        0; ``var["true_t_switch"]`` is ``nan``). The remaining genes switch once, as above.
    time_skew
        Cells' times are ``t_max * U ** time_skew`` with ``U`` uniform on [0, 1]: 1 spreads them
        evenly, larger values crowd them early and leave late times sparse.
    library_noise
        Standard deviation of a per-cell log-normal factor ``exp(N(0, library_noise²))`` that
        multiplies every expected count of the cell (both layers), as unequal capture and
        sequencing depth would; stored in ``obs["true_library_factor"]``. 0 leaves it out.
    rates
        ``"narrow"``: the log-normal rates above. ``"broad"``: log-uniform rates, ``alpha`` in
        [3, 30], ``beta`` in [0.25, 4] and ``gamma`` in [0.1, 1.5], far from any fixed start.

    Returns
    -------
    AnnData with integer counts and the ground truth:

    ``X``, ``layers["spliced"]``, ``layers["unspliced"]``
        Dense int32 counts (``X`` equals spliced).
    ``layers["true_spliced"]``, ``layers["true_unspliced"]``
        Noise-free abundances from the kinetics; the counts are drawn around these times the
        cell's batch factors.
    ``layers["true_velocity"]``, ``layers["true_velocity_u"]``
        Noise-free ``beta * u - gamma * s`` and ``alpha(t) - beta * u``.
    ``obs["true_t"]``, ``obs["clusters"]``
        Each cell's time, and its time bin (categorical ``"t0"``, ``"t1"``, …).
    ``obs["batch"]``
        Only when ``n_batches > 1``: the batch (categorical ``"batch0"``, ``"batch1"``, …).
    ``var["true_alpha"]``, ``var["true_beta"]``, ``var["true_gamma"]``, ``var["true_t_switch"]``
        Each gene's kinetic rates and switch time.
    ``var["true_kind"]``
        Each gene's dynamics (categorical): ``"full"`` (induction, then repression),
        ``"induction"``, ``"repression"`` or ``"steady"``.
    ``obs["true_library_factor"]``
        Only when ``library_noise > 0``: each cell's factor on its expected counts.
    ``varm["true_batch_factor_u"]``, ``varm["true_batch_factor_s"]``
        Only when ``n_batches > 1``: genes × batches factors applied to the expected unspliced
        and spliced counts.
    ``uns["simulation"]``
        The settings used.
    """
    check_choice("noise", noise, ("poisson", "nb", "normal"))
    if n_obs < 1 or n_vars < 1 or t_max <= 0 or n_clusters < 1 or n_batches < 1:
        msg = "n_obs, n_vars, n_clusters and n_batches must be at least 1 and t_max positive."
        raise ValueError(msg)
    if batch_effect < 0:
        msg = f"batch_effect={batch_effect} must be zero or positive."
        raise ValueError(msg)
    fractions = (induction_fraction, repression_fraction, steady_fraction)
    if min(fractions) < 0 or sum(fractions) > 1:
        msg = (
            f"induction_fraction, repression_fraction and steady_fraction {fractions} must be "
            "zero or positive and add up to at most 1; the rest of the genes switch once."
        )
        raise ValueError(msg)
    if time_skew <= 0 or library_noise < 0:
        msg = f"time_skew={time_skew} must be positive and library_noise={library_noise} >= 0."
        raise ValueError(msg)
    check_choice("rates", rates, ("narrow", "broad"))
    if noise == "nb" and dispersion <= 0:
        msg = f"dispersion={dispersion} must be positive for noise='nb'."
        raise ValueError(msg)

    rng = np.random.default_rng(seed)
    if rates == "narrow":
        drawn = {
            name: np.exp(rng.normal(np.log(median), spread, size=n_vars))
            for name, (median, spread) in _RATE_PRIORS.items()
        }
    else:
        drawn = {
            name: np.exp(rng.uniform(np.log(low), np.log(high), size=n_vars))
            for name, (low, high) in _BROAD_RANGES.items()
        }
    alpha, beta, gamma = drawn["alpha"], drawn["beta"], drawn["gamma"]
    t_switch = rng.uniform(*_SWITCH_RANGE, size=n_vars) * t_max
    t = rng.uniform(0.0, t_max, size=n_obs)
    if time_skew != 1.0:
        t = t_max * (t / t_max) ** time_skew
    # Further draws only where an option asks for them, so the defaults give the same data.
    kind = np.zeros(n_vars, dtype=int)
    if sum(fractions) > 0:
        counts = np.floor(np.asarray(fractions) * n_vars + 0.5).astype(int)
        counts = np.minimum(counts, n_vars - np.concatenate(([0], np.cumsum(counts)[:-1])))
        labels_of_genes = np.repeat(np.arange(1, 4), counts)
        kind[rng.permutation(n_vars)[: len(labels_of_genes)]] = labels_of_genes

    u, s, alpha_t = _switch_solution(t[:, None], alpha, beta, gamma, t_switch)
    u, s, alpha_t, t_switch = _partial_dynamics(
        t, u, s, alpha_t, t_switch, kind, alpha, beta, gamma
    )
    library = np.ones(n_obs)
    if library_noise > 0:
        library = np.exp(rng.normal(0.0, library_noise, size=n_obs))
    batch = np.zeros(n_obs, dtype=int)
    factor_u = factor_s = np.ones((n_vars, 1))
    if n_batches > 1:
        # Drawn after everything else, so the kinetics do not depend on the batch settings.
        batch = rng.integers(n_batches, size=n_obs)
        factor_u = np.exp(rng.normal(0.0, batch_effect, size=(n_vars, n_batches)))
        factor_s = np.exp(rng.normal(0.0, batch_effect, size=(n_vars, n_batches)))
    depth = library[:, None]
    spliced = _add_noise(rng, depth * s * factor_s[:, batch].T, noise, dispersion)
    unspliced = _add_noise(rng, depth * u * factor_u[:, batch].T, noise, dispersion)

    bins = np.minimum((t / t_max * n_clusters).astype(int), n_clusters - 1)
    labels = [f"t{i}" for i in range(n_clusters)]
    obs = pd.DataFrame(
        {"true_t": t, "clusters": pd.Categorical.from_codes(bins, categories=labels)},
        index=pd.Index([f"cell_{i}" for i in range(n_obs)]),
    )
    if library_noise > 0:
        obs["true_library_factor"] = library
    varm = {}
    if n_batches > 1:
        batches = [f"batch{i}" for i in range(n_batches)]
        obs["batch"] = pd.Categorical.from_codes(batch, categories=batches)
        varm = {"true_batch_factor_u": factor_u, "true_batch_factor_s": factor_s}
    var = pd.DataFrame(
        {
            "true_alpha": alpha,
            "true_beta": beta,
            "true_gamma": gamma,
            "true_t_switch": t_switch,
            "true_kind": pd.Categorical.from_codes(kind, categories=list(GENE_KINDS)),
        },
        index=pd.Index([f"gene_{j}" for j in range(n_vars)]),
    )
    layers = {
        "spliced": spliced,
        "unspliced": unspliced,
        "true_spliced": s,
        "true_unspliced": u,
        "true_velocity": beta * u - gamma * s,
        "true_velocity_u": alpha_t - beta * u,
    }
    uns = {
        "simulation": {
            "n_obs": n_obs,
            "n_vars": n_vars,
            "seed": seed,
            "noise": noise,
            "dispersion": dispersion,
            "t_max": t_max,
            "n_clusters": n_clusters,
            "n_batches": n_batches,
            "batch_effect": batch_effect,
            "induction_fraction": induction_fraction,
            "repression_fraction": repression_fraction,
            "steady_fraction": steady_fraction,
            "time_skew": time_skew,
            "library_noise": library_noise,
            "rates": rates,
        }
    }
    return AnnData(X=spliced.copy(), obs=obs, var=var, layers=layers, varm=varm, uns=uns)


def _splicing_solution(
    tau: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    gamma: np.ndarray,
    u0: np.ndarray,
    s0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve the splicing ODE with constant ``alpha`` for a time ``tau`` from ``(u0, s0)``.

    Arrays broadcast together. ``beta == gamma`` uses the limit of the general formula.
    """
    decay_u = np.exp(-beta * tau)
    decay_s = np.exp(-gamma * tau)
    u = u0 * decay_u + alpha / beta * (1 - decay_u)
    drive = alpha - beta * u0
    close = np.isclose(beta, gamma, rtol=1e-8, atol=0.0)
    safe_difference = np.where(close, 1.0, gamma - beta)
    coupling = np.where(close, -tau * decay_u, (decay_s - decay_u) / safe_difference)
    s = s0 * decay_s + alpha / gamma * (1 - decay_s) + drive * coupling
    return u, s


def _switch_solution(
    t: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    gamma: np.ndarray,
    t_switch: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return ``(u, s, alpha(t))`` for induction until ``t_switch`` and repression after it."""
    zero = np.zeros_like(alpha)
    u_on, s_on = _splicing_solution(np.minimum(t, t_switch), alpha, beta, gamma, zero, zero)
    u_switch, s_switch = _splicing_solution(t_switch, alpha, beta, gamma, zero, zero)
    after = t > t_switch
    u_off, s_off = _splicing_solution(
        np.maximum(t - t_switch, 0.0), zero, beta, gamma, u_switch, s_switch
    )
    u = np.where(after, u_off, u_on)
    s = np.where(after, s_off, s_on)
    alpha_t = np.where(after, 0.0, alpha) * np.ones_like(u)
    return u, s, alpha_t


def _partial_dynamics(
    t: np.ndarray,
    u: np.ndarray,
    s: np.ndarray,
    alpha_t: np.ndarray,
    t_switch: np.ndarray,
    kind: np.ndarray,
    alpha: np.ndarray,
    beta: np.ndarray,
    gamma: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Replace the one-switch solution of the genes whose ``kind`` is not ``"full"`` (0).

    Induction only (1): induction from zero at every time. Repression only (2): no
    transcription, from the induction steady state at ``t = 0``. Steady (3): the induction
    steady state throughout.
    """
    u, s, alpha_t = u.copy(), s.copy(), alpha_t.copy()
    t_switch = t_switch.astype(np.float64, copy=True)
    zero = np.zeros_like(alpha)
    on_u, on_s = _splicing_solution(t[:, None], alpha, beta, gamma, zero, zero)
    off_u, off_s = _splicing_solution(t[:, None], zero, beta, gamma, alpha / beta, alpha / gamma)
    steady_u, steady_s = alpha / beta * np.ones_like(u), alpha / gamma * np.ones_like(s)
    for code, (new_u, new_s, rate, switch) in {
        1: (on_u, on_s, alpha, np.inf),
        2: (off_u, off_s, zero, 0.0),
        3: (steady_u, steady_s, alpha, np.nan),
    }.items():
        genes = kind == code
        u[:, genes], s[:, genes] = new_u[:, genes], new_s[:, genes]
        alpha_t[:, genes] = rate[genes]
        t_switch[genes] = switch
    return u, s, alpha_t, t_switch


def _add_noise(rng: np.random.Generator, mean: np.ndarray, noise: str, dispersion: float):
    """Draw int32 counts around ``mean``."""
    if noise == "poisson":
        counts = rng.poisson(mean)
    elif noise == "nb":
        size = 1.0 / dispersion
        counts = rng.negative_binomial(size, size / (size + mean))
    else:
        sd = np.sqrt(mean) + 0.5
        counts = np.clip(np.round(mean + sd * rng.standard_normal(mean.shape)), 0, None)
    return counts.astype(np.int32)
