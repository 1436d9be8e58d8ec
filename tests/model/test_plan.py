"""The epoch-logged training plan gives scvi-tools' plan's history and weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scvi.train import TrainingPlan

import revelo
from revelo.model._plan import EpochLoggedTrainingPlan


@pytest.fixture(scope="module")
def adata():
    raw = revelo.datasets.simulate(n_obs=300, n_vars=12, seed=3, noise="normal", t_max=10.0)
    data = revelo.pp.preprocess(
        raw, n_top_genes=None, min_shared_counts=5, normalize=False, compute_umap=False
    )
    revelo.REVELO.setup_anndata(data)
    return data


def _train(adata, plan_cls, monkeypatch, **kwargs):
    monkeypatch.setattr(revelo.REVELO, "_training_plan_cls", plan_cls)
    revelo.settings.seed = 0
    model = revelo.REVELO(adata, n_hidden=16)
    model.train(max_epochs=4, batch_size=64, enable_progress_bar=False, **kwargs)
    return model


def test_revelo_uses_the_epoch_logged_plan():
    assert revelo.REVELO._training_plan_cls is EpochLoggedTrainingPlan


def test_history_and_weights_equal_scvi_tools_plan(adata, monkeypatch):
    ours = _train(adata, EpochLoggedTrainingPlan, monkeypatch)
    theirs = _train(adata, TrainingPlan, monkeypatch)
    assert set(ours.history) == set(theirs.history)
    for key in ("train_loss", "elbo_train", "reconstruction_loss_train", "kl_local_train"):
        assert len(ours.history[key]) == 4
        np.testing.assert_allclose(
            ours.history[key].to_numpy(float), theirs.history[key].to_numpy(float), rtol=1e-6
        )
    for key in ours.history:
        np.testing.assert_allclose(
            ours.history[key].to_numpy(float), theirs.history[key].to_numpy(float), rtol=1e-6
        )
    for name, value in ours.module.state_dict().items():
        torch.testing.assert_close(
            value, theirs.module.state_dict()[name], rtol=0, atol=0, equal_nan=True
        )


def test_a_stop_within_an_epoch_still_logs_that_epoch(adata, monkeypatch):
    # limit_train_batches ends every epoch early, as a stop within the epoch would.
    ours = _train(adata, EpochLoggedTrainingPlan, monkeypatch, limit_train_batches=2)
    theirs = _train(adata, TrainingPlan, monkeypatch, limit_train_batches=2)
    np.testing.assert_allclose(
        ours.history["elbo_train"].to_numpy(float),
        theirs.history["elbo_train"].to_numpy(float),
        rtol=1e-6,
    )


def test_per_step_logging_takes_scvi_tools_path(adata, monkeypatch):
    options = {"plan_kwargs": {"on_step": True}}
    ours = _train(adata, EpochLoggedTrainingPlan, monkeypatch, **options)
    theirs = _train(adata, TrainingPlan, monkeypatch, **options)
    assert "train_loss_step" in ours.history
    assert set(ours.history) == set(theirs.history)
