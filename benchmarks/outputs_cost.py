"""What ``add_outputs`` costs on the pancreas data, part by part, against an epoch of training.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.outputs_cost --epochs 10

The model trains ``--epochs`` epochs (the outputs' cost does not depend on how well it fits);
then ``add_outputs`` is timed with ``uncertainty=False``, with its defaults (directional
uncertainty) and with ``extrinsic_uncertainty=True``, and ``revelo.tl.velocity_graph`` once.
"""

from __future__ import annotations

import argparse
import subprocess
import time
import warnings


def main() -> None:
    """Time the variants and print one line each with the machine load."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    import revelo

    revelo.settings.verbosity = "warning"
    adata = revelo.pp.preprocess(revelo.datasets.pancreas())
    revelo.settings.seed = 0
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata)
    start = time.perf_counter()
    model.train(max_epochs=args.epochs, early_stopping=False, enable_progress_bar=False)
    epoch = (time.perf_counter() - start) / args.epochs
    print(f"threads {revelo.settings.n_jobs}; training {epoch:.2f} s per epoch")
    variants = {
        "add_outputs(uncertainty=False)": {"uncertainty": False},
        "add_outputs()": {},
        "add_outputs(extrinsic_uncertainty=True)": {"extrinsic_uncertainty": True},
    }
    for name, kwargs in variants.items():
        start = time.perf_counter()
        model.add_outputs(**kwargs)
        seconds = time.perf_counter() - start
        load = subprocess.run(["uptime"], capture_output=True, text=True).stdout
        average = load.split("average:")[-1].strip()
        print(f"{name:42s} {seconds:6.1f} s = {seconds / epoch:5.1f} epochs; load {average}")
    start = time.perf_counter()
    revelo.tl.velocity_graph(adata)
    print(f"{'revelo.tl.velocity_graph':42s} {time.perf_counter() - start:6.1f} s")


if __name__ == "__main__":
    main()
