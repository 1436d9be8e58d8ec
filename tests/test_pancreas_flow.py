"""On real pancreas data the projected velocity of Ngn3 high EP cells points to Pre-endocrine."""

from __future__ import annotations

import numpy as np
import pytest

import revelo


@pytest.fixture(scope="module")
def pancreas():
    """739 pancreas cells with the default preprocessing (skipped when the file is absent)."""
    if not (revelo.settings.data_dir / "pancreas_739.h5ad").is_file():
        pytest.skip(f"pancreas_739.h5ad is not in {revelo.settings.data_dir} (REVELO_DATA_DIR)")
    return revelo.pp.preprocess(revelo.datasets.pancreas(subset="739"), n_top_genes=2000)


def fit_and_project(adata, **train_kwargs):
    """Train REVELO on a copy, add its outputs and project the velocities onto the UMAP."""
    import torch

    torch.set_num_threads(1)
    revelo.settings.seed = 0
    adata = adata.copy()
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata)
    model.train(enable_progress_bar=False, **train_kwargs)
    model.add_outputs(uncertainty=False)
    revelo.tl.velocity_graph(adata, device="cpu")
    revelo.tl.velocity_embedding(adata, basis="umap")
    return adata


def flow_cosine(adata, source: str, target: str) -> float:
    """Cosine of the mean UMAP velocity of ``source`` and the step to ``target``'s centroid."""
    labels = adata.obs["clusters"].to_numpy()
    coords = adata.obsm["X_umap"]
    step = coords[labels == target].mean(0) - coords[labels == source].mean(0)
    mean = adata.obsm["velocity_umap"][labels == source].mean(0)
    return float(mean @ step / (np.linalg.norm(mean) * np.linalg.norm(step)))


def test_ngn3_high_flows_to_pre_endocrine_short_training(pancreas):
    adata = fit_and_project(pancreas, max_epochs=40)
    assert flow_cosine(adata, "Ngn3 high EP", "Pre-endocrine") > 0


@pytest.mark.slow
def test_endocrine_flow_default_training(pancreas):
    adata = fit_and_project(pancreas)
    assert flow_cosine(adata, "Ngn3 high EP", "Pre-endocrine") > 0
    assert flow_cosine(adata, "Ngn3 low EP", "Ngn3 high EP") > 0
    assert flow_cosine(adata, "Pre-endocrine", "Beta") > 0
