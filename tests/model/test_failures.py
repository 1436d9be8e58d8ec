"""Failure behaviour after setup: diverged or interrupted training, bad queries, resuming."""

from __future__ import annotations

import signal
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import revelo
from revelo._constants import REGISTRY_KEYS
from revelo._validation import NotTrainedError
from revelo.model import NonFiniteLossError

TRAIN = {"enable_progress_bar": False, "n_epochs_kl_warmup": 2}


@pytest.fixture(scope="module")
def prepared():
    """60 simulated cells, preprocessed, not registered."""
    raw = revelo.datasets.simulate(n_obs=60, n_vars=8, seed=0)
    return revelo.pp.preprocess(
        raw, n_top_genes=None, n_neighbors=5, compute_umap=False, min_shared_counts=1
    )


@pytest.fixture
def adata(prepared):
    """A fresh registered copy of ``prepared``."""
    adata = prepared.copy()
    revelo.REVELO.setup_anndata(adata)
    return adata


def _model(adata, seed: int = 0) -> revelo.REVELO:
    revelo.settings.seed = seed
    return revelo.REVELO(adata, n_hidden=16)


@pytest.fixture(scope="module")
def trained(prepared):
    """A model trained for 3 epochs on its own registered copy."""
    adata = prepared.copy()
    revelo.REVELO.setup_anndata(adata)
    model = _model(adata)
    model.train(max_epochs=3, **TRAIN)
    return model


# ---------------------------------------------------------------- untrained model
QUERIES = {
    "get_velocity": lambda m: m.get_velocity(n_samples=2),
    "get_latent_time": lambda m: m.get_latent_time(n_samples=2),
    "get_latent_representation": lambda m: m.get_latent_representation(),
    "get_state_assignment": lambda m: m.get_state_assignment(n_samples=2),
    "get_expression_fit": lambda m: m.get_expression_fit(n_samples=2),
    "get_gene_likelihood": lambda m: m.get_gene_likelihood(n_samples=2),
    "get_rates": lambda m: m.get_rates(),
    "get_directional_uncertainty": lambda m: m.get_directional_uncertainty(n_samples=2),
    "add_outputs": lambda m: m.add_outputs(n_samples=2),
}


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_queries_of_an_untrained_model_raise(adata, query):
    model = _model(adata)
    with pytest.raises(NotTrainedError, match=r"needs a trained model.*model\.train\(\)"):
        QUERIES[query](model)
    assert isinstance(NotTrainedError("x"), RuntimeError)
    assert "velocity" not in adata.layers


# ---------------------------------------------------------------- the query's AnnData
def test_query_with_reordered_genes_raises_and_writes_nothing(trained):
    other = trained.adata[:, ::-1].copy()
    with pytest.raises(ValueError, match=r"another order \(position 0"):
        trained.get_velocity(other, n_samples=2)
    with pytest.raises(ValueError, match="genes differ"):
        trained.add_outputs(other, n_samples=2)
    assert "velocity" not in other.layers
    assert "fit_alpha" not in other.var


def test_query_with_renamed_genes_raises(trained):
    other = trained.adata.copy()
    other.var_names = [f"renamed_{i}" for i in range(other.n_vars)]
    with pytest.raises(ValueError, match=r"missing \(.*renamed_0"):
        trained.get_latent_time(other, n_samples=2)


def test_genes_renamed_in_place_on_the_models_adata_are_caught(prepared):
    adata = prepared.copy()
    revelo.REVELO.setup_anndata(adata)
    model = _model(adata)
    model.train(max_epochs=1, **TRAIN)
    adata.var_names = list(adata.var_names[::-1])
    with pytest.raises(ValueError, match="another order"):
        model.get_velocity(n_samples=2)


@pytest.mark.parametrize(("value", "what"), [(np.nan, "NaN"), (np.inf, "infinite")])
def test_query_rejects_non_finite_layers(trained, value, what):
    other = trained.adata.copy()
    other.layers["Mu"] = np.asarray(other.layers["Mu"]).copy()
    other.layers["Mu"][3, 1] = value
    with pytest.raises(ValueError, match=rf"Layer 'Mu' has 1 {what} entries"):
        trained.get_velocity(other, n_samples=2)


# ---------------------------------------------------------------- indices and sizes
def test_boolean_indices_select_the_marked_cells(trained):
    mask = np.zeros(trained.adata.n_obs, dtype=bool)
    mask[[2, 5, 7, 11, 13, 17, 19, 23, 29, 31]] = True
    by_mask = trained.get_latent_representation(indices=mask)
    by_position = trained.get_latent_representation(indices=np.flatnonzero(mask))
    assert by_mask.shape == (10, trained.module.n_latent)
    np.testing.assert_array_equal(by_mask, by_position)
    frame = trained.get_velocity(indices=mask, n_samples=2)
    assert list(frame.index) == list(trained.adata.obs_names[mask])


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"indices": [0, 1000]}, ValueError, r"1 positions outside \[0, 60\)"),
        ({"indices": [-1]}, ValueError, "outside"),
        ({"indices": []}, ValueError, "selects no cell"),
        ({"indices": np.zeros(60, dtype=bool)}, ValueError, "selects no cell"),
        ({"indices": np.ones(5, dtype=bool)}, ValueError, "mask has 5 entries.*60 cells"),
        ({"indices": [0.5, 1.0]}, TypeError, "integer positions or a boolean mask"),
        ({"batch_size": -1}, ValueError, "batch_size must be at least 1"),
        ({"batch_size": 0}, ValueError, "batch_size must be at least 1"),
        ({"n_samples": 1.5}, TypeError, "n_samples must be an integer"),
        ({"n_samples": 0}, ValueError, "n_samples must be at least 1"),
    ],
)
def test_bad_query_arguments_raise_clearly(trained, kwargs, error, pattern):
    with pytest.raises(error, match=pattern):
        trained.get_velocity(**{"n_samples": 2, **kwargs})


def test_uncertainty_rejects_fractional_n_samples(trained):
    with pytest.raises(TypeError, match="n_samples must be an integer"):
        trained.get_directional_uncertainty(n_samples=2.5)


# ---------------------------------------------------------------- diverged training
@pytest.mark.parametrize("lr", [1e3, 1e6])
@pytest.mark.parametrize("train_size", [0.9, 1.0])
def test_diverged_training_raises_and_leaves_no_nan_model(adata, lr, train_size):
    model = _model(adata)
    with pytest.raises(NonFiniteLossError, match=r"(became nan|diverged).*learning rate"):
        model.train(max_epochs=20, lr=lr, train_size=train_size, **TRAIN)
    if model.is_trained_:
        velocity = model.get_velocity(n_samples=2, return_numpy=True)
        assert np.isfinite(velocity).all()
    else:
        with pytest.raises(NotTrainedError):
            model.get_velocity(n_samples=2)
    # a good run afterwards trains normally
    model.train(max_epochs=2, **TRAIN)
    assert model.is_trained_
    assert np.isfinite(model.get_velocity(n_samples=2, return_numpy=True)).all()


def test_divergence_after_a_good_run_keeps_the_model_trained(adata):
    model = _model(adata)
    model.train(max_epochs=2, **TRAIN)
    good = model.get_latent_representation()
    with pytest.raises(NonFiniteLossError, match="before training"):
        model.train(max_epochs=20, lr=1e6, **TRAIN)
    assert model.is_trained_
    np.testing.assert_array_equal(model.get_latent_representation(), good)


def test_snapshot_with_nan_velocities_is_not_kept():
    from revelo.model._callbacks import StopOnNonFiniteLoss

    class _Module(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rate = torch.nn.Parameter(torch.ones(3))

        def posterior_fit(self, spliced, unspliced, use_mean, covariates):
            value = spliced / self.rate  # finite weights, NaN outputs when a rate is 0
            return dict.fromkeys(("velocity", "velocity_u", "fit_s", "fit_u"), value)

    tensors = {REGISTRY_KEYS.X_KEY: torch.zeros(4, 3), REGISTRY_KEYS.U_KEY: torch.zeros(4, 3)}
    plan = SimpleNamespace(module=_Module())
    trainer = SimpleNamespace(datamodule=SimpleNamespace(tensors=tensors), current_epoch=0)
    guard = StopOnNonFiniteLoss()
    guard.on_train_start(trainer, plan)
    assert guard.snapshot is not None and guard.snapshot_epoch is None
    with torch.no_grad():
        plan.module.rate[1] = 0.0  # 0 / 0 = NaN for gene 1 in every cell
    guard.on_train_epoch_end(trainer, plan)
    assert guard.snapshot_epoch is None
    torch.testing.assert_close(guard.snapshot["rate"], torch.ones(3))


# ---------------------------------------------------------------- resuming
def test_resume_reuses_the_checkpoints_split(adata, tmp_path):
    first = _model(adata, seed=0)
    first.train(
        max_epochs=2, train_size=0.7, enable_checkpointing=True, checkpoint_dir=tmp_path, **TRAIN
    )
    split = first.trainer.datamodule.train_idx, first.trainer.datamodule.val_idx

    resumed = _model(adata, seed=7)  # another seed would draw another split
    resumed.train(max_epochs=3, train_size=0.7, ckpt_path=tmp_path / "last.ckpt", **TRAIN)
    np.testing.assert_array_equal(resumed.trainer.datamodule.train_idx, split[0])
    np.testing.assert_array_equal(resumed.trainer.datamodule.val_idx, split[1])
    assert len(set(split[0]) & set(split[1])) == 0


def test_checkpoint_of_another_model_is_refused_before_training(adata, prepared, tmp_path):
    other = prepared[:, :3].copy()
    revelo.REVELO.setup_anndata(other)
    _model(other).train(max_epochs=1, enable_checkpointing=True, checkpoint_dir=tmp_path, **TRAIN)
    model = _model(adata)
    with pytest.raises(ValueError, match=r"written by another model: weight .* shape"):
        model.train(max_epochs=2, ckpt_path=tmp_path / "last.ckpt", **TRAIN)
    assert not model.is_trained_


def test_corrupt_checkpoint_is_refused(adata, tmp_path):
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match=r"cannot be read.*damaged"):
        _model(adata).train(max_epochs=2, ckpt_path=path, **TRAIN)


# ---------------------------------------------------------------- Ctrl+C
class _CtrlC(Callback):
    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_ctrl_c_keeps_the_model_usable_and_says_how_to_resume(adata, tmp_path):
    handler = signal.getsignal(signal.SIGINT)
    model = _model(adata)
    with pytest.raises(KeyboardInterrupt, match=r"interrupted in epoch 1.*ckpt_path"):
        model.train(
            max_epochs=5,
            callbacks=[_CtrlC()],
            enable_checkpointing=True,
            checkpoint_dir=tmp_path,
            **TRAIN,
        )
    assert signal.getsignal(signal.SIGINT) is handler
    assert model.is_trained_
    assert np.isfinite(model.get_velocity(n_samples=2, return_numpy=True)).all()
    model.train(max_epochs=3, ckpt_path=tmp_path / "last.ckpt", **TRAIN)
    assert model.trainer.current_epoch == 3


# ---------------------------------------------------------------- training options
@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"train_size": "0.9"}, TypeError, r"train_size must be a number, got '0.9'"),
        ({"validation_size": "0.1"}, TypeError, "validation_size must be a number"),
        ({"weight_decay": -1}, ValueError, "weight_decay must be a finite number of at least 0"),
        ({"early_stopping_patience": -1}, ValueError, "early_stopping_patience must be at"),
        ({"early_stopping_patience": 2.5}, TypeError, "early_stopping_patience must be an"),
        ({"gradient_clip_val": -1}, ValueError, "gradient_clip_val must be a finite number"),
        ({"n_epochs_kl_warmup": -5}, ValueError, "n_epochs_kl_warmup must be at least 1"),
        ({"kl_weight": float("nan")}, ValueError, "kl_weight must be a finite number"),
        ({"free_bits": -0.5}, ValueError, "free_bits must be a finite number"),
    ],
)
def test_train_options_are_checked_before_training(adata, kwargs, error, pattern):
    model = _model(adata)
    with pytest.raises(error, match=pattern):
        model.train(max_epochs=1, **{**TRAIN, **kwargs})
    assert not model.is_trained_


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
@pytest.mark.parametrize("accelerator", ["cuda", "gpu"])
def test_gpu_accelerator_without_cuda_says_use_cpu(adata, accelerator):
    with pytest.raises(ValueError, match=r"torch sees none.*accelerator='cpu'"):
        _model(adata).train(max_epochs=1, accelerator=accelerator, **TRAIN)


def test_training_after_filtering_cells_in_place_names_the_fix(prepared):
    adata = prepared.copy()
    revelo.REVELO.setup_anndata(adata)
    model = _model(adata)
    adata._inplace_subset_obs(np.arange(adata.n_obs) < 40)
    with pytest.raises(ValueError, match=r"has 40 cells now but had 60.*build a new model"):
        model.train(max_epochs=1, **TRAIN)


# ---------------------------------------------------------------- add_outputs
def _keys(adata) -> dict[str, set]:
    return {
        "layers": set(adata.layers),
        "obs": set(adata.obs),
        "var": set(adata.var),
        "uns": set(adata.uns),
        "obsm": set(adata.obsm),
    }


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"root_cells": ["X"]}, KeyError, "root_cells not in adata.obs_names"),
        ({"root_key": "not_boolean"}, TypeError, "must be boolean"),
        ({"root_key": "absent"}, KeyError, "no column 'absent'"),
        ({"n_samples": 1}, ValueError, "n_samples=1 cannot measure the uncertainty"),
        ({"n_samples": 2.5}, TypeError, "n_samples must be an integer"),
        ({"batch_size": -1}, ValueError, "batch_size must be at least 1"),
    ],
)
def test_add_outputs_checks_first_and_writes_nothing(trained, kwargs, error, pattern):
    adata = trained.adata.copy()
    adata.obs["not_boolean"] = np.arange(adata.n_obs, dtype=float)
    before = _keys(adata)
    with pytest.raises(error, match=pattern):
        trained.add_outputs(adata, **{"n_samples": 2, **kwargs})
    assert _keys(adata) == before


def test_add_outputs_failing_late_restores_the_anndata(trained, monkeypatch):
    import revelo.tl

    adata = trained.adata.copy()
    adata.uns["velocity_graph"] = "old graph"
    adata.obsm["velocity_umap"] = np.zeros((adata.n_obs, 2))
    adata.var["velocity_genes"] = True
    before = _keys(adata)

    def fails(*args, **kwargs):
        msg = "latent time failed"
        raise RuntimeError(msg)

    monkeypatch.setattr(revelo.tl, "latent_time", fails)
    with pytest.raises(RuntimeError, match="latent time failed"):
        trained.add_outputs(adata, n_samples=2)
    assert _keys(adata) == before
    assert adata.uns["velocity_graph"] == "old graph"
    assert adata.var["velocity_genes"].dtype == bool


def test_add_outputs_removes_the_stale_graph_and_arrows(trained):
    adata = trained.adata.copy()
    trained.add_outputs(adata, n_samples=2, uncertainty=False)
    adata.obsm["X_umap"] = np.random.default_rng(0).normal(size=(adata.n_obs, 2))
    revelo.tl.velocity_graph(adata)
    revelo.tl.velocity_embedding(adata)
    assert {"velocity_graph", "velocity_graph_neg"} <= set(adata.uns)
    assert "velocity_umap" in adata.obsm
    trained.add_outputs(adata, n_samples=2, uncertainty=False)
    assert "velocity_graph" not in adata.uns
    assert "velocity_graph_neg" not in adata.uns
    assert "velocity_umap" not in adata.obsm
    assert "velocity_self_transition" not in adata.obs
    assert "X_umap" in adata.obsm


# ---------------------------------------------------------------- save
def test_failing_save_keeps_the_previous_save(trained, tmp_path):
    path = tmp_path / "model"
    trained.save(path)
    before = {p.name: p.read_bytes() for p in path.iterdir()}
    trained.adata.uns["unwritable"] = object()  # h5py cannot store it
    try:
        with pytest.raises(Exception, match=r"unwritable|object"):
            trained.save(path, overwrite=True, save_anndata=True)
    finally:
        del trained.adata.uns["unwritable"]
    assert {p.name: p.read_bytes() for p in path.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    loaded = revelo.REVELO.load(path, adata=trained.adata.copy())
    np.testing.assert_array_equal(
        loaded.get_latent_representation(), trained.get_latent_representation()
    )


def test_save_with_overwrite_replaces_the_previous_save(trained, tmp_path):
    path = tmp_path / "model"
    trained.save(path)
    (path / "stray.txt").write_text("left by hand")
    trained.save(path, overwrite=True)
    assert "stray.txt" not in {p.name for p in path.iterdir()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
