"""Where revelo's velocity sign errors fall on its own simulator, relative to each gene's switch.

Run from the repository root::

    python -m benchmarks.sign_errors --seed 0
    python -m benchmarks.sign_errors --seed 0 --state-prior-margin 0   # anchor every cell

Simulates ``revelo.datasets.simulate(n_obs=1000, n_vars=100, noise="normal")``, preprocesses it
as ``benchmarks.simulation`` does, trains REVELO with its defaults and prints, per window of
``true_t - true_t_switch``: sign agreement, the share of all sign errors, and the hard state
assignments; then the fitted steady-state line ``scaling · γ/β`` over the true one in the units
of ``Ms``/``Mu``, and the same for the line through the extreme cells that the state anchoring
uses (median and quartiles over genes). Writes ``benchmarks/results/sign_errors.json``.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

import revelo
from revelo._constants import STATE_NAMES

from ._common import environment, limit_threads, write_json

WINDOWS = ((-np.inf, -6), (-6, -2), (-2, 0), (0, 2), (2, 6), (6, np.inf))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--state-prior-margin",
        type=float,
        default=None,
        help="REVELO's state_prior_margin (default: the model's own); 0 anchors every cell",
    )
    parser.add_argument(
        "--out", default=str(Path(__file__).parent / "results" / "sign_errors.json")
    )
    args = parser.parse_args(argv)
    limit_threads(args.threads)

    raw = revelo.datasets.simulate(n_obs=1000, n_vars=100, seed=args.seed, noise="normal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adata = revelo.pp.preprocess(
            raw, normalize=False, n_top_genes=None, min_shared_counts=20, compute_umap=False
        )
    revelo.settings.seed = args.seed
    revelo.REVELO.setup_anndata(adata)
    margin = args.state_prior_margin
    model = revelo.REVELO(adata, **({} if margin is None else {"state_prior_margin": margin}))
    model.train(accelerator="cpu", enable_progress_bar=False)
    velocity = model.get_velocity(return_numpy=True)
    states = model.get_state_assignment()[0].argmax(-1)

    truth = np.asarray(adata.layers["true_velocity"])
    signed = np.abs(truth) > 1e-8
    wrong = signed & (np.sign(velocity) != np.sign(truth))
    relative = adata.obs["true_t"].to_numpy()[:, None] - adata.var["true_t_switch"].to_numpy()
    rows = []
    for low, high in WINDOWS:
        window = (relative >= low) & (relative < high) & signed
        fractions = np.bincount(states[window], minlength=len(STATE_NAMES)) / window.sum()
        rows.append(
            {
                "window": [low, high],
                "entries": int(window.sum()),
                "sign_agreement": float(1 - wrong[window].mean()),
                "share_of_errors": float(wrong[window].sum() / wrong.sum()),
                "states": dict(zip(STATE_NAMES, fractions.tolist())),
            }
        )
    rates = model.get_rates()
    fitted = (rates["scaling"] * rates["gamma"] / rates["beta"]).to_numpy()
    var = adata.var
    true = (var["true_gamma"] / var["true_beta"] * var["Ms_scale"] / var["Mu_scale"]).to_numpy()
    line = np.percentile(fitted / true, [25, 50, 75])
    # The line the state anchoring uses: fitted by preprocess through the extreme cells of Ms/Mu.
    data_ratio = adata.var["velocity_gamma"].to_numpy()
    data_line = np.percentile(data_ratio / true, [25, 50, 75])

    print(f"sign agreement {1 - wrong.sum() / signed.sum():.3f}")
    print("t - t_switch   entries  sign   share of errors  induction  repression")
    for row in rows:
        low, high = row["window"]
        print(
            f"[{low:>4}, {high:>4})  {row['entries']:>7}  {row['sign_agreement']:.3f}  "
            f"{row['share_of_errors']:>15.2f}  {row['states']['induction']:>9.2f}  "
            f"{row['states']['repression']:>10.2f}"
        )
    for name, quartiles in (("fitted", line), ("extreme-cell", data_line)):
        print(
            f"{name} / true steady-state line: median {quartiles[1]:.3f} "
            f"(IQR {quartiles[0]:.3f}-{quartiles[2]:.3f})"
        )
    payload = {
        "benchmark": "sign_errors",
        "seed": args.seed,
        "state_prior_margin": args.state_prior_margin,
        "windows": rows,
        "line_ratio_quartiles": line.tolist(),
        "data_line_ratio_quartiles": data_line.tolist(),
        "environment": environment(),
    }
    write_json(args.out, payload)
    return payload


if __name__ == "__main__":
    main()
