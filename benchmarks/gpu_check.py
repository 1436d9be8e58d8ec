"""The same small fit on the CPU and on the GPU: time and accuracy against the truth.

Run from the repository root on a machine with a GPU::

    python -m benchmarks.gpu_check

Simulates 1,000 cells × 100 genes (:func:`revelo.datasets.simulate`, seed 0), preprocesses
them as the simulation tutorial does, and trains REVELO with its defaults for 100 epochs
without early stopping, once with ``accelerator="cpu"`` and once with ``accelerator="gpu"``
(each from seed 0; the default batch size is 256 on the CPU and 1,024 on a GPU), then
``add_outputs``. Prints, for each, the seconds of training plus outputs, the device the model
ended on, and sign agreement and cosine with the true velocity
(:func:`revelo.tl.velocity_accuracy`; the truth in ``layers["true_velocity"]``, in counts, so
the cosine weighs genes by their counts and compares the two runs, not other benchmarks).
Writes ``benchmarks/results/gpu_check.json``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

import revelo

from ._common import environment, load_average, write_json

OUT = Path(__file__).parent / "results" / "gpu_check.json"


def fit(adata, accelerator: str, *, max_epochs: int) -> dict:
    """Train and add outputs on ``accelerator``; seconds, device and accuracy."""
    adata = adata.copy()
    revelo.REVELO.setup_anndata(adata)
    revelo.settings.seed = 0
    model = revelo.REVELO(adata)
    start = time.perf_counter()
    model.train(
        max_epochs=max_epochs,
        accelerator=accelerator,
        early_stopping=False,
        enable_progress_bar=False,
    )
    model.add_outputs(uncertainty=False)
    seconds = time.perf_counter() - start
    return {
        "accelerator": accelerator,
        "device": str(model.device),
        "seconds_train_and_outputs": seconds,
        "final_elbo_train": float(model.history["elbo_train"].iloc[-1, 0]),
        **revelo.tl.velocity_accuracy(adata, true_key="true_velocity"),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        parser.error("no GPU: torch.cuda.is_available() is False")

    raw = revelo.datasets.simulate(n_obs=1000, n_vars=100, seed=0)
    adata = revelo.pp.preprocess(raw, normalize=False, n_top_genes=None, compute_umap=False)
    rows = []
    for accelerator in ("cpu", "gpu"):
        load = load_average()
        rows.append(
            {**fit(adata, accelerator, max_epochs=args.max_epochs), "load_average_before": load}
        )
        row = rows[-1]
        print(
            f"{accelerator:<4} {row['device']:<8} {row['seconds_train_and_outputs']:7.1f} s  "
            f"sign agreement {row['sign_agreement']:.3f}  cosine {row['cosine']:.3f}",
            flush=True,
        )
    env = environment()
    env["gpu"] = torch.cuda.get_device_name(0)
    payload = {"environment": env, "rows": rows}
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
