"""Run velocity methods side by side on one preprocessed data set and score them.

Run from the repository root::

    python -m benchmarks.run --dataset pancreas --seeds 0 1 2
    python -m benchmarks.run --dataset dentategyrus --methods revelo velovi --seeds 0 --markdown
    python -m benchmarks.run --dataset pancreas --methods revelo \
        --revelo-model '{"n_latent": 20}' --out benchmarks/results/n_latent20

The data set is preprocessed once with :func:`revelo.pp.preprocess` (scVelo-style settings:
2,000 highly variable genes, 30 PCs, 30 neighbours, UMAP seed 0; simulations without per-cell
normalisation and with every gene) and cached in ``benchmarks/cache/``. Every method then runs
on that same AnnData, on the CPU with one thread, each run in a fresh process (so that its
peak memory is its own), and is scored with revelo's tools: training time, seconds per epoch,
peak memory, cross-boundary direction correctness in gene space and on the UMAP (per edge and
mean), in-cluster coherence, velocity consistency, the Spearman correlation of each method's
shared time with the clusters' stages along the known transitions (``time ρ (stage)``), and on
simulations the accuracy against the truth. Seeded methods run once per seed; scVelo's
deterministic methods run once.
``--revelo-model`` and ``--revelo-train`` (JSON objects) pass keyword arguments to
``REVELO(...)`` and ``REVELO.train(...)``, to measure a variant of the model. The table
shows mean ± standard deviation over seeds; ``benchmarks/results/<dataset>.json`` holds every
run and the summary.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np

import revelo
from benchmarks._common import (
    DETERMINISTIC,
    METHODS,
    add_result,
    environment,
    evaluate,
    format_table,
    limit_threads,
    model_accepts,
    run_method,
    summarize,
    time_ratios,
    write_json,
)

DATASETS = ("pancreas", "dentategyrus", "simulation")
PREPROCESS = {
    "min_shared_counts": 20,
    "n_top_genes": 2000,
    "n_pcs": 30,
    "n_neighbors": 30,
    "random_state": 0,
}
#: Simulations: library size follows time there, and every gene is informative.
PREPROCESS_SIMULATION = {**PREPROCESS, "normalize": False, "n_top_genes": None}
SIMULATION = {"n_obs": 1000, "n_vars": 100, "seed": 0}
EDGES = {
    "pancreas": [
        ("Ductal", "Ngn3 low EP"),
        ("Ngn3 low EP", "Ngn3 high EP"),
        ("Ngn3 high EP", "Pre-endocrine"),
        ("Pre-endocrine", "Alpha"),
        ("Pre-endocrine", "Beta"),
        ("Pre-endocrine", "Delta"),
        ("Pre-endocrine", "Epsilon"),
    ],
    "dentategyrus": [
        ("OPC", "OL"),
        ("Radial Glia-like", "Astrocytes"),
        ("nIPC", "Neuroblast"),
        ("Neuroblast", "Granule immature"),
        ("Granule immature", "Granule mature"),
    ],
    # time bins of revelo.datasets.simulate
    "simulation": [(f"t{i}", f"t{i + 1}") for i in range(4)],
}
CLUSTER_KEY = "clusters"
TRUE_KEY = "true_velocity_ms"
COLUMNS = (
    ("train_seconds", "train s"),
    ("seconds_per_epoch", "s/epoch"),
    ("epochs", "epochs"),
    ("peak_rss_delta_mib", "peak MiB"),
    ("cbdir_gene", "CBDir gene"),
    ("cbdir_umap", "CBDir UMAP"),
    ("iccoh_gene", "ICCoh gene"),
    ("consistency_gene", "consistency"),
    ("stage_time_spearman", "time ρ (stage)"),
)
TRUTH_COLUMNS = (
    ("sign_agreement", "sign agr."),
    ("velocity_cosine", "cosine"),
    ("latent_time_spearman", "time ρ"),
)
EXTRA_KEYS = (
    "total_seconds",
    "max_rss_mib",
    "iccoh_umap",
    "consistency_umap",
    "median_gene_time_spearman",
    "n_velocity_genes",
    "n_pipeline_genes",
    "preprocess_seconds",
)


# ---------------------------------------------------------------------------- data


def preprocessed(dataset: str, cache_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Path of the cached preprocessed data set (made on first use) and its settings."""
    settings: dict[str, Any] = {
        "dataset": dataset,
        "preprocess": PREPROCESS_SIMULATION if dataset == "simulation" else PREPROCESS,
        "revelo": revelo.__version__,
        "pp_source": _pp_source_hash(),
    }
    if dataset == "simulation":
        settings["simulate"] = SIMULATION
    key = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    path = cache_dir / f"{dataset}-{key}.h5ad"
    if path.is_file():
        print(f"using cached {path}")
        return path, settings
    adata = _load(dataset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = revelo.pp.preprocess(adata, **settings["preprocess"])
    if "true_velocity" in adata.layers:
        scale = adata.var["Ms_scale"].to_numpy(dtype=np.float64)
        adata.layers[TRUE_KEY] = np.asarray(adata.layers["true_velocity"]) / scale
    # h5ad cannot store None
    adata.uns["revelo_preprocess"] = {
        key: value for key, value in adata.uns["revelo_preprocess"].items() if value is not None
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    adata.write_h5ad(path)
    print(f"preprocessed {dataset}: {adata.n_obs} cells × {adata.n_vars} genes -> {path}")
    return path, settings


def _pp_source_hash() -> str:
    """Hash of revelo's preprocessing code: a changed ``preprocess`` refreshes the cache."""
    folder = Path(revelo.pp.__file__).parent
    digest = hashlib.sha1()
    for source in sorted(folder.glob("*.py")):
        digest.update(source.read_bytes())
    return digest.hexdigest()[:10]


def _load(dataset: str) -> ad.AnnData:
    if dataset == "pancreas":
        return revelo.datasets.pancreas()
    if dataset == "dentategyrus":
        return revelo.datasets.dentategyrus()
    return revelo.datasets.simulate(**SIMULATION)


def present_edges(adata: ad.AnnData, dataset: str) -> list[tuple[str, str]]:
    """The ground-truth edges whose two clusters both occur in the data."""
    labels = set(adata.obs[CLUSTER_KEY].astype(str))
    return [edge for edge in EDGES[dataset] if set(edge) <= labels]


# ---------------------------------------------------------------------------- one run


def run_job(path: str, method: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """Load the cached data, run one method with one seed, and score it."""
    limit_threads(options["threads"])
    adata = ad.read_h5ad(path)
    result = run_method(
        adata,
        method,
        seed=seed,
        max_epochs=options["max_epochs"],
        likelihood=options["likelihood"],
        revelo_model=options.get("revelo_model"),
        revelo_train=options.get("revelo_train"),
    )
    add_result(adata, result)
    metrics = evaluate(
        adata,
        method,
        cluster_key=CLUSTER_KEY,
        edges=[tuple(edge) for edge in options["edges"]],
        basis="umap",
        true_key=TRUE_KEY if TRUE_KEY in adata.layers else None,
    )
    return {
        "method": method,
        "seed": None if method in DETERMINISTIC else seed,
        **result.costs(),
        **metrics,
    }


def shared_embedding_path(dataset: str, cache_dir: Path) -> Path:
    """Cached scanpy-recipe UMAP and graph of the raw data set (made on first use)."""
    from benchmarks.own_pipeline import shared_embedding

    path = cache_dir / f"{dataset}-shared-embedding.h5ad"
    if path.is_file():
        print(f"using cached {path}")
        return path
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = shared_embedding(_load(dataset))
    path.parent.mkdir(parents=True, exist_ok=True)
    shared.write_h5ad(path)
    print(f"shared embedding of {dataset}: {shared.n_obs} cells -> {path}")
    return path


def run_job_own(path: str, method: str, seed: int, options: dict[str, Any]) -> dict[str, Any]:
    """Run one method on its own pipeline from the raw counts; score it on the shared graph."""
    from benchmarks.own_pipeline import run_own, scoring_data

    limit_threads(options["threads"])
    shared = ad.read_h5ad(path)
    raw = _load(options["dataset"])
    adata, result, prep_seconds = run_own(
        raw,
        method,
        seed=seed,
        max_epochs=options["max_epochs"],
        revelo_model=options.get("revelo_model"),
        revelo_train=options.get("revelo_train"),
    )
    scored, result = scoring_data(shared, adata, result)
    add_result(scored, result)
    metrics = evaluate(
        scored,
        method,
        cluster_key=CLUSTER_KEY,
        edges=[tuple(edge) for edge in options["edges"]],
        basis="umap",
    )
    return {
        "method": method,
        "seed": None if method in DETERMINISTIC else seed,
        "preprocess_seconds": prep_seconds,
        "n_pipeline_genes": int(adata.n_vars),
        **result.costs(),
        **metrics,
    }


def run_all(path: Path, jobs: list[tuple[str, int]], options: dict, *, isolate: bool) -> list:
    runs = []
    job = run_job_own if options.get("protocol") == "own" else run_job
    for method, seed in jobs:
        print(f"{method} seed {seed} ...", flush=True)
        if isolate:
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(1, mp_context=context) as pool:
                run = pool.submit(job, str(path), method, seed, options).result()
        else:
            run = job(str(path), method, seed, options)
        print(
            f"  train {run['train_seconds']:.1f} s, epochs {run['epochs']}, "
            f"CBDir gene {run.get('cbdir_gene')}",
            flush=True,
        )
        runs.append(run)
    return runs


# ---------------------------------------------------------------------------- main


def _json_object(text: str) -> dict[str, Any]:
    """Parse a command-line JSON object (keyword arguments)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        msg = f"not valid JSON ({error}); write it like '{{\"n_latent\": 20}}'"
        raise argparse.ArgumentTypeError(msg) from error
    if not isinstance(value, dict):
        msg = f"expected a JSON object of keyword arguments, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS, required=True)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--max-epochs", type=int, default=None, help="for revelo and VeloVI; default: their own"
    )
    parser.add_argument(
        "--likelihood",
        nargs="+",
        choices=("gaussian", "poisson", "nb"),
        default=None,
        help="revelo's likelihoods to run side by side (revelo, revelo_poisson, revelo_nb); "
        "the count ones read the raw counts of the same cells and genes",
    )
    parser.add_argument(
        "--revelo-model",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="keyword arguments for REVELO(...), e.g. '{\"n_latent\": 20}', to measure a variant",
    )
    parser.add_argument(
        "--revelo-train",
        type=_json_object,
        default=None,
        metavar="JSON",
        help="keyword arguments for REVELO.train(...), e.g. '{\"kl_weight\": 3}'",
    )
    parser.add_argument(
        "--protocol",
        choices=("shared", "own"),
        default="shared",
        help="shared: every method on revelo's preprocessed AnnData; own: every method on its "
        "own documented pipeline from the raw counts, scored on one scanpy UMAP and graph "
        "(results in <dataset>_own.json)",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="benchmarks/results", help="folder for <dataset>.json")
    parser.add_argument("--cache-dir", default="benchmarks/cache")
    parser.add_argument(
        "--in-process",
        action="store_true",
        help="run every method in this process (faster; peak memory is then less reliable)",
    )
    parser.add_argument("--markdown", action="store_true", help="print markdown tables")
    args = parser.parse_args(argv)

    if args.likelihood is not None and not model_accepts(revelo.REVELO, "likelihood"):
        parser.error("this revelo version has no `likelihood` option; drop --likelihood")
    threads = limit_threads(args.threads)
    print(f"threads: {threads}")
    own = args.protocol == "own"
    if own and args.dataset == "simulation":
        parser.error("--protocol own needs a published data set with cell types")
    if own and args.likelihood:
        parser.error("--protocol own runs revelo with its defaults; drop --likelihood")
    if own:
        path = shared_embedding_path(args.dataset, Path(args.cache_dir))
        data_settings = {
            "dataset": args.dataset,
            "protocol": "own",
            "shared_embedding": "scanpy normalize_total, log1p, 2000 HVG, 30 PCs, 30 neighbours, "
            "UMAP seed 0",
        }
    else:
        path, data_settings = preprocessed(args.dataset, Path(args.cache_dir))
    adata = ad.read_h5ad(path)
    edges = present_edges(adata, args.dataset)
    is_simulation = TRUE_KEY in adata.layers
    options = {
        "threads": args.threads,
        "max_epochs": args.max_epochs,
        "likelihood": None,
        "edges": edges,
        "revelo_model": args.revelo_model,
        "revelo_train": args.revelo_train,
        "protocol": args.protocol,
        "dataset": args.dataset,
    }
    methods = list(args.methods)
    if args.likelihood and "revelo" in methods:
        variants = [
            "revelo" if name == "gaussian" else f"revelo_{name}" for name in args.likelihood
        ]
        index = methods.index("revelo")
        methods[index : index + 1] = variants
    jobs = []
    for method in methods:
        seeds = args.seeds[:1] if method in DETERMINISTIC else args.seeds
        jobs += [(method, seed) for seed in seeds]
    runs = run_all(path, jobs, options, isolate=not args.in_process)

    columns = COLUMNS + (TRUTH_COLUMNS if is_simulation else ())
    keys = [key for key, _ in columns] + list(EXTRA_KEYS)
    summary = summarize(runs, keys)
    ratios = time_ratios(runs, group=("seed",))
    table = format_table(summary, columns, markdown=args.markdown)
    edge_tables = {
        space: format_table(
            {method: stats.get(f"cbdir_{space}_edges", {}) for method, stats in summary.items()},
            [(f"{source} → {target}", f"{source}→{target}") for source, target in edges],
            markdown=args.markdown,
        )
        for space in ("gene", "umap")
    }
    genes = f"{adata.n_vars} genes" if not own else "each method's own genes"
    print(f"\n{args.dataset} ({args.protocol} protocol): {adata.n_obs} cells, {genes}")
    print(f"seeds {args.seeds}")
    print(table)
    for space, edge_table in edge_tables.items():
        print(f"\nCBDir per edge ({space} space):\n{edge_table}")
    ratio = ratios["train_seconds"]
    if ratio["mean"] is not None:
        print(
            f"\nrevelo / VeloVI training time: {ratio['mean']:.2f} ± {ratio['std']:.2f}; "
            f"per epoch {ratios['seconds_per_epoch']['mean']:.2f}"
        )

    payload = {
        "benchmark": "run",
        "dataset": args.dataset,
        "settings": {**vars(args), "n_posterior_samples": 25, "device": "cpu"},
        "data": {
            **data_settings,
            "cache": str(path),
            "n_cells": adata.n_obs,
            "n_genes": adata.n_vars,
            "cluster_key": CLUSTER_KEY,
            "edges": edges,
        },
        "environment": environment(),
        "runs": runs,
        "summary": summary,
        "revelo_over_velovi": ratios,
        "tables": {"main": table, **{f"cbdir_{k}_edges": v for k, v in edge_tables.items()}},
    }
    name = f"{args.dataset}_own" if own else args.dataset
    out = write_json(Path(args.out) / f"{name}.json", payload)
    print(f"\nwrote {out}")
    return payload


if __name__ == "__main__":
    main()
