"""Count likelihoods and batch-aware velocity on simulations with known truth ("Beyond VeloVI").

Run from the repository root::

    python -m benchmarks.beyond --seeds 0 1 2 --markdown

Two experiments, every model with its default training:

``likelihoods``
    ``revelo.datasets.simulate(noise="nb")``, 1000 cells × 100 genes, preprocessed once
    (moments for the Gaussian model; the count models read the raw counts of the same cells
    and genes, with size factors of 1 since library size follows time in a simulation). REVELO
    with the Gaussian, Poisson and negative-binomial likelihoods: velocity sign agreement and
    cosine with the truth, median per-gene Spearman of latent time, training time.
``batches``
    The same simulation with two batches and a per-batch, per-gene distortion of u and s
    (``batch_effect``), and the same cells without it (the single-batch reference). Per
    likelihood: the model with ``batch_key``, without it, and on the clean cells; sign
    agreement in each batch and the latent space's batch mixing
    (:func:`revelo.tl.batch_mixing`: 1 is as mixed as chance, 0 fully separated).

Results: tables on stdout and ``benchmarks/results/beyond.json`` with versions and threads.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

import revelo

from ._common import environment, format_table, limit_threads, spread, write_json

OUT = Path(__file__).parent / "results" / "beyond.json"
SIMULATION = {"n_obs": 1000, "n_vars": 100, "noise": "nb"}
PREPROCESS = {
    "n_top_genes": None,
    "normalize": False,
    "min_shared_counts": 20,
    "filter_velocity_genes": False,
}


def _prepare(seed: int, **simulate_kwargs) -> Any:
    raw = revelo.datasets.simulate(**SIMULATION, seed=seed, **simulate_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = revelo.pp.preprocess(raw, **PREPROCESS)
    adata.obs["size_factor"] = 1.0
    return adata


def fit(adata, *, likelihood: str, seed: int, batch_key: str | None = None) -> dict[str, Any]:
    """Train one REVELO model on a copy of ``adata``; return its accuracy and cost."""
    adata = adata.copy()
    revelo.settings.seed = seed
    setup: dict[str, Any] = {"batch_key": batch_key}
    if likelihood != "gaussian":
        setup.update(
            spliced_layer="spliced_counts",
            unspliced_layer="unspliced_counts",
            size_factor_key="size_factor",
        )
    revelo.REVELO.setup_anndata(adata, **setup)
    model = revelo.REVELO(adata, likelihood=likelihood)
    start = time.perf_counter()
    model.train(accelerator="cpu", enable_progress_bar=False)
    seconds = time.perf_counter() - start
    adata.layers["velocity"] = model.get_velocity(return_numpy=True)
    adata.layers["fit_t"] = model.get_latent_time(return_numpy=True)
    adata.obsm["X_revelo"] = model.get_latent_representation()
    accuracy = revelo.tl.velocity_accuracy(adata)
    result = {
        "sign_agreement": accuracy["sign_agreement"],
        "cosine": accuracy["cosine"],
        "gene_time_spearman": _median_gene_spearman(adata),
        "train_seconds": seconds,
        "epochs": len(model.history["elbo_train"]),
    }
    if "batch" in adata.obs:
        for batch in adata.obs["batch"].cat.categories:
            cells = (adata.obs["batch"] == batch).to_numpy()
            result[f"sign_{batch}"] = revelo.tl.velocity_accuracy(adata[cells])["sign_agreement"]
        result["batch_mixing"] = revelo.tl.batch_mixing(adata, batch_key="batch").mean
    return result


def _median_gene_spearman(adata) -> float:
    from scipy.stats import spearmanr

    truth = adata.obs["true_t"].to_numpy()
    times = adata.layers["fit_t"]
    values = [spearmanr(times[:, j], truth).statistic for j in range(adata.n_vars)]
    return float(np.nanmedian(values))


def likelihoods(seeds: list[int], names: list[str]) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {name: [] for name in names}
    for seed in seeds:
        adata = _prepare(seed)
        for name in names:
            print(f"likelihood {name}, seed {seed} ...", flush=True)
            runs[name].append(fit(adata, likelihood=name, seed=seed))
    return runs


def batches(seeds: list[int], names: list[str], batch_effect: float) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {}
    for seed in seeds:
        distorted = _prepare(seed, n_batches=2, batch_effect=batch_effect)
        clean = _prepare(seed, n_batches=2, batch_effect=0.0)
        for name in names:
            variants = {
                f"{name}, batch_key": (distorted, "batch"),
                f"{name}, no batch_key": (distorted, None),
                f"{name}, no batch effect": (clean, None),
            }
            for label, (adata, key) in variants.items():
                print(f"{label}, seed {seed} ...", flush=True)
                runs.setdefault(label, []).append(
                    fit(adata, likelihood=name, seed=seed, batch_key=key)
                )
    return runs


def _summary(runs: dict[str, list[dict]], columns) -> dict[str, dict]:
    return {
        label: {key: spread([row.get(key) for row in rows]) for key, _ in columns}
        for label, rows in runs.items()
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--likelihoods", nargs="+", default=["gaussian", "poisson", "nb"], help="models to run"
    )
    parser.add_argument("--batch-effect", type=float, default=0.5)
    parser.add_argument(
        "--experiments", nargs="+", choices=("likelihoods", "batches"), default=None
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args(argv)
    threads = limit_threads(args.threads)
    print(f"threads: {threads}")
    experiments = args.experiments or ["likelihoods", "batches"]

    payload: dict[str, Any] = {
        "benchmark": "beyond",
        "settings": {**vars(args), "simulate": SIMULATION, "preprocess": PREPROCESS},
        "environment": environment(),
    }
    accuracy = [
        ("sign_agreement", "sign agreement"),
        ("cosine", "cosine"),
        ("gene_time_spearman", "gene-time Spearman"),
        ("train_seconds", "train s"),
        ("epochs", "epochs"),
    ]
    if "likelihoods" in experiments:
        runs = likelihoods(args.seeds, args.likelihoods)
        summary = _summary(runs, accuracy)
        print("\nsimulate(noise='nb'), 1000 cells × 100 genes")
        print(format_table(summary, accuracy, markdown=args.markdown))
        payload["likelihoods"] = {"runs": runs, "summary": summary}
    if "batches" in experiments:
        runs = batches(args.seeds, args.likelihoods, args.batch_effect)
        columns = [
            ("sign_batch0", "sign batch0"),
            ("sign_batch1", "sign batch1"),
            ("sign_agreement", "sign all"),
            ("cosine", "cosine"),
            ("batch_mixing", "batch mixing"),
        ]
        summary = _summary(runs, columns)
        print(f"\ntwo batches, batch_effect={args.batch_effect}")
        print(format_table(summary, columns, markdown=args.markdown))
        payload["batches"] = {"runs": runs, "summary": summary}
    path = write_json(args.out, payload)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
