"""Wall time of every stage on the pancreas data: revelo, VeloVI and scVelo in one run.

Run from the repository root, nothing else busy if possible::

    OMP_NUM_THREADS=1 python -m benchmarks.pancreas_speed

Stages, each timed on its own, in this order (one process, one thread):

- ``scvelo_preprocess``: ``scv.pp.filter_and_normalize(min_shared_counts=20)`` (the data
  hold 2,000 genes) and ``scv.pp.moments(n_pcs=30, n_neighbors=30)`` — the preprocessing of
  scVelo and of the VeloVI tutorial; ``scanpy_umap``: ``sc.tl.umap`` on that graph;
- ``revelo_preprocess``: ``revelo.pp.preprocess`` with its defaults (UMAP included, as the
  data come without one), split by ``revelo.pp.preprocess``'s own steps in the JSON;
- ``revelo_train`` (defaults: early stopping, at most ``400 000 / n_cells`` epochs),
  ``revelo_outputs`` (``add_outputs`` with its defaults), ``revelo_graph``
  (``revelo.tl.velocity_graph``);
- ``velovi_setup`` (VeloVI's ``preprocess_data``,
  :func:`benchmarks.own_pipeline.velovi_preprocess`: min-max scaling of ``Ms``/``Mu``, then
  the velocity genes of scVelo's deterministic fit with r² > 0 and γ > 0), ``velovi_train``
  (defaults: at most 500 epochs, early stopping), ``velovi_velocity``
  (``get_velocity(n_samples=25)``), ``velovi_graph`` (``scv.tl.velocity_graph``);
- ``scvelo_stochastic``: ``scv.tl.velocity(mode="stochastic")`` and
  ``scv.tl.velocity_graph``.

End to end, revelo = preprocess + train + outputs + graph; VeloVI = scVelo preprocessing +
setup + train + velocity + graph. The machine load (``uptime``) is recorded before and after
every stage, with its memory (``benchmarks._common.Stages``). Results: a table on stdout and
``benchmarks/results/pancreas_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path

from ._common import Stages

OUT = Path(__file__).parent / "results" / "pancreas_speed.json"


def main() -> None:
    """Run every stage once and write the table."""
    # No options; ``--help`` describes the run instead of starting it.
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    warnings.filterwarnings("ignore")
    import scanpy as sc
    import scvelo as scv
    import scvi
    import torch

    import revelo

    from .own_pipeline import velovi_preprocess

    revelo.settings.verbosity = "warning"
    scv.settings.verbosity = 0
    raw = revelo.datasets.pancreas()
    stages = Stages(revelo.settings.n_jobs)

    # scVelo's preprocessing (shared by VeloVI and scVelo's stochastic model) and scanpy's UMAP.
    theirs = raw.copy()
    stages.run(
        "scvelo_preprocess",
        lambda: (
            scv.pp.filter_and_normalize(theirs, min_shared_counts=20),
            scv.pp.moments(theirs, n_pcs=30, n_neighbors=30),
        ),
    )
    stages.run("scanpy_umap", sc.tl.umap, theirs)

    adata = stages.run("revelo_preprocess", revelo.pp.preprocess, raw)
    revelo.settings.seed = 0
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata)
    stages.run("revelo_train", model.train, enable_progress_bar=False)
    revelo_epochs = len(model.history["elbo_train"])
    stages.run("revelo_outputs", model.add_outputs)
    stages.run("revelo_graph", revelo.tl.velocity_graph, adata)

    velovi = stages.run("velovi_setup", velovi_preprocess, theirs)
    scvi.settings.seed = 0
    scvi.external.VELOVI.setup_anndata(velovi, spliced_layer="Ms", unspliced_layer="Mu")
    vmodel = scvi.external.VELOVI(velovi)
    stages.run("velovi_train", vmodel.train, accelerator="cpu", enable_progress_bar=False)
    velovi_epochs = len(vmodel.history["elbo_train"])

    def velovi_velocity():
        velovi.layers["velocity"] = vmodel.get_velocity(n_samples=25, velo_statistic="mean")

    stages.run("velovi_velocity", velovi_velocity)
    stages.run("velovi_graph", scv.tl.velocity_graph, velovi)

    stochastic = theirs.copy()
    stages.run(
        "scvelo_stochastic",
        lambda: (
            scv.tl.velocity(stochastic, mode="stochastic"),
            scv.tl.velocity_graph(stochastic),
        ),
    )

    s = {name: row["seconds"] for name, row in stages.rows.items()}
    revelo_total = sum(s[k] for k in ("revelo_preprocess", "revelo_train", "revelo_outputs"))
    revelo_total += s["revelo_graph"]
    velovi_total = s["scvelo_preprocess"] + sum(
        s[k] for k in ("velovi_setup", "velovi_train", "velovi_velocity", "velovi_graph")
    )
    summary = {
        "revelo_genes": adata.n_vars,
        "revelo_preprocess_steps": adata.uns["revelo_preprocess"]["step_seconds"],
        "velovi_genes": velovi.n_vars,
        "revelo_epochs": revelo_epochs,
        "velovi_epochs": velovi_epochs,
        "train_ratio": s["revelo_train"] / s["velovi_train"],
        "end_to_end_ratio": revelo_total / velovi_total,
        "revelo_end_to_end": revelo_total,
        "velovi_end_to_end": velovi_total,
        "outputs_share_of_training": s["revelo_outputs"] / s["revelo_train"],
        "preprocess_ratio": s["revelo_preprocess"] / (s["scvelo_preprocess"] + s["scanpy_umap"]),
        "threads": revelo.settings.n_jobs,
        "torch_threads": torch.get_num_threads(),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "cpus": os.cpu_count(),
    }
    for key, value in summary.items():
        if isinstance(value, dict):
            value = ", ".join(f"{step} {seconds:.1f}" for step, seconds in value.items())
        print(f"{key:28s} {value:.3f}" if isinstance(value, float) else f"{key:28s} {value}")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"stages": stages.rows, "summary": summary}, indent=1))


if __name__ == "__main__":
    main()
