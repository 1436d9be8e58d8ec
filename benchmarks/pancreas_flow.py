"""Where the velocities of the 739-cell pancreas subset flow on its UMAP, per model variant.

Run from the repository root::

    python -m benchmarks.pancreas_flow --variants '{}' '{"regimes": "auto", "n_branches": 4}' \
        --epochs 40 0 --seeds 0

Preprocesses ``pancreas_739.h5ad`` as ``tests/test_pancreas_flow.py`` does
(:func:`revelo.pp.preprocess` with 2,000 genes), trains REVELO with each variant's options
(``--epochs 0``: the default number of epochs with early stopping), projects the velocities
onto the UMAP (:func:`revelo.tl.velocity_graph`, :func:`revelo.tl.velocity_embedding`) and
prints, for each transition, the cosine between the source cluster's mean UMAP velocity and the
step from its centroid to the target's centroid (positive: the arrows point to the target).
Writes ``benchmarks/results/pancreas_flow.json``.
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np

import revelo

from ._common import environment, limit_threads, load_average, write_json
from .run import _json_object

RESULTS = Path(__file__).parent / "results"
TRANSITIONS = (
    ("Ngn3 low EP", "Ngn3 high EP"),
    ("Ngn3 high EP", "Pre-endocrine"),
    ("Pre-endocrine", "Beta"),
)


def flow_cosine(adata, source: str, target: str) -> float:
    """Cosine of the mean UMAP velocity of ``source`` and the step to ``target``'s centroid."""
    labels = adata.obs["clusters"].to_numpy()
    coords = adata.obsm["X_umap"]
    step = coords[labels == target].mean(0) - coords[labels == source].mean(0)
    mean = adata.obsm["velocity_umap"][labels == source].mean(0)
    return float(mean @ step / (np.linalg.norm(mean) * np.linalg.norm(step)))


def flows(adata, options: dict, *, epochs: int, seed: int) -> dict[str, float]:
    """Train one variant on a copy of ``adata`` and return its flow cosines."""
    adata = adata.copy()
    revelo.settings.seed = seed
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, **options)
    train = {"max_epochs": epochs} if epochs else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(accelerator="cpu", enable_progress_bar=False, **train)
        model.add_outputs(uncertainty=False)
        revelo.tl.velocity_graph(adata, device="cpu")
        revelo.tl.velocity_embedding(adata, basis="umap")
    out = {f"{s} -> {t}": flow_cosine(adata, s, t) for s, t in TRANSITIONS}
    out["epochs_run"] = len(model.history["elbo_train"])
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--variants", nargs="+", type=_json_object, default=[{}], help="REVELO options (JSON)"
    )
    parser.add_argument("--epochs", nargs="+", type=int, default=[0], help="0: the default")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "pancreas_flow.json"))
    args = parser.parse_args(argv)
    limit_threads(args.threads)

    raw = revelo.datasets.pancreas(subset="739")
    adata = revelo.pp.preprocess(raw, n_top_genes=2000)
    runs = []
    header = f"{'variant':<44} {'epochs':>6} {'seed':>4} " + " ".join(
        f"{s[:8] + '→' + t[:8]:>18}" for s, t in TRANSITIONS
    )
    print(header)
    for options in args.variants:
        variant = json.dumps(options)
        for epochs in args.epochs:
            for seed in args.seeds:
                load = load_average()
                result = flows(adata, options, epochs=epochs, seed=seed)
                runs.append(
                    {
                        "options": options,
                        "max_epochs": epochs or None,
                        "seed": seed,
                        "load_average_before": load,
                        **result,
                    }
                )
                cosines = " ".join(f"{result[f'{s} -> {t}']:>18.3f}" for s, t in TRANSITIONS)
                label = f"{variant} ({result['epochs_run']} run)"
                print(f"{label:<44} {epochs or 'auto':>6} {seed:>4} {cosines}", flush=True)
    payload = {"environment": environment(), "runs": runs}
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
