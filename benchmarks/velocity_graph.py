"""Time revelo's velocity graph against scVelo's on the same simulated 10,000-cell data set.

Run from the repository root::

    OMP_NUM_THREADS=1 python benchmarks/velocity_graph.py

Both implementations run in the same process on one thread (scVelo with ``n_jobs=1``); the
table is printed and saved to ``benchmarks/results/velocity_graph.json``.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import platform
import time
import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import torch
from scipy import sparse
from sklearn.neighbors import NearestNeighbors

import revelo


def simulate(n_obs: int, n_vars: int, n_neighbors: int, seed: int = 0) -> ad.AnnData:
    """Cells on a noisy 2-d manifold in gene space, velocities along it, and a kNN graph.

    Like real data, the cells fill a low-dimensional manifold (a curved sheet: progression
    ``s`` times a second, cell-type-like coordinate ``w``), so kNN neighbourhoods are local.
    """
    rng = np.random.default_rng(seed)
    progress, width = rng.uniform(0, 1, n_obs), rng.uniform(0, 1, n_obs)
    freq = rng.uniform(0.5, 3.0, (2, 10))
    phase = rng.uniform(0, 2 * np.pi, 10)
    arg = progress[:, None] * freq[0] + width[:, None] * freq[1] + phase
    latent = np.sin(arg) + rng.normal(0, 0.02, (n_obs, 10))
    latent_velocity = np.cos(arg) * freq[0]
    loadings = rng.normal(size=(10, n_vars)) / np.sqrt(10)
    rate = np.exp(latent @ loadings)
    states = np.log1p(rate) + rng.gamma(1.0, 0.05, (n_obs, n_vars))
    velocity = (latent_velocity @ loadings) * rate / (1 + rate)
    velocity += rng.normal(0, 0.2, (n_obs, n_vars))
    velocity[:, rng.choice(n_vars, n_vars // 10, replace=False)] = np.nan
    adata = ad.AnnData(states.astype(np.float32))
    adata.layers["Ms"] = states.astype(np.float32)
    adata.layers["velocity"] = velocity.astype(np.float32)
    adata.var["velocity_genes"] = rng.uniform(size=n_vars) < 0.6

    # the point itself is its first neighbour; scanpy stores the others only
    dist, idx = NearestNeighbors(n_neighbors=n_neighbors).fit(latent).kneighbors(latent)
    rows = np.repeat(np.arange(n_obs), n_neighbors - 1)
    distances = sparse.csr_matrix(
        (dist[:, 1:].ravel(), (rows, idx[:, 1:].ravel())), shape=(n_obs, n_obs)
    )
    adata.obsp["distances"] = distances
    adata.obsp["connectivities"] = (distances > 0).astype(np.float32)
    adata.uns["neighbors"] = {
        "params": {"n_neighbors": n_neighbors, "method": "umap"},
        "distances_key": "distances",
        "connectivities_key": "connectivities",
    }
    return adata


def best_of(fn, repeats: int) -> float:
    """Shortest wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    """Run the benchmark and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-obs", type=int, default=10_000)
    parser.add_argument("--n-vars", type=int, default=2_000)
    parser.add_argument("--n-neighbors", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--output", type=Path, default=Path(__file__).parent / "results" / "velocity_graph.json"
    )
    args = parser.parse_args()

    torch.set_num_threads(1)
    import scvelo as scv

    scv.settings.verbosity = 0
    warnings.filterwarnings("ignore")

    adata = simulate(args.n_obs, args.n_vars, args.n_neighbors)
    ours, theirs = adata.copy(), adata.copy()
    revelo.tl.velocity_graph(ours, device=args.device)  # warm-up (allocator, kernels)
    t_revelo = best_of(lambda: revelo.tl.velocity_graph(ours, device=args.device), args.repeats)
    t_scvelo = best_of(
        lambda: scv.tl.velocity_graph(theirs, n_jobs=1, show_progress_bar=False), args.repeats
    )
    diff = max(
        abs(ours.uns[key] - theirs.uns[key]).max()
        for key in ("velocity_graph", "velocity_graph_neg")
    )
    result = {
        "n_obs": args.n_obs,
        "n_vars": args.n_vars,
        "n_velocity_genes": int(
            (adata.var["velocity_genes"] & ~np.isnan(adata.layers["velocity"].sum(0))).sum()
        ),
        "n_neighbors": args.n_neighbors,
        "graph_nnz": int(ours.uns["velocity_graph"].nnz + ours.uns["velocity_graph_neg"].nnz),
        "device": args.device,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "scvelo_n_jobs": 1,
        "revelo_seconds": t_revelo,
        "scvelo_seconds": t_scvelo,
        "speedup": t_scvelo / t_revelo,
        "max_abs_difference": float(diff),
        "versions": {
            "revelo": revelo.__version__ if hasattr(revelo, "__version__") else "dev",
            "scvelo": scv.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "machine": platform.machine(),
    }
    print(f"{'implementation':<16}{'seconds':>10}")
    print(f"{'revelo':<16}{t_revelo:>10.2f}")
    print(f"{'scvelo':<16}{t_scvelo:>10.2f}")
    print(f"speed-up {result['speedup']:.1f}x, max |difference| {diff:.2e}")
    print(f"threads: torch {result['torch_threads']}, OMP_NUM_THREADS {result['omp_num_threads']}")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
