"""Which order of the cells ``regimes="auto"`` should read each gene's regime along.

Run from the repository root::

    python -m benchmarks.regime_order --seeds 0 1 2

For the 739-cell pancreas subset (preprocessed as ``benchmarks.pancreas_flow`` does) and the
partial-dynamics simulation (as ``benchmarks.simulation`` prepares it), trains the first fit of
``regimes="auto"`` (every gene a full switch, four branches, default epochs), then orders the
cells two ways: by that fit's latent time (``add_outputs``) and by the potential of its
velocities on the neighbour graph (what ``regimes="auto"`` uses). For each order it prints the
Spearman correlation with the reference (the developmental stage of each cluster on pancreas,
``true_t`` on the simulation) and the regimes ``regime_codes`` reads along it; on pancreas also
how many of the genes that peak in Ngn3 high EP cells (their highest cluster mean) are read as
repression only, on the simulation how many genes get their true kind. Writes
``benchmarks/results/regime_order.json``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

import revelo
from revelo.model._posterior import observed_abundances
from revelo.model._regimes import FULL, INDUCTION, REPRESSION, cell_order, regime_codes
from revelo.module import REGIMES

from ._common import environment, limit_threads, load_average, write_json
from .simulation import prepare, simulate

RESULTS = Path(__file__).parent / "results"
#: Developmental stage of each pancreas cluster (the four endocrine fates share the last).
STAGES = {
    "Ductal": 0,
    "Ngn3 low EP": 1,
    "Ngn3 high EP": 2,
    "Pre-endocrine": 3,
    "Alpha": 4,
    "Beta": 4,
    "Delta": 4,
    "Epsilon": 4,
}
KINDS = {"full": FULL, "induction": INDUCTION, "repression": REPRESSION}


def orders(adata, *, seed: int) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """The first fit's two orders of the cells, and the observed (u, s) in its units."""
    adata = adata.copy()
    revelo.settings.seed = seed
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, regimes="full", n_branches=4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(accelerator="cpu", enable_progress_bar=False)
        model.add_outputs(uncertainty=False)
    spliced, unspliced = observed_abundances(model, adata)
    found = {
        "latent time": adata.obs["latent_time"].to_numpy(),
        "velocity potential": cell_order(model, spliced=spliced),
    }
    return found, unspliced, spliced


def score(adata, found, unspliced, spliced) -> dict[str, dict]:
    """Spearman with the reference and the regimes read along each order."""
    pancreas = "clusters" in adata.obs and "true_t" not in adata.obs
    if pancreas:
        labels = adata.obs["clusters"].astype(str).to_numpy()
        reference = np.array([STAGES[label] for label in labels], dtype=float)
        clusters = sorted(set(labels))
        means = np.stack([np.asarray(adata.layers["Ms"])[labels == c].mean(0) for c in clusters])
        peak_high = np.array(clusters)[means.argmax(0)] == "Ngn3 high EP"
    else:
        reference = adata.obs["true_t"].to_numpy()
        kind = adata.var["true_kind"].astype(str).to_numpy()
    out = {}
    for name, time in found.items():
        codes = regime_codes(unspliced, spliced, time)
        entry = {
            "spearman": float(spearmanr(time, reference)[0]),
            "regimes": {REGIMES[c]: int((codes == c).sum()) for c in range(len(REGIMES))},
        }
        if pancreas:
            entry["genes_peaking_in_ngn3_high"] = int(peak_high.sum())
            entry["of_them_repression_only"] = int((codes[peak_high] == REPRESSION).sum())
        else:
            entry["true_kind_found"] = {
                k: f"{int((codes[kind == k] == c).sum())}/{int((kind == k).sum())}"
                for k, c in KINDS.items()
            }
        out[name] = entry
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default=str(RESULTS / "regime_order.json"))
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    simulated = argparse.Namespace(min_shared_counts=20, n_pcs=30, n_neighbors=30)
    data = {
        "pancreas_739": revelo.pp.preprocess(
            revelo.datasets.pancreas(subset="739"), n_top_genes=2000
        )
    }
    runs = []
    for seed in args.seeds:
        data[f"partial seed {seed}"] = prepare(simulate("partial", 1000, 100, seed), simulated)
    for name, adata in data.items():
        seeds = args.seeds if name == "pancreas_739" else [int(name.rsplit(" ", 1)[1])]
        for seed in seeds:
            load = load_average()
            found, unspliced, spliced = orders(adata, seed=seed)
            result = score(adata, found, unspliced, spliced)
            runs.append({"data": name, "seed": seed, "load_average_before": load, **result})
            for order, entry in result.items():
                extra = {k: v for k, v in entry.items() if k not in ("spearman", "regimes")}
                print(
                    f"{name:<16} seed {seed}  {order:<19} ρ {entry['spearman']:6.3f}  "
                    f"{entry['regimes']}  {extra}",
                    flush=True,
                )
    payload = {"environment": environment(), "runs": runs}
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
