"""Time and memory of revelo and VeloVI as the number of cells grows ("Performance and scale").

Run from the repository root::

    python -m benchmarks.scale --n-obs 10000 100000 1000000 --n-vars 2000 --time-limit 3600

For every size: simulated counts (:func:`kinetic_counts`, sparse), ``revelo.pp.preprocess``,
REVELO training, its outputs, ``revelo.tl.velocity_graph``, and VeloVI training on the same
``Ms``/``Mu``. Training stops at early stopping, ``--max-epochs`` or ``--time-limit`` seconds
(lightning's ``max_time``), whichever comes first; ``converged`` says whether early stopping
ended it. ``--max-epochs 1`` measures only the time per epoch. Results: a table on stdout and
``benchmarks/results/scale.json`` with the device, the thread settings and the versions.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import torch
from scipy import sparse

from ._common import _epochs_run, environment, limit_threads, measure, write_json

OUT = Path(__file__).parent / "results" / "scale.json"
#: Cells simulated at a time, to bound the dense intermediate arrays.
_CHUNK = 20_000


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


def _train(
    model, *, max_epochs: int | None, time_limit: float, accelerator: str, precision: str | None
) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"max_time": {"seconds": time_limit}}
    if precision is not None:
        kwargs["precision"] = precision
    with measure() as cost:
        model.train(
            max_epochs=max_epochs, accelerator=accelerator, enable_progress_bar=False, **kwargs
        )
    epochs = _epochs_run(model)
    trainer = model.trainer
    stopper = trainer.early_stopping_callback
    return {
        "train_seconds": cost.seconds,
        "epochs": epochs,
        "max_epochs": trainer.max_epochs,
        "seconds_per_epoch": cost.seconds / epochs if epochs else None,
        "converged": bool(stopper is not None and stopper.stopped_epoch > 0),
        "timed_out": cost.seconds >= time_limit,
        "train_peak_rss_delta_mib": cost.peak_rss_delta_mib,
        "max_rss_mib": cost.max_rss_mib,
    }


def run_size(n_obs: int, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Every measured step on one simulated data set."""
    import scvi

    import revelo

    row: dict[str, Any] = {"n_obs": n_obs, "n_vars": args.n_vars}
    with measure() as cost:
        raw = kinetic_counts(n_obs, args.n_vars, seed=args.seed)
    row["simulate_seconds"] = cost.seconds
    row["counts_density"] = raw.layers["spliced"].nnz / np.prod(raw.shape)

    with measure() as cost:
        adata = revelo.pp.preprocess(
            raw, n_top_genes=args.n_vars, normalize=False, compute_umap=False
        )
    del raw
    row["preprocess"] = {
        "seconds": cost.seconds,
        "peak_rss_delta_mib": cost.peak_rss_delta_mib,
        "n_genes": adata.n_vars,
    }

    revelo.settings.seed = args.seed
    work = adata.copy()
    revelo.REVELO.setup_anndata(work)
    model = revelo.REVELO(work)
    _reset_device_peak(device)
    result = _train(
        model,
        max_epochs=args.max_epochs,
        time_limit=args.time_limit,
        accelerator=args.accelerator,
        precision=args.precision,
    )
    result["device_peak_mib"] = _device_peak_mib(device)
    with measure() as cost:
        model.add_outputs(work, uncertainty=False)
    result["outputs_seconds"] = cost.seconds
    with measure() as cost:
        revelo.tl.velocity_graph(work, device=str(device))
    result["velocity_graph_seconds"] = cost.seconds
    row["revelo"] = result
    del model, work

    if "velovi" in args.methods:
        scvi.settings.seed = args.seed
        work = adata.copy()
        scvi.external.VELOVI.setup_anndata(work, spliced_layer="Ms", unspliced_layer="Mu")
        model = scvi.external.VELOVI(work)
        _reset_device_peak(device)
        result = _train(
            model,
            max_epochs=args.max_epochs or 500,
            time_limit=args.time_limit,
            accelerator=args.accelerator,
            precision=args.precision,
        )
        result["device_peak_mib"] = _device_peak_mib(device)
        row["velovi"] = result
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    headers = (
        "cells", "method", "s/epoch", "epochs", "converged", "train s", "pp s", "graph s",
        "train ΔRSS MiB", "device MiB",
    )  # fmt: skip
    lines = [headers]
    for row in rows:
        for method in ("revelo", "velovi"):
            if method not in row:
                continue
            result = row[method]
            lines.append((
                f"{row['n_obs']:,}",
                method,
                f"{result['seconds_per_epoch']:.2f}" if result["seconds_per_epoch"] else "–",
                str(result["epochs"]),
                "yes" if result["converged"] else ("time-out" if result["timed_out"] else "no"),
                f"{result['train_seconds']:.0f}",
                f"{row['preprocess']['seconds']:.1f}" if method == "revelo" else "",
                f"{result['velocity_graph_seconds']:.1f}" if method == "revelo" else "",
                f"{result['train_peak_rss_delta_mib']:.0f}",
                "–" if result["device_peak_mib"] is None else f"{result['device_peak_mib']:.0f}",
            ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)) for line in lines)


def main() -> None:
    """Run the sizes in order and write the results after each one."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-obs", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--n-vars", type=int, default=2_000)
    parser.add_argument("--methods", nargs="+", default=["revelo", "velovi"])
    parser.add_argument("--max-epochs", type=int, default=None)
    parser.add_argument("--time-limit", type=float, default=3600.0, help="seconds per training")
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--precision", default=None, help='e.g. "bf16-mixed"')
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()

    warnings.filterwarnings("ignore")
    threads = limit_threads(args.threads)
    from scvi.model._utils import parse_device_args

    _, _, device = parse_device_args(args.accelerator, "auto", return_device="torch")
    env = environment()
    env["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    env["threads"] = threads
    rows = []
    for n_obs in args.n_obs:
        start = time.perf_counter()
        rows.append(run_size(n_obs, args, device))
        rows[-1]["wall_seconds"] = time.perf_counter() - start
        write_json(args.out, {"environment": env, "options": vars(args), "rows": rows})
        print(_table(rows[-1:]), flush=True)
    print(f"\ndevice {env['device']}, torch threads {threads['torch_num_threads']}")
    print(_table(rows))


if __name__ == "__main__":
    main()
