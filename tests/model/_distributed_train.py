"""Train REVELO on a small simulation and save its results (run by ``test_distributed.py``).

Usage: ``python _distributed_train.py {single,ddp} OUT.npz EPOCHS``. With ``ddp`` lightning runs
this script once more as the second process; every process trains and queries, and the first
saves. Both settings take the same number of steps on the same effective batch: the single
process uses a batch of 2 × ``_BATCH``, each of the two DDP processes ``_BATCH`` (DDP averages
their gradients).
"""

from __future__ import annotations

import sys

import numpy as np
import torch

import revelo

_BATCH = 64


def main(mode: str, out: str, max_epochs: int) -> None:
    torch.set_num_threads(1)
    revelo.settings.seed = 0
    raw = revelo.datasets.simulate(n_obs=500, n_vars=30, seed=0, noise="normal")
    adata = revelo.pp.preprocess(
        raw, n_top_genes=None, min_shared_counts=10, normalize=False, compute_umap=False
    )
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=64)
    if mode == "ddp":
        options = {"devices": 2, "strategy": "ddp", "batch_size": _BATCH}
    else:
        options = {"devices": 1, "batch_size": 2 * _BATCH}
    model.train(
        max_epochs=max_epochs,
        accelerator="cpu",
        early_stopping=False,
        enable_progress_bar=False,
        **options,
    )
    velocity = model.get_velocity(n_samples=10)
    if model.trainer.is_global_zero:
        np.savez(
            out,
            velocity=velocity.to_numpy(),
            true_velocity=adata.layers["true_velocity"],
            gamma=model.get_rates()["gamma"].to_numpy(),
            regime=model.module.regime.cpu().numpy(),
            true_gamma=adata.var["true_gamma"].to_numpy(),
            world_size=model.trainer.world_size,
            n_epochs=len(model.history["elbo_train"]),
        )


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
