"""Time and memory of revelo, VeloVI and scVelo by number of cells ("Performance and scale").

Run from the repository root, one thread::

    OMP_NUM_THREADS=1 python -m benchmarks.scale --n-obs 10000 100000 --n-vars 2000 \
        --time-limit 600

For every size, on the same simulated raw counts (:func:`kinetic_counts`, sparse), each stage
timed on its own with its memory, the machine load (``os.getloadavg``, as ``uptime`` prints it)
before and after, and torch's thread count after it. With ``--separate`` (the default when
revelo and a reference method both run), revelo's stages run in one child process and VeloVI's
and scVelo's in a second, one after the other, each simulating the same counts (same seed): a
process keeps much of the memory its stages freed, and at 10⁵ cells revelo's leftovers and
VeloVI's setup together exceeded a 24-GiB machine. ``--no-separate`` runs everything in one
process. The stages:

- ``compile_neighbours`` (from 8,192 cells): pynndescent's first-call compilation, which
  either method would otherwise pay (:func:`_compile_neighbours`);
- ``simulate``: the counts; ``simulate_again``: the same counts (same seed) once more for
  scVelo, after revelo's data are freed or in scVelo's own process, so that only one method's
  data are held at a time (``compile_neighbours_again``: the compilation in that process);
- revelo: ``revelo_preprocess`` (``revelo.pp.preprocess``, all genes, no per-cell
  normalisation, no UMAP), ``revelo_train`` (defaults; ends at early stopping,
  ``--max-epochs`` or ``--time-limit`` seconds, but not before ``--min-epochs``, default 3),
  ``revelo_outputs`` (``add_outputs()`` with its defaults), ``revelo_graph``
  (``revelo.tl.velocity_graph``);
- ``scvelo_preprocess``: ``scv.pp.filter_and_normalize(min_shared_counts=20)``, scanpy's
  PCA and neighbours (30 each, which scVelo asks users to compute with scanpy) and
  ``scv.pp.moments(n_pcs=30, n_neighbors=30)``, shared by VeloVI and scVelo
  (:func:`_scvelo_preprocess`);
- VeloVI (as in ``benchmarks.pancreas_speed``): ``velovi_setup`` (VeloVI's
  ``preprocess_data``: min-max scaled ``Ms``/``Mu``, then scVelo's deterministic fit's
  velocity genes with r² > 0 and γ > 0), ``velovi_train`` (500 epochs,
  early stopping; same limits), ``velovi_velocity`` (``get_velocity(n_samples=25)``),
  ``velovi_graph`` (``scv.tl.velocity_graph``);
- ``scvelo_stochastic``: ``scv.tl.velocity(mode="stochastic")`` + ``scv.tl.velocity_graph``.

End to end: revelo = preprocess + train + outputs + graph; VeloVI = scVelo preprocessing +
setup + train + velocity + graph; scVelo = preprocessing + stochastic. Per-epoch times come
from a callback (the median of the completed epochs, validation included), so a training cut
by ``--time-limit`` mid-epoch does not skew them. Results: a table on stdout, with per-size
ratios revelo/VeloVI, and ``benchmarks/results/scale.json``, rewritten after every size, with
the device, the thread settings and the versions (see ``benchmarks/README.md``).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anndata as ad
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from scipy import sparse

from ._common import Stages, _epochs_run, environment, limit_threads, write_json

if TYPE_CHECKING:
    from collections.abc import Callable

OUT = Path(__file__).parent / "results" / "scale.json"
#: Cells simulated at a time, to bound the dense intermediate arrays.
_CHUNK = 20_000
METHODS = ("revelo", "velovi", "scvelo")
#: Posterior samples of VeloVI's ``get_velocity`` (as in ``benchmarks.pancreas_speed``).
VELOVI_SAMPLES = 25
#: Whether pynndescent has been compiled in this process (a list, to be set from a function).
_COMPILED: list[bool] = []


def kinetic_counts(n_obs: int, n_vars: int, *, seed: int = 0, t_max: float = 20.0) -> ad.AnnData:
    """Poisson spliced/unspliced counts around one induction and one repression per gene.

    Cells are simulated in chunks straight into sparse CSR layers, so memory stays near the
    size of the counts even for 10⁶ cells. Rates are log-normal (median α 2, β 1, γ 0.4) and
    switch times uniform in [0.3, 0.7]·``t_max``; abundances are low enough that most entries
    are zero, as in real data.
    """
    rng = np.random.default_rng(seed)
    alpha = rng.lognormal(np.log(2.0), 0.5, n_vars)
    beta = rng.lognormal(0.0, 0.3, n_vars)
    gamma = rng.lognormal(np.log(0.4), 0.3, n_vars)
    gamma = np.where(np.abs(gamma - beta) < 1e-3, gamma + 1e-2, gamma)
    t_switch = rng.uniform(0.3, 0.7, n_vars) * t_max

    def induction(t):
        u = alpha / beta * (1 - np.exp(-beta * t))
        s = alpha / gamma * (1 - np.exp(-gamma * t)) + alpha / (gamma - beta) * (
            np.exp(-gamma * t) - np.exp(-beta * t)
        )
        return u, s

    u_switch, s_switch = induction(t_switch)
    layers: dict[str, list] = {"spliced": [], "unspliced": []}
    times = []
    for start in range(0, n_obs, _CHUNK):
        t = rng.uniform(0, t_max, (min(_CHUNK, n_obs - start), 1))
        u, s = induction(np.minimum(t, t_switch))
        dt = np.maximum(t - t_switch, 0.0)
        repressed = t > t_switch
        u_rep = u_switch * np.exp(-beta * dt)
        s_rep = s_switch * np.exp(-gamma * dt) + beta * u_switch / (gamma - beta) * (
            np.exp(-gamma * dt) - np.exp(-beta * dt)
        )
        # clipped: rounding leaves tiny negative values near t = 0
        u = np.maximum(np.where(repressed, u_rep, u), 0.0)
        s = np.maximum(np.where(repressed, s_rep, s), 0.0)
        layers["unspliced"].append(sparse.csr_matrix(rng.poisson(u).astype(np.float32)))
        layers["spliced"].append(sparse.csr_matrix(rng.poisson(s).astype(np.float32)))
        times.append(t.ravel())
    spliced = sparse.vstack(layers["spliced"], format="csr")
    unspliced = sparse.vstack(layers["unspliced"], format="csr")
    adata = ad.AnnData(spliced.copy(), layers={"spliced": spliced, "unspliced": unspliced})
    adata.obs_names = [f"cell{i}" for i in range(n_obs)]
    adata.var_names = [f"gene{j}" for j in range(n_vars)]
    adata.obs["true_t"] = np.concatenate(times)
    return adata


def _device_peak_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2**20


def _reset_device_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


class _EpochClock(Callback):
    """Wall time of every training epoch (its validation included).

    An epoch cut short by ``max_time`` has fewer batches than the others; it is kept apart so
    that the time per epoch is the median of complete epochs only.
    """

    def __init__(self) -> None:
        self.seconds: list[float] = []
        self.partial_seconds: list[float] = []
        self._start: float | None = None
        self._batches = 0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()
        self._batches = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self._batches += 1

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self._start is None:
            return
        seconds = time.perf_counter() - self._start
        complete = self._batches >= trainer.num_training_batches
        (self.seconds if complete else self.partial_seconds).append(seconds)
        self._start = None


def _train(
    model,
    stages: Stages,
    name: str,
    *,
    max_epochs: int | None,
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    """Train ``model`` as stage ``name``; epochs, time per epoch and how training ended.

    Training ends at early stopping, ``max_epochs`` or ``args.time_limit`` seconds, but not
    before ``args.min_epochs`` epochs, so that every size has complete epochs to time.
    """
    clock = _EpochClock()
    kwargs: dict[str, Any] = {
        "max_time": {"seconds": args.time_limit},
        "min_epochs": args.min_epochs,
        "callbacks": [clock],
    }
    if args.precision is not None:
        kwargs["precision"] = args.precision
    _reset_device_peak(device)
    stages.run(
        name,
        model.train,
        max_epochs=max_epochs,
        accelerator=args.accelerator,
        enable_progress_bar=False,
        **kwargs,
    )
    seconds = stages.rows[name]["seconds"]
    epochs = _epochs_run(model)
    trainer = model.trainer
    stopper = trainer.early_stopping_callback
    converged = bool(stopper is not None and stopper.stopped_epoch > 0)
    if converged:
        ended = "early stopping"
    elif (epochs or 0) >= trainer.max_epochs:
        ended = "max epochs"
    else:
        ended = "time limit"
    per_epoch = float(np.median(clock.seconds)) if clock.seconds else None
    return {
        "train_seconds": seconds,
        "epochs": epochs,
        "complete_epochs": len(clock.seconds),
        "max_epochs": trainer.max_epochs,
        "seconds_per_epoch": per_epoch,
        "seconds_per_epoch_per_10k_cells": (
            per_epoch / model.adata.n_obs * 10_000 if per_epoch else None
        ),
        "first_epoch_seconds": clock.seconds[0] if clock.seconds else None,
        "epoch_seconds": [round(value, 4) for value in clock.seconds],
        "partial_epoch_seconds": [round(value, 4) for value in clock.partial_seconds],
        "ended": ended,
        "converged": converged,
        "timed_out": ended == "time limit",
        "train_peak_rss_delta_mib": stages.rows[name]["peak_rss_delta_mib"],
        "device_peak_mib": _device_peak_mib(device),
    }


def _run_revelo(adata: ad.AnnData, stages: Stages, args, device) -> dict[str, Any]:
    """revelo's stages after its preprocessing: training, outputs and velocity graph."""
    import revelo

    revelo.settings.seed = args.seed
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata)
    result = {
        "n_genes": adata.n_vars,
        "preprocess_step_seconds": adata.uns["revelo_preprocess"]["step_seconds"],
    }
    result |= _train(
        model, stages, "revelo_train", max_epochs=args.max_epochs, args=args, device=device
    )
    stages.run("revelo_outputs", model.add_outputs)
    stages.run("revelo_graph", revelo.tl.velocity_graph, adata, device=str(device))
    result["end_to_end_seconds"] = stages.seconds(
        "revelo_preprocess", "revelo_train", "revelo_outputs", "revelo_graph"
    )
    return result


def _run_velovi(theirs: ad.AnnData, stages: Stages, args, device, result: dict[str, Any]) -> None:
    """VeloVI's stages after scVelo's preprocessing, as in ``benchmarks.pancreas_speed``.

    The setup is VeloVI's ``preprocess_data``
    (:func:`benchmarks.own_pipeline.velovi_preprocess`); ``theirs`` is left as it is and
    VeloVI gets a copy of the selected genes only. ``result`` is filled as the stages finish,
    so that the saved row keeps the training's figures if a later stage is killed.
    """
    import scvelo as scv
    import scvi

    from .own_pipeline import velovi_preprocess

    velovi = stages.run("velovi_setup", velovi_preprocess, theirs)
    scvi.settings.seed = args.seed
    scvi.external.VELOVI.setup_anndata(velovi, spliced_layer="Ms", unspliced_layer="Mu")
    model = scvi.external.VELOVI(velovi)
    result["n_genes"] = velovi.n_vars
    result |= _train(
        model, stages, "velovi_train", max_epochs=args.max_epochs or 500, args=args, device=device
    )

    def velocity() -> None:
        velovi.layers["velocity"] = model.get_velocity(
            n_samples=VELOVI_SAMPLES, velo_statistic="mean", return_numpy=True
        )

    stages.run("velovi_velocity", velocity)
    stages.run("velovi_graph", scv.tl.velocity_graph, velovi, tolerate=(ValueError,))
    result["end_to_end_seconds"] = stages.seconds(
        "scvelo_preprocess", "velovi_setup", "velovi_train", "velovi_velocity", "velovi_graph"
    )


def run_size(
    n_obs: int,
    args: argparse.Namespace,
    device: torch.device,
    save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every stage of every method on one simulated data set.

    revelo runs first (any first-call compilation shared with scVelo's preprocessing is paid
    by revelo at the first size). To bound memory, the raw counts are dropped once revelo has
    preprocessed them and simulated again, identically (same seed), for scVelo, whose
    preprocessing then works on them in place: at most one method's data are held at a time.
    ``save(row)`` is called after every stage with the row so far (``complete`` false), so that
    a run killed on the way (out of memory) keeps its finished stages.
    """
    import revelo
    from revelo.pp._neighbors import _APPROXIMATE_FROM

    stages = Stages(args.threads)
    row: dict[str, Any] = {
        "n_obs": n_obs,
        "n_vars": args.n_vars,
        "complete": False,
        "stages": stages.rows,
    }
    if save is not None:
        stages.after_stage = lambda: save(row)
    raw = stages.run("simulate", kinetic_counts, n_obs, args.n_vars, seed=args.seed)
    if n_obs >= _APPROXIMATE_FROM and not _COMPILED:
        stages.run("compile_neighbours", _compile_neighbours)
    row["counts_density"] = raw.layers["spliced"].nnz / np.prod(raw.shape)
    if "revelo" in args.methods:
        adata = stages.run(
            "revelo_preprocess",
            revelo.pp.preprocess,
            raw,
            n_top_genes=args.n_vars,
            normalize=False,
            compute_umap=False,
        )
        raw = None
        gc.collect()
        row["revelo"] = _run_revelo(adata, stages, args, device)
        del adata
        gc.collect()
    if {"velovi", "scvelo"} & set(args.methods):
        import scvelo as scv

        scv.settings.verbosity = 0
        if raw is None:
            raw = stages.run("simulate_again", kinetic_counts, n_obs, args.n_vars, seed=args.seed)
        theirs = raw  # scVelo normalises in place
        del raw
        stages.run("scvelo_preprocess", _scvelo_preprocess, theirs)
        if "velovi" in args.methods:
            _run_velovi(theirs, stages, args, device, row.setdefault("velovi", {}))
            gc.collect()
        if "scvelo" in args.methods:
            stages.run(
                "scvelo_stochastic",
                lambda: (
                    scv.tl.velocity(theirs, mode="stochastic"),
                    scv.tl.velocity_graph(theirs),
                ),
                tolerate=(ValueError,),
            )
            genes = theirs.var.get("velocity_genes")
            row["scvelo"] = {
                "n_genes": theirs.n_vars,
                "n_velocity_genes": theirs.n_vars if genes is None else int(genes.sum()),
                "end_to_end_seconds": stages.seconds("scvelo_preprocess", "scvelo_stochastic"),
            }
    row["ratios"] = _ratios(row)
    row["complete"] = True
    return row


def _compile_neighbours() -> None:
    """Compile pynndescent's kernels once, on random data, before any method runs.

    From 8,192 cells both revelo's and scVelo's preprocessing search neighbours with
    pynndescent, whose numba kernels are compiled at the first call in a process (about 40 s
    on one thread) and not cached on disk. Whichever method ran first would pay for it; it is
    timed here as its own stage, in neither method's end to end.
    """
    from revelo.pp._neighbors import _APPROXIMATE_FROM, neighbors

    _COMPILED.append(True)
    rng = np.random.default_rng(0)
    warm = ad.AnnData(np.zeros((_APPROXIMATE_FROM, 1), dtype=np.float32))
    warm.obsm["X_pca"] = rng.normal(size=(_APPROXIMATE_FROM, 30)).astype(np.float32)
    neighbors(warm, n_neighbors=30, use_rep="X_pca")


def _scvelo_preprocess(adata: ad.AnnData) -> None:
    """scVelo's documented preprocessing, with the PCA and neighbours it asks scanpy for.

    Cells without spliced counts dropped (scanpy's ``filter_cells(min_counts=1)``), then
    ``filter_and_normalize(min_shared_counts=20)``, then scanpy's PCA (30 components, ARPACK,
    as scVelo's ``moments`` would compute it) and neighbours (30), then ``moments(n_pcs=30,
    n_neighbors=30)``, which reuses that graph. From 8,192 cells scanpy 1.11 searches
    neighbours with pynndescent 0.7 and fails on its ``csr_array`` (``getnnz``); the graph is
    then built by :func:`revelo.pp._neighbors.neighbors`, the same search passed to scanpy as a
    transformer, as for revelo's own preprocessing. Below that size it is scanpy's own call.
    """
    import scanpy as sc
    import scvelo as scv

    from revelo.pp._neighbors import neighbors

    # Cells without a spliced count are identical points of the PCA; from 10⁵ simulated cells
    # some have only such cells as neighbours, and scVelo's velocity graph then refuses the
    # graph ("Your neighbor graph seems to be corrupted"). They are dropped first, as revelo's
    # preprocessing drops them.
    sc.pp.filter_cells(adata, min_counts=1)
    scv.pp.filter_and_normalize(adata, min_shared_counts=20)
    sc.pp.pca(adata, n_comps=30, svd_solver="arpack")
    neighbors(adata, n_neighbors=30, use_rep="X_pca")
    scv.pp.moments(adata, n_pcs=30, n_neighbors=30)


def _ratios(row: dict[str, Any]) -> dict[str, float | None]:
    """revelo over VeloVI on this size: time per epoch, training and end to end."""
    out: dict[str, float | None] = {}
    for key in ("seconds_per_epoch", "train_seconds", "end_to_end_seconds"):
        mine = row.get("revelo", {}).get(key)
        theirs = row.get("velovi", {}).get(key)
        out[key] = mine / theirs if mine and theirs else None
    return out


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _table(rows: list[dict[str, Any]]) -> str:
    headers = (
        "cells", "method", "genes", "pp s", "s/epoch", "s/epoch/10k", "epochs", "ended",
        "train s", "outputs s", "graph s", "end-to-end s", "train ΔRSS MiB", "device MiB",
    )  # fmt: skip
    stage_names = {
        "revelo": ("revelo_preprocess", "revelo_outputs", "revelo_graph"),
        "velovi": ("scvelo_preprocess", "velovi_velocity", "velovi_graph"),
        "scvelo": ("scvelo_preprocess", "scvelo_stochastic", None),
    }
    lines = [headers]
    for row in rows:
        stages = row["stages"]
        for method in METHODS:
            if method not in row:
                continue
            result = row[method]
            pp, outputs, graph = (
                stages[name]["seconds"] if name in stages else None for name in stage_names[method]
            )
            trained = "train_seconds" in result
            lines.append((
                f"{row['n_obs']:,}",
                method,
                str(result["n_genes"]),
                _fmt(pp),
                _fmt(result.get("seconds_per_epoch"), 2),
                _fmt(result.get("seconds_per_epoch_per_10k_cells"), 2),
                str(result["epochs"]) if trained else "–",
                result.get("ended", ""),
                _fmt(result.get("train_seconds"), 0),
                _fmt(outputs),
                _fmt(graph),
                _fmt(result["end_to_end_seconds"], 0),
                _fmt(result.get("train_peak_rss_delta_mib"), 0),
                _fmt(result.get("device_peak_mib"), 0),
            ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    table = "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)
    ratios = [
        f"{row['n_obs']:,} cells: revelo/VeloVI time per epoch "
        f"{_fmt(row['ratios']['seconds_per_epoch'], 3)}, training "
        f"{_fmt(row['ratios']['train_seconds'], 3)}, end to end "
        f"{_fmt(row['ratios']['end_to_end_seconds'], 3)}"
        for row in rows
        if "revelo" in row and "velovi" in row
    ]
    return "\n".join([table, *ratios])


#: Stages a second process repeats, renamed so they stand beside the first process's.
_AGAIN = {"simulate": "simulate_again", "compile_neighbours": "compile_neighbours_again"}


def _child(n_obs: int, methods: list[str], argv: list[str]) -> dict[str, Any]:
    """Run one size for ``methods`` in a fresh process (this script); its row."""
    with tempfile.TemporaryDirectory(prefix="revelo-scale-") as tmp:
        out = Path(tmp) / "row.json"
        command = [sys.executable, "-m", "benchmarks.scale", *argv, "--no-separate"]
        command += ["--n-obs", str(n_obs), "--methods", *methods, "--out", str(out)]
        done = subprocess.run(command, check=False)
        rows = json.loads(out.read_text())["rows"] if out.exists() else []
    if not rows:
        return {
            "n_obs": n_obs,
            "complete": False,
            "stages": {},
            "error": f"exit status {done.returncode}",
        }
    row = rows[0]
    if done.returncode != 0:
        row["error"] = f"exit status {done.returncode}"
    return row


def run_size_separately(n_obs: int, args: argparse.Namespace, argv: list[str]) -> dict[str, Any]:
    """revelo's stages in one child process, VeloVI's and scVelo's in another; one row."""
    references = [method for method in args.methods if method != "revelo"]
    row = _child(n_obs, ["revelo"], argv)
    theirs = _child(n_obs, references, argv)
    for name, stage in theirs.get("stages", {}).items():
        row.setdefault("stages", {})[_AGAIN.get(name, name)] = stage
    for key in references:
        if key in theirs:
            row[key] = theirs[key]
    row["complete"] = bool(row.get("complete") and theirs.get("complete"))
    row["processes"] = "revelo | " + " + ".join(references)
    row["ratios"] = _ratios(row)
    return row


def _child_options(args: argparse.Namespace) -> list[str]:
    """This run's options other than the sizes, methods, output and separation, as arguments."""
    options = [
        *("--n-vars", str(args.n_vars), "--time-limit", str(args.time_limit)),
        *("--min-epochs", str(args.min_epochs), "--accelerator", args.accelerator),
        *("--threads", str(args.threads), "--seed", str(args.seed)),
    ]
    if args.max_epochs is not None:
        options += ["--max-epochs", str(args.max_epochs)]
    if args.precision is not None:
        options += ["--precision", args.precision]
    return options


def main() -> None:
    """Run the sizes in order and write the results after each one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-obs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-vars", type=int, default=2_000)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=3600.0, help="seconds per training")
    parser.add_argument("--min-epochs", type=int, default=3, help="epochs run whatever the limit")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default=None, help='e.g. "bf16-mixed"')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--separate",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="revelo and the reference methods in separate processes (default: when both run)",
    )
    args = parser.parse_args()
    if args.separate is None:
        args.separate = "revelo" in args.methods and len(set(args.methods)) > 1

    warnings.filterwarnings("ignore")
    threads = limit_threads(args.threads)
    from scvi.model._utils import parse_device_args

    import revelo

    revelo.settings.verbosity = "warning"
    revelo.settings.n_jobs = args.threads
    _, _, device = parse_device_args(args.accelerator, "auto", return_device="torch")
    env = environment()
    env["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    env["threads"] = threads
    env["revelo_n_jobs"] = revelo.settings.n_jobs
    rows: list[dict[str, Any]] = []

    def save(current: dict[str, Any] | None = None) -> None:
        done = rows if current is None else [*rows, current]
        write_json(args.out, {"environment": env, "options": vars(args), "rows": done})

    for n_obs in args.n_obs:
        print(f"{n_obs:,} cells × {args.n_vars:,} genes", flush=True)
        start = time.perf_counter()
        if args.separate:
            rows.append(run_size_separately(n_obs, args, _child_options(args)))
        else:
            rows.append(run_size(n_obs, args, device, save))
        rows[-1]["wall_seconds"] = time.perf_counter() - start
        save()
        print(_table(rows[-1:]), flush=True)
    print(f"\ndevice {env['device']}, torch threads {threads['torch_num_threads']}")
    print(_table(rows))


if __name__ == "__main__":
    main()
