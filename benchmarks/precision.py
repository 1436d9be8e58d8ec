"""Accuracy and speed of mixed-precision training against float32 on a simulation.

Run from the repository root::

    python -m benchmarks.precision --precision bf16-mixed --accelerator cpu
    python -m benchmarks.precision --precision 16-mixed bf16-mixed --accelerator gpu

Every precision trains REVELO from the same seed on the same preprocessed simulation for the
same number of epochs; the velocity is scored against the true one (sign agreement where the
truth is not ~0) and the per-gene latent time against the true time (median Spearman). Results:
a table and ``benchmarks/results/precision.json``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import spearmanr

from ._common import environment, limit_threads, measure, write_json

OUT = Path(__file__).parent / "results" / "precision.json"


def _scores(model, adata) -> dict[str, float]:
    velocity = model.get_velocity(n_samples=25, return_numpy=True)
    truth = adata.layers["true_velocity"]
    moving = np.abs(truth) > 1e-3 * np.abs(truth).max(0)
    times = model.get_latent_time(n_samples=25, return_numpy=True)
    true_t = adata.obs["true_t"].to_numpy()
    per_gene = [spearmanr(times[:, j], true_t).statistic for j in range(adata.n_vars)]
    return {
        "velocity_sign_agreement": float((np.sign(velocity) == np.sign(truth))[moving].mean()),
        "latent_time_spearman_median": float(np.nanmedian(per_gene)),
    }


def main() -> None:
    """Train at every precision and write the comparison."""
    import revelo

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", nargs="+", default=["bf16-mixed"])
    parser.add_argument("--accelerator", default="cpu")
    parser.add_argument("--n-obs", type=int, default=1000)
    parser.add_argument("--n-vars", type=int, default=100)
    parser.add_argument("--max-epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    threads = limit_threads(args.threads)

    raw = revelo.datasets.simulate(n_obs=args.n_obs, n_vars=args.n_vars, seed=args.seed)
    adata = revelo.pp.preprocess(raw, n_top_genes=None, normalize=False, compute_umap=False)
    rows: list[dict[str, Any]] = []
    for precision in ["32-true", *args.precision]:
        revelo.settings.seed = args.seed
        work = adata.copy()
        revelo.REVELO.setup_anndata(work)
        model = revelo.REVELO(work)
        row: dict[str, Any] = {"precision": precision}
        try:
            with measure() as cost:
                model.train(
                    max_epochs=args.max_epochs,
                    accelerator=args.accelerator,
                    precision=precision,
                    early_stopping=False,
                    enable_progress_bar=False,
                )
        except Exception as error:  # reported in the results, not hidden
            row["error"] = f"{type(error).__name__}: {error}"
        else:
            row["train_seconds"] = cost.seconds
            row.update(_scores(model, work))
        rows.append(row)
        print(row, flush=True)
    env = environment()
    env["threads"] = threads
    write_json(args.out, {"environment": env, "options": vars(args), "rows": rows})


if __name__ == "__main__":
    main()
