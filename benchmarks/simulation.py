"""revelo against VeloVI (and scVelo's dynamical model) on simulations with known velocities.

Run from the repository root::

    python -m benchmarks.simulation --n-obs 1000 --n-vars 100 --seeds 0 1 2

Two simulators, each preprocessed once per seed and shared by all methods (same genes,
moments and graph; CPU, one thread):

``scvelo``
    ``scvelo.datasets.simulation`` with per-gene log-normal rates and switch times drawn here
    (normal noise). Its values are non-negative floats; they are rounded to integers so that
    :func:`revelo.pp.preprocess` accepts them as counts. It stores no velocity, so the true one
    is computed here from the stored rates, switch times and cell times (see
    :func:`scvelo_truth`) and checked against a noise-free twin and a finite difference.
``revelo``
    :func:`revelo.datasets.simulate` with ``noise="normal"``; it stores the true velocity.

Both are preprocessed without per-cell normalisation (all genes start at zero, so library size
follows time). The true velocity is divided by ``var["Ms_scale"]`` to be in the units of the
min-max scaled ``Ms``. The table and ``benchmarks/results/simulation.json`` hold training time,
seconds per epoch, epochs, velocity sign agreement and cosine to the truth, the median per-gene
and the shared latent-time Spearman correlation with the true time, and revelo's time as a
ratio to VeloVI's.
"""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

import numpy as np
from anndata import AnnData

import revelo
from benchmarks._common import (
    add_result,
    environment,
    evaluate,
    format_table,
    limit_threads,
    run_method,
    summarize,
    time_ratios,
    write_json,
)

SIMULATORS = ("scvelo", "revelo", "partial")
#: revelo's simulator with partial dynamics: 15 % induction-only and 15 % repression-only
#: genes, negative-binomial noise, cells crowded early (t = 20 U²), per-cell library noise and
#: rates far from the model's starting values. Library size varies per cell, so these data are
#: normalised per cell like real data.
PARTIAL = {
    "noise": "nb",
    "induction_fraction": 0.15,
    "repression_fraction": 0.15,
    "time_skew": 2.0,
    "library_noise": 0.3,
    "rates": "broad",
}
#: Windows of time relative to a full-switch gene's switch, for the sign agreement.
WINDOWS = {
    "induction_early": (-np.inf, -2.0),
    "induction_late": (-2.0, 0.0),
    "repression_early": (0.0, 2.0),
    "repression_late": (2.0, np.inf),
}
KIND_KEYS = tuple(
    f"{metric}_{kind}"
    for kind in ("full", "induction", "repression")
    for metric in ("sign_agreement", "velocity_cosine")
) + tuple(f"sign_agreement_full_{window}" for window in WINDOWS)
KIND_COLUMNS = (
    ("sign_agreement", "all"),
    ("sign_agreement_full", "full"),
    ("sign_agreement_induction", "induction"),
    ("sign_agreement_repression", "repression"),
    *((f"sign_agreement_full_{window}", window.replace("_", " ")) for window in WINDOWS),
    ("velocity_cosine_induction", "cos ind."),
    ("velocity_cosine_repression", "cos rep."),
)
COLUMNS = (
    ("train_seconds", "train s"),
    ("seconds_per_epoch", "s/epoch"),
    ("epochs", "epochs"),
    ("sign_agreement", "sign agr."),
    ("velocity_cosine", "cosine"),
    ("median_gene_time_spearman", "gene-time ρ"),
    ("latent_time_spearman", "shared-time ρ"),
)
SUMMARY_KEYS = (
    *(key for key, _ in COLUMNS),
    "total_seconds",
    "peak_rss_delta_mib",
    "latent_time_spearman_scvelo",
    "n_velocity_genes",
    *KIND_KEYS,
)

# ---------------------------------------------------------------------------- scVelo simulator


def scvelo_simulation(
    n_obs: int, n_vars: int, seed: int, *, t_max: float = 20.0, noise_level: float = 1.0
) -> AnnData:
    """``scvelo.datasets.simulation`` with gene-specific kinetics, as integer counts.

    Rates are log-normal around scVelo's defaults (``alpha`` 5, ``beta`` 0.5, ``gamma`` 0.3) and
    switch times uniform in [0.2, 0.7] of the time span, so that most genes show both induction
    and repression. The true velocity and noise-free abundances are added as layers.
    """
    import scvelo as scv

    if n_vars == n_obs:
        # scVelo reads per-gene parameter arrays of length n_obs as per-cell values
        msg = "scvelo.datasets.simulation cannot take n_vars == n_obs with per-gene rates."
        raise ValueError(msg)
    rng = np.random.default_rng(seed)
    kinetics = {
        "alpha": 5.0 * np.exp(rng.normal(0.0, 0.4, n_vars)),
        "beta": 0.5 * np.exp(rng.normal(0.0, 0.3, n_vars)),
        "gamma": 0.3 * np.exp(rng.normal(0.0, 0.3, n_vars)),
        "switches": rng.uniform(0.2, 0.7, n_vars),
    }
    adata = scv.datasets.simulation(
        n_obs=n_obs,
        n_vars=n_vars,
        t_max=t_max,
        alpha_=0,
        noise_model="normal",
        noise_level=noise_level,
        random_seed=seed,
        **kinetics,
    )
    adata.obs_names = [f"cell_{i}" for i in range(adata.n_obs)]
    adata.var_names = [f"gene_{j}" for j in range(adata.n_vars)]
    unspliced, spliced, velocity = scvelo_truth(adata)
    adata.layers["true_unspliced"] = unspliced
    adata.layers["true_spliced"] = spliced
    adata.layers["true_velocity"] = velocity
    for key in ("spliced", "unspliced"):
        adata.layers[key] = np.rint(adata.layers[key]).astype(np.int32)
    adata.X = adata.layers["spliced"].copy()
    adata.obs["clusters"] = _time_bins(adata.obs["true_t"].to_numpy())
    adata.uns["simulation"] = {"simulator": "scvelo", "seed": seed, "t_max": t_max, **kinetics}
    return adata


def splicing_state(
    tau: np.ndarray,
    transcription: np.ndarray,
    beta: np.ndarray,
    gamma: np.ndarray,
    u0: np.ndarray,
    s0: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Closed-form ``(u, s)`` a time ``tau`` after ``(u0, s0)`` under constant transcription.

    Solves ``du/dt = a - beta u``, ``ds/dt = beta u - gamma s``: ``u`` relaxes to ``a / beta``
    at rate ``beta``; ``s`` relaxes to ``a / gamma`` at rate ``gamma`` plus a transient from
    the initial excess of ``u``, which at ``beta = gamma`` becomes ``tau e^{-beta tau}``.
    """
    decay_u, decay_s = np.exp(-beta * tau), np.exp(-gamma * tau)
    u = transcription / beta + (u0 - transcription / beta) * decay_u
    excess = beta * u0 - transcription
    degenerate = np.isclose(beta, gamma, rtol=1e-9, atol=0.0)
    gap = np.where(degenerate, 1.0, beta - gamma)
    transient = np.where(degenerate, tau * decay_u, (decay_s - decay_u) / gap)
    s = transcription / gamma + (s0 - transcription / gamma) * decay_s + excess * transient
    return u, s


def scvelo_kinetics(
    t: np.ndarray, alpha, beta, gamma, t_switch
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Noise-free ``(u, s, ds/dt)`` at times ``t`` (cells) for per-gene kinetics.

    scVelo's convention (``vectorize``): a cell is in induction while ``t < t_switch`` and in
    repression from ``t_switch`` on, with transcription ``alpha_ = 0`` then, starting from the
    induction state at ``t_switch``.
    """
    t = np.asarray(t, dtype=np.float64)[:, None]
    zero = np.zeros_like(alpha)
    u_on, s_on = splicing_state(t, alpha, beta, gamma, zero, zero)
    u_top, s_top = splicing_state(t_switch, alpha, beta, gamma, zero, zero)
    u_off, s_off = splicing_state(np.maximum(t - t_switch, 0.0), zero, beta, gamma, u_top, s_top)
    induced = t < t_switch
    u = np.where(induced, u_on, u_off)
    s = np.where(induced, s_on, s_off)
    return u, s, beta * u - gamma * s


def scvelo_truth(adata: AnnData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """True ``(u, s, ds/dt)`` of a ``scvelo.datasets.simulation`` AnnData, cells × genes.

    Uses ``obs["true_t"]`` (scVelo rounds it to 0.01; ds/dt is continuous in t, also at the
    switch, so the error is second order) and ``var["true_alpha"|"true_beta"|"true_gamma"|
    "true_t_"]``.
    """
    var = adata.var
    return scvelo_kinetics(
        adata.obs["true_t"].to_numpy(),
        var["true_alpha"].to_numpy(dtype=np.float64),
        var["true_beta"].to_numpy(dtype=np.float64),
        var["true_gamma"].to_numpy(dtype=np.float64),
        var["true_t_"].to_numpy(dtype=np.float64),
    )


def validate_scvelo_truth(n_obs: int, n_vars: int, seed: int) -> dict[str, float]:
    """Check :func:`scvelo_truth` two independent ways.

    ``state_error``: the closed-form ``(u, s)`` against scVelo's own noise-free simulation
    (``noise_level=0``, same parameters), as the largest absolute error over the gene's range.
    ``velocity_error``: the closed-form ds/dt against a central finite difference of the
    closed-form ``s`` in time (step 1e-5), as the largest absolute error over the gene's range
    of ds/dt.
    """
    import scvelo as scv

    reference = scvelo_simulation(n_obs, n_vars, seed)
    params = reference.uns["simulation"]
    twin = scv.datasets.simulation(
        n_obs=n_obs,
        n_vars=n_vars,
        t_max=params["t_max"],
        alpha_=0,
        noise_model="normal",
        noise_level=0,
        random_seed=seed,
        **{key: params[key] for key in ("alpha", "beta", "gamma", "switches")},
    )
    u, s, velocity = scvelo_truth(twin)
    state_error = max(
        _relative_error(u, np.asarray(twin.layers["unspliced"])),
        _relative_error(s, np.asarray(twin.layers["spliced"])),
    )
    var, t, step = twin.var, twin.obs["true_t"].to_numpy(dtype=np.float64), 1e-5
    rates = [var[key].to_numpy(dtype=np.float64) for key in ("true_alpha", "true_beta")]
    rates += [var[key].to_numpy(dtype=np.float64) for key in ("true_gamma", "true_t_")]
    ahead = scvelo_kinetics(t + step, *rates)[1]
    behind = scvelo_kinetics(np.maximum(t - step, 0.0), *rates)[1]
    width = (t + step) - np.maximum(t - step, 0.0)
    finite_difference = (ahead - behind) / width[:, None]
    return {
        "state_error": state_error,
        "velocity_error": _relative_error(velocity, finite_difference),
    }


def _relative_error(estimate: np.ndarray, reference: np.ndarray) -> float:
    span = np.ptp(reference, axis=0)
    error = np.abs(estimate - reference).max(axis=0)
    return float(np.max(error / np.where(span > 0, span, 1.0)))


def _time_bins(t: np.ndarray, n_bins: int = 5) -> np.ndarray:
    import pandas as pd

    bins = np.minimum((t / t.max() * n_bins).astype(int), n_bins - 1)
    return pd.Categorical.from_codes(bins, categories=[f"t{i}" for i in range(n_bins)])


# ---------------------------------------------------------------------------- benchmark


def simulate(simulator: str, n_obs: int, n_vars: int, seed: int) -> AnnData:
    """Raw counts with ``layers["true_velocity"]`` and ``obs["true_t"]``."""
    if simulator == "scvelo":
        return scvelo_simulation(n_obs, n_vars, seed)
    if simulator == "partial":
        return revelo.datasets.simulate(n_obs=n_obs, n_vars=n_vars, seed=seed, **PARTIAL)
    return revelo.datasets.simulate(n_obs=n_obs, n_vars=n_vars, seed=seed, noise="normal")


def kind_metrics(adata: AnnData, method: str, true_key: str) -> dict[str, Any]:
    """Sign agreement and cosine per kind of gene, and per window of time around the switch.

    Kinds come from ``var["true_kind"]`` (all ``"full"`` without it); a full-switch gene's
    switch time is ``var["true_t_switch"]`` (revelo's simulator) or ``var["true_t_"]``
    (scVelo's). The windows (:data:`WINDOWS`) split the full-switch genes' cell × gene entries
    by the time from the switch; steady genes (true velocity 0) have no sign.
    """
    vkey = f"velocity_{method}"
    velocity = np.asarray(adata.layers[vkey], dtype=np.float64)
    truth = np.asarray(adata.layers[true_key], dtype=np.float64)
    finite = np.isfinite(velocity).all(0) & adata.var[f"{vkey}_genes"].to_numpy(dtype=bool)
    kinds = (
        adata.var["true_kind"].astype(str).to_numpy()
        if "true_kind" in adata.var
        else np.full(adata.n_vars, "full")
    )
    out: dict[str, Any] = {}
    for kind in ("full", "induction", "repression"):
        genes = finite & (kinds == kind)
        if not genes.any():
            continue
        accuracy = revelo.tl.velocity_accuracy(adata, vkey=vkey, true_key=true_key, genes=genes)
        out[f"sign_agreement_{kind}"] = accuracy["sign_agreement"]
        out[f"velocity_cosine_{kind}"] = accuracy["cosine"]
        out[f"n_genes_{kind}"] = int(genes.sum())
    switch_key = "true_t_switch" if "true_t_switch" in adata.var else "true_t_"
    full = finite & (kinds == "full")
    if full.any():
        since = adata.obs["true_t"].to_numpy()[:, None] - adata.var[switch_key].to_numpy()[full]
        agree = np.sign(velocity[:, full]) == np.sign(truth[:, full])
        signed = np.abs(truth[:, full]) > 1e-8
        for window, (start, stop) in WINDOWS.items():
            entries = signed & (since >= start) & (since < stop)
            value = float(agree[entries].mean()) if entries.any() else float("nan")
            out[f"sign_agreement_full_{window}"] = value
    return out


def prepare(adata: AnnData, args: argparse.Namespace) -> AnnData:
    """Preprocess once for all methods; add the truth in the units of ``Ms``."""
    partial = adata.uns["simulation"].get("library_noise", 0) > 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = revelo.pp.preprocess(
            adata,
            normalize=partial,
            n_top_genes=None,
            min_shared_counts=args.min_shared_counts,
            n_pcs=args.n_pcs,
            n_neighbors=args.n_neighbors,
            compute_umap=False,
        )
    scale = out.var["Ms_scale"].to_numpy(dtype=np.float64)
    out.layers["true_velocity_ms"] = np.asarray(out.layers["true_velocity"]) / scale
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--n-vars", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--simulators", nargs="+", choices=SIMULATORS, default=list(SIMULATORS))
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=("revelo", "velovi", "scvelo_dynamical"),
        default=["revelo", "velovi", "scvelo_dynamical"],
    )
    parser.add_argument("--max-epochs-velovi", type=int, default=500)
    parser.add_argument(
        "--max-epochs-revelo", type=int, default=None, help="default: REVELO.train's own"
    )
    parser.add_argument(
        "--revelo-model",
        type=json.loads,
        default=None,
        metavar="JSON",
        help='keyword arguments for REVELO(...), e.g. \'{"regimes": "full"}\', for a variant',
    )
    parser.add_argument("--min-shared-counts", type=int, default=20)
    parser.add_argument("--n-pcs", type=int, default=30)
    parser.add_argument("--n-neighbors", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results/simulation.json")
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args(argv)

    threads = limit_threads(args.threads)
    print(f"threads: {threads}")
    epochs = {"revelo": args.max_epochs_revelo, "velovi": args.max_epochs_velovi}
    runs, validation, data = [], {}, {}
    for simulator in args.simulators:
        for seed in args.seeds:
            if simulator == "scvelo":
                validation[f"seed_{seed}"] = validate_scvelo_truth(args.n_obs, args.n_vars, seed)
                print(f"scvelo truth check, seed {seed}: {validation[f'seed_{seed}']}")
            adata = prepare(simulate(simulator, args.n_obs, args.n_vars, seed), args)
            data[f"{simulator}_seed_{seed}"] = {"n_cells": adata.n_obs, "n_genes": adata.n_vars}
            for method in args.methods:
                print(f"{simulator} seed {seed}: {method} ...", flush=True)
                result = run_method(
                    adata,
                    method,
                    seed=seed,
                    max_epochs=epochs.get(method),
                    scvelo_latent_time=True,
                    revelo_model=args.revelo_model,
                )
                add_result(adata, result)
                metrics = evaluate(adata, method, true_key="true_velocity_ms", graph=False)
                metrics.update(kind_metrics(adata, result.method, "true_velocity_ms"))
                runs.append(
                    {
                        "dataset": simulator,
                        "seed": seed,
                        "method": method,
                        **result.costs(),
                        **metrics,
                    }
                )

    summary, ratios, tables = {}, {}, {}
    for simulator in args.simulators:
        mine = [run for run in runs if run["dataset"] == simulator]
        summary[simulator] = summarize(mine, SUMMARY_KEYS)
        ratios[simulator] = time_ratios(mine)
        tables[simulator] = format_table(summary[simulator], COLUMNS, markdown=args.markdown)
        print(f"\n{simulator} simulation ({args.n_obs} cells, {args.n_vars} genes):")
        print(tables[simulator])
        tables[f"{simulator}_kinds"] = format_table(
            summary[simulator], KIND_COLUMNS, markdown=args.markdown
        )
        print("sign agreement by kind of gene and by window around the switch (full genes):")
        print(tables[f"{simulator}_kinds"])
        ratio = ratios[simulator]["train_seconds"]
        if ratio["mean"] is not None:
            print(
                f"revelo / VeloVI training time: {ratio['mean']:.2f} ± {ratio['std']:.2f} "
                f"(per epoch {ratios[simulator]['seconds_per_epoch']['mean']:.2f})"
            )
    payload = {
        "benchmark": "simulation",
        "settings": {**vars(args), "n_posterior_samples": 25, "device": "cpu"},
        "environment": environment(),
        "data": data,
        "scvelo_truth_validation": validation,
        "runs": runs,
        "summary": summary,
        "revelo_over_velovi": ratios,
        "tables": tables,
    }
    path = write_json(args.out, payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
