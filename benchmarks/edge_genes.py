"""Which genes make revelo's velocity point away from a known transition, and why.

Run from the repository root::

    python -m benchmarks.edge_genes --dataset pancreas --seed 0 --figure-edge Pre-endocrine Delta

Trains REVELO with its defaults on the cached data set of ``benchmarks.run`` and splits each
edge's gene-space CBDir (:func:`revelo.tl.cross_boundary_correctness` with ``basis=None``) into
per-gene terms: for a boundary pair ``(i, j)`` the cosine ``v_i · d_ij / (|v_i| |d_ij|)`` is a sum
over genes of ``v_ig d_ijg / (|v_i| |d_ij|)``, and the terms are averaged like the score (over
each cell's pairs, then over cells), so they add up to it exactly (checked). For the genes that
pull each edge down the most, it prints the mean fitted time, velocity and most frequent
kinetic state of the boundary cells of the source cluster, and of the target cluster's cells.
For the UMAP arrows it also prints where the boundary cells' transition probabilities (those
:func:`revelo.tl.velocity_embedding` averages the displacements with) go, by cluster, next to
each cluster's share of the transitions' support: a cluster that the velocities favour gets
more mass than support. A figure shows the velocity stream on the UMAP and the phase portraits
of the worst genes of the weakest edge (or of ``--figure-edge SOURCE TARGET``). Writes
``benchmarks/results/edge_genes_<dataset>.json`` and ``.png``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
from scipy import sparse

import revelo

from ._common import environment, limit_threads, write_json
from .run import CLUSTER_KEY, DATASETS, preprocessed, present_edges

RESULTS = Path(__file__).parent / "results"


def gene_terms(
    adata: ad.AnnData, labels: np.ndarray, source: str, target: str
) -> tuple[np.ndarray, np.ndarray]:
    """Per-gene terms of one edge's gene-space CBDir, and the boundary cells of ``source``.

    Uses the score's own neighbour pairs and velocity genes; genes outside those get 0.
    """
    velocity = np.asarray(adata.layers["velocity"], dtype=np.float64)
    genes = adata.var["velocity_genes"].to_numpy(dtype=bool) & ~np.isnan(velocity).any(axis=0)
    velocity = velocity[:, genes]
    position = np.asarray(adata.layers["Ms"], dtype=np.float64)[:, genes]
    # the kNN graph's edges without self-loops, as the score takes them
    graph = sparse.coo_matrix(adata.obsp["connectivities"])
    edge = (graph.row != graph.col) & (graph.data != 0)
    rows, cols = graph.row[edge], graph.col[edge]
    boundary = (labels[rows] == source) & (labels[cols] == target)
    rows, cols = rows[boundary], cols[boundary]
    displacement = position[cols] - position[rows]
    norm = np.linalg.norm(velocity[rows], axis=1) * np.linalg.norm(displacement, axis=1)
    terms = velocity[rows] * displacement / np.where(norm > 0, norm, np.inf)[:, None]
    cells, inverse, counts = np.unique(rows, return_inverse=True, return_counts=True)
    per_cell = np.zeros((len(cells), velocity.shape[1]))
    np.add.at(per_cell, inverse, terms)
    out = np.zeros(adata.n_vars)
    out[genes] = (per_cell / counts[:, None]).mean(axis=0)
    return out, cells


def transition_mass(
    transitions, labels: np.ndarray, cells: np.ndarray
) -> dict[str, dict[str, float]]:
    """Mean transition mass from ``cells`` to each cluster, and the cluster's share of support.

    ``transitions`` are the row-normalised weights of the UMAP projection (negative for
    neighbours the velocity points away from), so a row's masses add up to at most 1.
    """
    rows = transitions[cells]
    support = (rows != 0).astype(np.float64)
    out = {}
    for cluster in np.unique(labels):
        members = labels == cluster
        out[str(cluster)] = {
            "mass": float(rows[:, members].sum() / len(cells)),
            "support": float(support[:, members].sum() / support.sum()),
        }
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=DATASETS[:2], default="pancreas")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--top", type=int, default=5, help="genes listed per edge")
    parser.add_argument(
        "--figure-edge",
        nargs=2,
        metavar=("SOURCE", "TARGET"),
        default=None,
        help="edge whose worst genes are drawn; default: the lowest gene-space CBDir",
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cache-dir", default="benchmarks/cache")
    parser.add_argument("--out", default=None, help="JSON path; the PNG goes beside it")
    args = parser.parse_args(argv)
    limit_threads(args.threads)
    out = Path(args.out) if args.out else RESULTS / f"edge_genes_{args.dataset}.json"

    path, _ = preprocessed(args.dataset, Path(args.cache_dir))
    adata = ad.read_h5ad(path)
    edges = present_edges(adata, args.dataset)
    revelo.settings.seed = args.seed
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.train(accelerator="cpu", enable_progress_bar=False)
        model.add_outputs(adata)
        states = model.get_state_assignment(hard_assignment=True)[0].to_numpy()
        scores = revelo.tl.cross_boundary_correctness(
            adata, cluster_key=CLUSTER_KEY, edges=edges
        ).scores
        revelo.tl.velocity_graph(adata, device="cpu")
        revelo.tl.velocity_embedding(adata, basis="umap")
        umap_scores = revelo.tl.cross_boundary_correctness(
            adata, cluster_key=CLUSTER_KEY, edges=edges, basis="umap"
        ).scores
    transitions = revelo.tl.transition_matrix(adata, scale=10.0)

    labels = adata.obs[CLUSTER_KEY].astype(str).to_numpy()
    velocity = np.asarray(adata.layers["velocity"], dtype=np.float64)
    fit_t = np.asarray(adata.layers["fit_t"])
    genes = adata.var_names.to_numpy()
    report = []
    for source, target in edges:
        terms, cells = gene_terms(adata, labels, source, target)
        total = float(terms.sum())
        if not np.isclose(total, scores[source, target], atol=1e-8):
            msg = f"gene terms add up to {total}, CBDir is {scores[source, target]}"
            raise AssertionError(msg)
        in_target = np.flatnonzero(labels == target)
        worst = np.argsort(terms)[: args.top]
        rows = []
        for g in worst:
            row = {"gene": str(genes[g]), "term": float(terms[g])}
            for name, index in (("source", cells), ("target", in_target)):
                values, counts = np.unique(states[index, g], return_counts=True)
                row[name] = {
                    "time": float(fit_t[index, g].mean()),
                    "velocity": float(velocity[index, g].mean()),
                    "state": str(values[counts.argmax()]),
                    "state_share": float(counts.max() / counts.sum()),
                }
            rows.append(row)
        negative = float(terms[terms < 0].sum())
        mass = transition_mass(transitions, labels, cells)
        report.append(
            {
                "edge": [source, target],
                "cbdir_gene": total,
                "cbdir_umap": float(umap_scores[source, target]),
                "boundary_cells": len(cells),
                "negative_terms": negative,
                "positive_terms": float(terms[terms > 0].sum()),
                "worst_genes": rows,
                "transition_mass": mass,
            }
        )
        print(
            f"\n{source} → {target}: CBDir {total:.3f} over {len(cells)} boundary cells "
            f"(positive terms {total - negative:.3f}, negative {negative:.3f})"
        )
        print(
            f"  {'gene':<10} {'term':>7}   boundary cells: t, v, state   |   target: t, v, state"
        )
        for row in rows:
            src, tgt = row["source"], row["target"]
            print(
                f"  {row['gene']:<10} {row['term']:>7.4f}   {src['time']:5.1f} "
                f"{src['velocity']:+.3f} {src['state']} ({src['state_share']:.0%})  |  "
                f"{tgt['time']:5.1f} "
                f"{tgt['velocity']:+.3f} {tgt['state']} ({tgt['state_share']:.0%})"
            )
        shown = sorted(mass, key=lambda name: -abs(mass[name]["mass"]))[:4]
        print(
            f"  UMAP CBDir {umap_scores[source, target]:.3f}; transition mass (support) "
            "of the boundary cells: "
            + ", ".join(
                f"{name} {mass[name]['mass']:.2f} ({mass[name]['support']:.2f})" for name in shown
            )
        )

    if args.figure_edge is None:
        weakest = min(report, key=lambda entry: entry["cbdir_gene"])
    else:
        chosen = [entry for entry in report if entry["edge"] == list(args.figure_edge)]
        if not chosen:
            parser.error(f"--figure-edge {args.figure_edge} is not one of {edges}")
        weakest = chosen[0]
    worst_genes = [row["gene"] for row in weakest["worst_genes"][:3]]
    fig, axes = plt.subplots(1, 4, figsize=(20, 4.5))
    revelo.pl.velocity_embedding_stream(
        adata, basis="umap", color=CLUSTER_KEY, ax=axes[0], show=False, legend_loc="on data"
    )
    axes[0].set_title("revelo velocity stream")
    revelo.pl.phase_portrait(
        adata, worst_genes, color=CLUSTER_KEY, ax=list(axes[1:]), show=False, legend_loc=None
    )
    fig.suptitle(
        f"{weakest['edge'][0]} → {weakest['edge'][1]}: genes that pull CBDir down the most"
    )
    figure = out.with_suffix(".png")
    figure.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(figure, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"\nwrote {figure}")

    payload = {
        "benchmark": "edge_genes",
        "dataset": args.dataset,
        "seed": args.seed,
        "cache": str(path),
        "edges": report,
        "figure": str(figure),
        "environment": environment(),
    }
    write_json(out, payload)
    print(f"wrote {out}")
    return payload


if __name__ == "__main__":
    main()
