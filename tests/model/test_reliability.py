"""Reliability: clear errors before training, nothing lost, reproducible runs."""

from __future__ import annotations

import copy
import re
import subprocess
import sys
import textwrap

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from scipy import sparse

import revelo
from revelo.model import NonFiniteLossError

TRAIN = {"enable_progress_bar": False, "n_epochs_kl_warmup": 2}
FORMATS = {"dense": np.asarray, "csr": sparse.csr_matrix, "csc": sparse.csc_matrix}


@pytest.fixture(scope="module")
def raw():
    """Raw counts: 60 cells × 8 genes."""
    return revelo.datasets.simulate(n_obs=60, n_vars=8, seed=0)


@pytest.fixture(scope="module")
def prepared(raw):
    """``raw`` preprocessed, not registered."""
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


def _state(model) -> dict[str, torch.Tensor]:
    return {key: value.detach().clone() for key, value in model.module.state_dict().items()}


def _assert_same_state(left: dict, right: dict) -> None:
    assert left.keys() == right.keys()
    for key in left:
        torch.testing.assert_close(left[key], right[key], rtol=0, atol=0, msg=key)


# ---------------------------------------------------------------- validation before training
def test_setup_anndata_lists_present_layers_when_one_is_missing(prepared):
    adata = prepared.copy()
    with pytest.raises(KeyError, match=r"'Mx' is missing; the layers present are: .*'Ms'"):
        revelo.REVELO.setup_anndata(adata, spliced_layer="Mx")


def test_setup_anndata_rejects_layers_of_different_dtypes(prepared):
    adata = prepared.copy()
    adata.layers["Mu"] = adata.layers["Mu"].astype(np.float64)
    with pytest.raises(TypeError, match=r"differ in dtype.*astype"):
        revelo.REVELO.setup_anndata(adata)


def test_spliced_unspliced_shapes_cannot_differ():
    # AnnData refuses a layer of another shape with a message naming both shapes, so spliced
    # and unspliced of one AnnData always agree; check_spliced_unspliced covers other inputs.
    adata = ad.AnnData(np.zeros((4, 3), dtype=np.float32))
    with pytest.raises(ValueError, match=r"shape \(3, 3\) while it should have had \(4, 3\)"):
        adata.layers["Mu"] = np.zeros((3, 3), dtype=np.float32)


@pytest.mark.parametrize(
    ("value", "what"), [(np.nan, "NaN"), (np.inf, "infinite"), (-np.inf, "infinite"), (-1, "neg")]
)
def test_setup_anndata_rejects_bad_values_with_count_and_place(prepared, value, what):
    adata = prepared.copy()
    adata.layers["Mu"][[2, 5], 1] = value
    cell, gene = adata.obs_names[2], adata.var_names[1]
    pattern = rf"'Mu' has 2 {what}\w* entries \(first at cell '{cell}', gene '{gene}'\)"
    with pytest.raises(ValueError, match=pattern):
        revelo.REVELO.setup_anndata(adata)


def test_setup_anndata_rejects_float16(prepared):
    adata = prepared.copy()
    adata.layers["Ms"] = adata.layers["Ms"].astype(np.float16)
    adata.layers["Mu"] = adata.layers["Mu"].astype(np.float16)
    with pytest.raises(TypeError, match=r"float16.*astype\('float32'\)"):
        revelo.REVELO.setup_anndata(adata)


@pytest.mark.parametrize("axis", ["obs", "var"])
def test_setup_anndata_rejects_duplicated_names(prepared, axis):
    adata = prepared.copy()
    names = list(getattr(adata, f"{axis}_names"))
    names[1] = names[0]
    setattr(adata, f"{axis}_names", names)
    with pytest.raises(
        ValueError, match=rf"{axis}_names are duplicated.*{axis}_names_make_unique"
    ):
        revelo.REVELO.setup_anndata(adata)


def test_setup_anndata_rejects_a_view_and_says_copy(prepared):
    view = prepared[:30]
    with pytest.raises(ValueError, match=r"is a view.*adata = adata\.copy\(\)"):
        revelo.REVELO.setup_anndata(view)
    assert "_scvi_uuid" not in prepared.uns


def test_setup_anndata_rejects_backed_mode(prepared, tmp_path):
    path = tmp_path / "data.h5ad"
    prepared.write_h5ad(path)
    backed = ad.read_h5ad(path, backed="r")
    try:
        with pytest.raises(ValueError, match=r"backed mode.*to_memory"):
            revelo.REVELO.setup_anndata(backed)
    finally:
        backed.file.close()


def test_model_on_unregistered_data_says_setup_anndata(prepared):
    with pytest.raises(ValueError, match="setup_anndata"):
        revelo.REVELO(prepared.copy(), n_hidden=16)


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.int64, np.float32, np.float64])
def test_every_format_and_dtype_trains_and_queries(prepared, fmt, dtype):
    adata = prepared.copy()
    for key in ("Ms", "Mu"):
        values = adata.layers[key] * (100 if np.issubdtype(dtype, np.integer) else 1)
        adata.layers[key] = FORMATS[fmt](np.round(values).astype(dtype))
    revelo.REVELO.setup_anndata(adata)
    model = _model(adata)
    model.train(max_epochs=1, **TRAIN)
    velocity = model.get_velocity(n_samples=2, return_numpy=True)
    assert velocity.shape == adata.shape
    assert np.isfinite(velocity).all()


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float32, np.float64])
def test_preprocess_accepts_every_count_format(raw, fmt, dtype):
    counts = raw.copy()
    for key in ("spliced", "unspliced"):
        counts.layers[key] = FORMATS[fmt](np.asarray(raw.layers[key]).astype(dtype))
    out = revelo.pp.preprocess(
        counts, n_top_genes=None, n_neighbors=5, compute_umap=False, min_shared_counts=1
    )
    assert out.n_obs > 0 and np.isfinite(out.layers["Ms"]).all()


def test_preprocess_rejects_non_integer_counts(raw):
    counts = raw.copy()
    counts.layers["spliced"] = np.asarray(counts.layers["spliced"], dtype=np.float32) + 0.5
    with pytest.raises(ValueError, match=r"non-integer entries.*raw counts"):
        revelo.pp.preprocess(counts, n_neighbors=5, compute_umap=False)


def test_preprocess_drops_empty_cells_and_genes_with_a_warning(raw):
    counts = raw.copy()
    for key in ("spliced", "unspliced"):
        layer = np.asarray(counts.layers[key]).copy()
        layer[3] = 0
        layer[:, 2] = 0
        counts.layers[key] = layer
    with pytest.warns(UserWarning, match="Dropping 1 cells") as record:
        out = revelo.pp.preprocess(
            counts, n_top_genes=None, n_neighbors=5, compute_umap=False, min_shared_counts=1
        )
    assert any("Dropping 1 genes" in str(w.message) for w in record)
    assert counts.obs_names[3] not in out.obs_names
    assert counts.var_names[2] not in out.var_names


def test_preprocess_errors_when_nothing_remains(raw):
    counts = raw.copy()
    for key in ("spliced", "unspliced"):
        counts.layers[key] = np.zeros(counts.shape, dtype=np.int64)
    with (
        pytest.raises(ValueError, match="Every cell has zero"),
        pytest.warns(UserWarning, match="Dropping"),
    ):
        revelo.pp.preprocess(counts, n_neighbors=5, compute_umap=False)


def test_preprocess_errors_with_too_few_cells_for_the_graph(raw):
    with pytest.raises(ValueError, match=r"too few for a graph with n_neighbors=30.*n_neighbors"):
        revelo.pp.preprocess(raw[:20].copy(), n_neighbors=30, compute_umap=False)


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        ({"lr": -1.0}, ValueError, "lr must be a positive"),
        ({"lr": float("nan")}, ValueError, "lr must be a positive"),
        ({"max_epochs": 0}, ValueError, "max_epochs must be a positive"),
        ({"batch_size": 0}, ValueError, "batch_size must be a positive"),
        ({"train_size": 1.5}, ValueError, "must be fractions"),
        ({"train_size": 0.99}, ValueError, r"leaves no validation cell.*train_size=1\.0"),
        ({"ckpt_path": "nowhere.ckpt"}, FileNotFoundError, r"does not exist.*last\.ckpt"),
        ({"enable_checkpointing": True}, ValueError, "pass checkpoint_dir"),
        ({"checkpoint_dir": "ck"}, ValueError, "enable_checkpointing=True"),
    ],
)
def test_train_rejects_bad_options_before_training(adata, kwargs, error, pattern):
    model = _model(adata)
    before = _state(model)
    with pytest.raises(error, match=pattern):
        model.train(max_epochs=kwargs.pop("max_epochs", 1), **kwargs, **TRAIN)
    assert model.history_ is None
    _assert_same_state(before, _state(model))


def test_train_rechecks_layers_changed_after_setup(adata):
    model = _model(adata)
    adata.layers["Ms"][0, 0] = np.nan
    with pytest.raises(ValueError, match="'Ms' has 1 NaN"):
        model.train(max_epochs=1, **TRAIN)
    assert model.history_ is None


def test_load_onto_other_genes_names_the_difference(adata, tmp_path):
    model = _model(adata)
    model.save(tmp_path / "model")
    fewer = adata[:, 1:].copy()
    with pytest.raises(
        ValueError, match=rf"1 of the model's genes are missing \('{adata.var_names[0]}'\)"
    ):
        revelo.REVELO.load(tmp_path / "model", adata=fewer)
    renamed = adata.copy()
    renamed.var_names = [f"other{i}" for i in range(adata.n_vars)]
    with pytest.raises(ValueError, match=r"genes are not in the model \('other0'"):
        revelo.REVELO.load(tmp_path / "model", adata=renamed)
    reordered = adata[:, ::-1].copy()
    with pytest.raises(ValueError, match="another order"):
        revelo.REVELO.load(tmp_path / "model", adata=reordered)
    with pytest.raises(FileNotFoundError, match="No saved model"):
        revelo.REVELO.load(tmp_path / "nothing", adata=adata)


# ---------------------------------------------------------------- nothing lost
def _snapshot(adata: ad.AnnData) -> dict[str, object]:
    """Every field of ``adata`` as ``"slot/key" → deep copy``."""
    out: dict[str, object] = {"X": copy.deepcopy(adata.X)}
    for slot in ("layers", "obsm", "varm", "obsp", "uns"):
        for key, value in getattr(adata, slot).items():
            out[f"{slot}/{key}"] = copy.deepcopy(value)
    for slot in ("obs", "var"):
        frame = getattr(adata, slot)
        out[f"{slot}.index"] = frame.index.copy()
        for key in frame.columns:
            out[f"{slot}/{key}"] = frame[key].copy()
    return out


def _equal(left, right) -> bool:
    if type(left) is not type(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(_equal(left[k], right[k]) for k in left)
    if isinstance(left, pd.Series | pd.Index | pd.DataFrame):
        return left.equals(right)
    if sparse.issparse(left):
        return left.shape == right.shape and (left != right).nnz == 0
    if isinstance(left, np.ndarray):
        return left.shape == right.shape and np.array_equal(left, right, equal_nan=True)
    if isinstance(left, list | tuple):
        return len(left) == len(right) and all(map(_equal, left, right))
    return bool(left == right)


def _changed(before: dict, after: dict) -> set[str]:
    keys = before.keys() | after.keys()
    return {
        key
        for key in keys
        if key not in before or key not in after or not _equal(before[key], after[key])
    }


def _documented_keys(doc: str) -> set[str]:
    """``slot/key`` for every ``slot["key"]`` named in a docstring's Returns section."""
    returns = doc.split("Returns\n")[1]
    keys = {f"{slot}/{key}" for slot, key in re.findall(r'(\w+)\["(\w+)"\]', returns)}
    # "the same five with the prefix ``extrinsic_``": obs columns written twice.
    prefixed = re.findall(r"prefix\s+``(\w+)``", returns)
    keys |= {f"obs/{p}{k[4:]}" for p in prefixed for k in keys if k.startswith("obs/")}
    return keys


def test_public_calls_change_only_their_documented_keys(raw, tmp_path):
    before = _snapshot(raw)
    prepared = revelo.pp.preprocess(
        raw, n_top_genes=None, n_neighbors=5, compute_umap=False, min_shared_counts=1
    )
    assert _changed(before, _snapshot(raw)) == set()

    adata = prepared.copy()
    before = _snapshot(adata)
    revelo.REVELO.setup_anndata(adata)
    assert _changed(before, _snapshot(adata)) == {"uns/_scvi_uuid", "uns/_scvi_manager_uuid"}

    before = _snapshot(adata)
    model = _model(adata)
    # Long enough for positive gene likelihoods, which add_outputs' latent time needs.
    model.train(max_epochs=40, **TRAIN)
    model.get_velocity(n_samples=2)
    model.get_velocity(n_samples=2, velo_mode="unspliced")
    model.get_latent_time(n_samples=2)
    model.get_latent_representation()
    model.get_state_assignment(n_samples=2)
    model.get_state_assignment(n_samples=2, hard_assignment=True)
    model.get_expression_fit(n_samples=2)
    model.get_gene_likelihood(n_samples=2)
    model.get_rates()
    model.save(tmp_path / "model")
    assert _changed(before, _snapshot(adata)) == set()

    # load registers the AnnData anew: scvi-tools writes a new manager id.
    other = adata.copy()
    before_load = _snapshot(other)
    revelo.REVELO.load(tmp_path / "model", adata=other)
    assert _changed(before_load, _snapshot(other)) <= {"uns/_scvi_uuid", "uns/_scvi_manager_uuid"}

    model.add_outputs(n_samples=2)
    documented = _documented_keys(revelo.REVELO.add_outputs.__doc__)
    assert {"layers/velocity", "obs/latent_time", "uns/velocity_params"} <= documented
    assert _changed(before, _snapshot(adata)) <= documented


class _PoisonLoss(Callback):
    """Record the epoch and the weights at each epoch end; the test poisons the loss."""

    def __init__(self):
        self.epoch = -1
        self.weights: dict[int, dict[str, torch.Tensor]] = {}

    def on_train_epoch_start(self, trainer, pl_module):
        self.epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer, pl_module):
        state = pl_module.module.state_dict()
        self.weights[trainer.current_epoch] = {k: v.detach().clone() for k, v in state.items()}


def test_nan_loss_stops_with_epoch_and_keeps_last_finite_weights(adata, monkeypatch):
    model = _model(adata)
    spy = _PoisonLoss()
    loss = model.module.loss

    def poisoned(*args, **kwargs):
        out = loss(*args, **kwargs)
        if model.module.training and spy.epoch == 2:
            out.loss = out.loss * float("nan")
        return out

    monkeypatch.setattr(model.module, "loss", poisoned)
    with pytest.raises(
        NonFiniteLossError, match=r"became nan in epoch 2.*end of epoch 1.*learning rate"
    ):
        model.train(max_epochs=5, callbacks=[spy], **TRAIN)
    assert isinstance(NonFiniteLossError("x"), RuntimeError)
    _assert_same_state(spy.weights[1], _state(model))
    assert all(torch.isfinite(v).all() for v in _state(model).values() if v.is_floating_point())
    assert np.isfinite(model.get_velocity(n_samples=2, return_numpy=True)).all()


def test_checkpoint_resume_continues_the_run_exactly(adata, tmp_path):
    one_go = _model(adata)
    one_go.train(max_epochs=4, **TRAIN)

    first = _model(adata)
    first.train(max_epochs=2, enable_checkpointing=True, checkpoint_dir=tmp_path, **TRAIN)
    assert {"last.ckpt", "epoch=1.ckpt"} <= {p.name for p in tmp_path.iterdir()}

    resumed = _model(adata)
    resumed.train(max_epochs=4, ckpt_path=tmp_path / "last.ckpt", **TRAIN)
    assert resumed.trainer.current_epoch == 4
    assert list(resumed.history["elbo_train"].index) == [2, 3]
    _assert_same_state(_state(one_go), _state(resumed))


def test_save_refuses_to_overwrite_and_loads_in_a_new_process(adata, tmp_path):
    model = _model(adata)
    model.train(max_epochs=1, **TRAIN)
    path = tmp_path / "model"
    model.save(path, save_anndata=True)
    with pytest.raises(ValueError, match="already exists; pass overwrite=True"):
        model.save(path)
    model.save(path, save_anndata=True, overwrite=True)
    expected = model.get_latent_representation()
    np.save(tmp_path / "expected.npy", expected)

    script = textwrap.dedent(
        f"""
        import numpy as np, revelo
        model = revelo.REVELO.load({str(path)!r})
        latent = model.get_latent_representation()
        np.testing.assert_array_equal(latent, np.load({str(tmp_path / "expected.npy")!r}))
        print("loaded", model.adata.shape)
        """
    )
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"loaded {adata.shape}" in done.stdout


# ---------------------------------------------------------------- reproducible
def test_same_seed_gives_bit_identical_velocities(prepared):
    def run(seed: int) -> np.ndarray:
        adata = prepared.copy()
        revelo.REVELO.setup_anndata(adata)
        model = _model(adata, seed)
        model.train(max_epochs=3, **TRAIN)
        return model.get_velocity(n_samples=3, return_numpy=True)

    first = run(0)
    np.testing.assert_array_equal(first, run(0))
    assert not np.array_equal(first, run(1))


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"n_hidden": 0}, "n_hidden must be a positive integer"),
        ({"n_latent": 1.5}, "n_latent must be a positive integer"),
        ({"dropout_rate": 1.0}, r"dropout_rate must be in \[0, 1\)"),
        ({"t_max": -1.0}, "t_max must be a positive finite"),
    ],
)
def test_model_options_are_checked(kwargs, pattern):
    # REVELO.__init__ is meant to call this first (see the Reliability issue).
    from revelo._validation import check_model_params

    options = {"n_hidden": 16, "n_latent": 10, "n_layers": 1, "dropout_rate": 0.1, "t_max": 20.0}
    check_model_params(**options)
    with pytest.raises(ValueError, match=pattern):
        check_model_params(**{**options, **kwargs})
