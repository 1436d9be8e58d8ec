"""CellRank 2 fate mapping on each method's pancreas velocities, on the same cells and graph.

Run from the repository root, one thread::

    python -m benchmarks.fates --seeds 0 1 2

Every method runs its own documented pipeline from the raw counts
(:mod:`benchmarks.own_pipeline`: revelo, VeloVI, scVelo's dynamical, stochastic and
deterministic models) and its velocities are put on the shared scanpy UMAP and neighbour graph
(:func:`~benchmarks.own_pipeline.shared_embedding`), with the method's own ``Ms`` and velocity
genes. CellRank then runs the same way for all, as in ``tutorials/cellrank_fates.ipynb``: a
``VelocityKernel`` (0.8) plus a ``ConnectivityKernel`` (0.2), ``GPCCA.fit(n_states=[4, 12],
cluster_key="clusters", method="brandts")`` (the upper bound 13 or 11 where 12 would split a
complex conjugate pair of eigenvalues, as CellRank's error asks), ``predict_terminal_states()``
and ``predict_initial_states(allow_overlap=True)``.

The table lists the clusters of the terminal and initial states (CellRank names a macrostate by
its main cluster, with ``_1``, ``_2`` where a cluster holds several) and whether the fate target
of the compatibility issue holds: terminal states include Alpha and Beta and at least one of
Delta and Epsilon, none is Ductal or Ngn3 low EP, and an initial state lies in Ductal or Ngn3
low EP. Results: ``benchmarks/results/fates.json``.
"""

from __future__ import annotations

import argparse
import inspect
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ._common import environment, limit_threads, write_json
from .run import _json_object

OUT = Path(__file__).parent / "results" / "fates.json"
METHODS = ("revelo", "velovi", "scvelo_dynamical", "scvelo_stochastic", "scvelo_deterministic")
#: Methods without a seed: run once.
DETERMINISTIC = ("scvelo_dynamical", "scvelo_stochastic", "scvelo_deterministic")
ROOTS = ("Ductal", "Ngn3 low EP")
ENDOCRINE_MINOR = ("Delta", "Epsilon")


def _cellrank():
    """Import CellRank, letting 2.0.7 call ``assert_array_equal(x=..., y=...)`` on NumPy ≥ 2.3."""
    assert_array_equal = np.testing.assert_array_equal
    if "x" not in inspect.signature(assert_array_equal).parameters:

        def assert_array_equal_xy(*args, x=None, y=None, **kwargs):
            return assert_array_equal(*((x, y) if x is not None else args), **kwargs)

        np.testing.assert_array_equal = assert_array_equal_xy
    import cellrank as cr

    return cr


def _clusters(names) -> list[str]:
    """Cluster names of CellRank's states: ``"Ductal_2"`` -> ``"Ductal"``."""
    return sorted({re.sub(r"_\d+$", "", str(name)) for name in names})


def target_met(terminal: list[str], initial: list[str]) -> bool:
    """The fate target: Alpha, Beta, Delta or Epsilon terminal, no root terminal, a root start."""
    return (
        {"Alpha", "Beta"} <= set(terminal)
        and bool(set(ENDOCRINE_MINOR) & set(terminal))
        and not set(ROOTS) & set(terminal)
        and bool(set(ROOTS) & set(initial))
    )


def fate_states(adata, velocity: np.ndarray, genes: np.ndarray) -> dict[str, Any]:
    """CellRank's macrostates, terminal and initial states from one method's velocities."""
    from functools import partial
    from unittest import mock

    import tqdm

    cr = _cellrank()
    adata = adata.copy()
    adata.X = adata.layers["Ms"]  # CellRank reads X's dtype; the scoring data have no X
    adata.layers["velocity"] = velocity
    adata.var["velocity_genes"] = genes & np.isfinite(velocity).all(0)
    # CellRank 2.0.7 shows a progress bar while it estimates the softmax scale.
    with mock.patch("tqdm.auto.tqdm", partial(tqdm.std.tqdm, disable=True)):
        velocity_kernel = cr.kernels.VelocityKernel(
            adata, xkey="Ms", vkey="velocity", gene_subset=adata.var["velocity_genes"]
        ).compute_transition_matrix(n_jobs=1, show_progress_bar=False)
    connectivity_kernel = cr.kernels.ConnectivityKernel(adata).compute_transition_matrix()
    estimator = cr.estimators.GPCCA(0.8 * velocity_kernel + 0.2 * connectivity_kernel)
    # As CellRank's error asks, where 12 states would split a complex conjugate pair of
    # eigenvalues the upper bound becomes 13, then 11.
    for upper in (12, 13, 11):
        try:
            estimator.fit(n_states=[4, upper], cluster_key="clusters", method="brandts")
            break
        except ValueError as error:
            if "complex conjugate" not in str(error) or upper == 11:
                raise
    estimator.predict_terminal_states()
    estimator.predict_initial_states(allow_overlap=True)
    names = {
        "n_states_upper": upper,
        "macrostates": [str(name) for name in estimator.macrostates.cat.categories],
        "terminal_states": [str(name) for name in estimator.terminal_states.cat.categories],
        "initial_states": [str(name) for name in estimator.initial_states.cat.categories],
    }
    terminal = _clusters(names["terminal_states"])
    initial = _clusters(names["initial_states"])
    return {
        **names,
        "terminal_clusters": terminal,
        "initial_clusters": initial,
        "target_met": target_met(terminal, initial),
    }


def run_one(
    raw, shared, method: str, seed: int, revelo_model: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One method's own pipeline, its velocities on the shared graph, and CellRank's states."""
    from .own_pipeline import run_own, scoring_data

    adata, result, _ = run_own(raw, method, seed=seed, revelo_model=revelo_model)
    scored, result = scoring_data(shared, adata, result)
    scored.obs["clusters"] = scored.obs["clusters"].astype("category")
    row = {"method": method, "seed": None if method in DETERMINISTIC else seed}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            row |= fate_states(scored, result.velocity, result.velocity_genes)
    except Exception as error:  # a failed fit is a result, reported as such
        row["error"] = f"{type(error).__name__}: {error}"
        row["target_met"] = False
    return row


def _table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | seed | terminal states | initial states | target met |",
        "|---|---|---|---|---|",
    ]
    for row in rows:
        terminal = ", ".join(row.get("terminal_states", [])) or row.get("error", "–")
        initial = ", ".join(row.get("initial_states", [])) or "–"
        seed = "–" if row["seed"] is None else str(row["seed"])
        met = "yes" if row["target_met"] else "no"
        lines.append(f"| {row['method']} | {seed} | {terminal} | {initial} | {met} |")
    return "\n".join(lines)


def main() -> None:
    """Run every method (and seed) and write the table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--revelo-model",
        type=_json_object,
        default=None,
        metavar="JSON",
        help='keyword arguments for REVELO(...), e.g. \'{"regimes": "auto"}\', for a variant',
    )
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    threads = limit_threads(args.threads)

    import revelo

    from .own_pipeline import shared_embedding

    revelo.settings.verbosity = "warning"
    raw = revelo.datasets.pancreas()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        shared = shared_embedding(raw)
    env = environment()
    env["threads"] = threads
    rows: list[dict[str, Any]] = []
    for method in args.methods:
        for seed in args.seeds[:1] if method in DETERMINISTIC else args.seeds:
            rows.append(run_one(raw, shared, method, seed, args.revelo_model))
            print(_table(rows[-1:]).splitlines()[-1], flush=True)
            write_json(args.out, {"environment": env, "options": vars(args), "rows": rows})
    print(_table(rows))


if __name__ == "__main__":
    main()
