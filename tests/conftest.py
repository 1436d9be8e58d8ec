"""Shared fixtures: a small simulation, preprocessed once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# CI machines have 2 cores; one torch thread avoids oversubscription with the data pipeline.
os.environ.setdefault("OMP_NUM_THREADS", "1")

# The real data sets of the development machine sit in ``shared/data`` next to the repository;
# revelo itself defaults to a per-user cache, so point it there before it is imported.
_SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
if _SHARED_DATA.is_dir():
    os.environ.setdefault("REVELO_DATA_DIR", str(_SHARED_DATA))

import revelo  # noqa: E402


@pytest.fixture(scope="session")
def simulated_raw():
    """Raw counts with ground truth: 500 cells x 40 genes on a time span of 10.

    With the default span of 20, genes sit long fully repressed, which no single gene can tell
    apart from not yet induced; a span of 10 keeps the kinetics in view.
    """
    return revelo.datasets.simulate(n_obs=500, n_vars=40, seed=0, noise="normal", t_max=10.0)


@pytest.fixture(scope="session")
def simulated(simulated_raw):
    """The simulation after revelo.pp.preprocess (all genes kept that pass the filters)."""
    return revelo.pp.preprocess(
        simulated_raw, n_top_genes=None, min_shared_counts=10, normalize=False
    )


@pytest.fixture(scope="session")
def trained(simulated):
    """A REVELO model trained briefly on the preprocessed simulation, with outputs added."""
    import torch

    torch.set_num_threads(1)
    revelo.settings.seed = 0
    adata = simulated.copy()
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=64)
    model.train(max_epochs=150, enable_progress_bar=False)
    return model
