"""Make the gallery figures of the pancreas data set (docs/gallery.md).

Run from the repository root::

    OMP_NUM_THREADS=1 python docs/scripts/pancreas_stream.py

With ``--adata PATH`` the fitted AnnData is written to PATH, or read from it when it exists,
so that the figures can be drawn again without training. It reads ``pancreas_3696.h5ad``
through :func:`revelo.datasets.pancreas` (from ``revelo.settings.data_dir``, i.e.
``REVELO_DATA_DIR`` or ``../shared/data``; the published
original is downloaded when neither is there), preprocesses it with the defaults, trains REVELO
with the defaults and writes three PNG files to ``docs/_static/``. It also prints, per expected
transition, the cosine between the clusters' mean projected velocity and the direction between
their UMAP centroids, so the figure can be checked against numbers.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import anndata
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import revelo

FLOW = [
    ("Ductal", "Ngn3 low EP"),
    ("Ngn3 low EP", "Ngn3 high EP"),
    ("Ngn3 high EP", "Pre-endocrine"),
    ("Pre-endocrine", "Alpha"),
    ("Pre-endocrine", "Beta"),
    ("Pre-endocrine", "Delta"),
    ("Pre-endocrine", "Epsilon"),
]
DRIVER_GENES = ["Pcsk2", "Cpe", "Gnao1", "Ins2", "Ghrl", "Sst"]
OUT = Path(__file__).resolve().parents[1] / "_static"


def centroid_cosines(adata, basis: str = "umap") -> dict[tuple[str, str], float]:
    """Cosine between each source cluster's mean projected velocity and the step to its target."""
    labels = adata.obs["clusters"].to_numpy()
    coords = adata.obsm[f"X_{basis}"]
    velocity = adata.obsm[f"velocity_{basis}"]
    cosines = {}
    for source, target in FLOW:
        step = coords[labels == target].mean(0) - coords[labels == source].mean(0)
        mean = velocity[labels == source].mean(0)
        cosines[source, target] = float(mean @ step / np.linalg.norm(mean) / np.linalg.norm(step))
    return cosines


def fit(seed: int) -> anndata.AnnData:
    """Preprocess, train and add the outputs, all with the defaults."""
    revelo.settings.seed = seed
    adata = revelo.pp.preprocess(revelo.datasets.pancreas())
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata)
    start = time.perf_counter()
    model.train()
    seconds = time.perf_counter() - start
    model.add_outputs()
    revelo.tl.velocity_graph(adata)
    revelo.tl.velocity_embedding(adata, basis="umap")
    epochs = len(model.history["elbo_train"])
    adata.uns["gallery_run"] = (
        f"{adata.n_obs} cells x {adata.n_vars} genes, {epochs} epochs in {seconds:.0f} s"
    )
    return adata


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help="folder for the PNG files")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--adata", type=Path, default=None, help="write the fitted AnnData here, or read it"
    )
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    if args.adata is not None and args.adata.is_file():
        adata = anndata.read_h5ad(args.adata)
    else:
        adata = fit(args.seed)
        if args.adata is not None:
            adata.write_h5ad(args.adata)
    print(adata.uns["gallery_run"])
    for (source, target), cosine in centroid_cosines(adata).items():
        print(f"  {source:>13} -> {target:<13} cosine {cosine:+.3f}")

    fig = revelo.pl.velocity_embedding_stream(
        adata,
        color="clusters",
        legend_loc="right margin",
        title="Pancreas: REVELO velocity",
        figsize=(7, 5.5),
        show=False,
        return_fig=True,
    )
    fig.savefig(args.out / "pancreas_stream.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    fig = revelo.pl.latent_time(adata, show=False, return_fig=True)
    fig.savefig(args.out / "pancreas_latent_time.png", dpi=110, bbox_inches="tight")
    plt.close(fig)

    genes = [gene for gene in DRIVER_GENES if gene in adata.var_names][:4]
    fig = revelo.pl.phase_portrait(adata, genes, color="clusters", show=False, return_fig=True)
    fig.savefig(args.out / "pancreas_phase.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"phase portraits of {', '.join(genes)}; figures written to {args.out}/")


if __name__ == "__main__":
    main()
