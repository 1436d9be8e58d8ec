"""Property-based: after setup, any query or add_outputs call ends in a clean result or a clear
error, and a failing add_outputs leaves the AnnData as it was."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import revelo
from revelo._validation import NotTrainedError

# The errors revelo documents for bad arguments; anything else is a bug.
CLEAR_ERRORS = (ValueError, KeyError, TypeError, NotTrainedError)
N_OBS = 60

FAST = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture(scope="module")
def trained():
    """A model trained for 2 epochs on 60 simulated cells."""
    raw = revelo.datasets.simulate(n_obs=N_OBS, n_vars=8, seed=0)
    adata = revelo.pp.preprocess(
        raw, n_top_genes=None, n_neighbors=5, compute_umap=False, min_shared_counts=1
    )
    revelo.REVELO.setup_anndata(adata)
    revelo.settings.seed = 0
    model = revelo.REVELO(adata, n_hidden=16)
    model.train(max_epochs=2, enable_progress_bar=False, n_epochs_kl_warmup=1)
    return model


INDICES = st.one_of(
    st.none(),
    st.lists(st.integers(-5, N_OBS + 5), max_size=12),
    st.lists(st.booleans(), min_size=N_OBS, max_size=N_OBS),
    st.lists(st.booleans(), min_size=1, max_size=5),
    st.lists(st.floats(0, N_OBS, allow_nan=False), min_size=1, max_size=3),
)
SIZES = st.one_of(st.none(), st.integers(-3, 100), st.floats(-1, 5), st.just("8"))
SAMPLES = st.one_of(st.integers(-1, 3), st.floats(0, 3), st.just(True))


def _message(error: BaseException) -> str:
    return str(error.args[0] if error.args else error)


@FAST
@given(indices=INDICES, batch_size=SIZES, n_samples=SAMPLES)
def test_queries_give_finite_results_or_a_clear_error(trained, indices, batch_size, n_samples):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            velocity = trained.get_velocity(
                indices=indices, batch_size=batch_size, n_samples=n_samples, return_numpy=True
            )
        except CLEAR_ERRORS as error:
            assert len(_message(error)) > 20, f"{type(error).__name__}: {error!r}"
            return
    expected = N_OBS if indices is None else len(np.flatnonzero(indices))
    if indices is not None and np.asarray(indices).dtype != bool:
        expected = len(indices)
    assert velocity.shape == (expected, trained.adata.n_vars)
    assert np.isfinite(velocity).all()


ROOT_CELLS = st.one_of(
    st.none(),
    st.lists(st.integers(-2, N_OBS + 2), min_size=1, max_size=3),
    st.lists(st.sampled_from(["cell_0", "cell_5", "X", ""]), min_size=1, max_size=2),
)
ROOT_KEYS = st.sampled_from([None, "root", "clusters", "absent", "fraction"])


@FAST
@given(root_key=ROOT_KEYS, root_cells=ROOT_CELLS, n_samples=SAMPLES, uncertainty=st.booleans())
def test_add_outputs_writes_all_or_nothing(trained, root_key, root_cells, n_samples, uncertainty):
    adata = trained.adata.copy()
    adata.obs["root"] = np.arange(N_OBS) < 3
    adata.obs["fraction"] = np.linspace(0, 1, N_OBS)
    before = {name: set(getattr(adata, name)) for name in ("layers", "obs", "var", "uns")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            trained.add_outputs(
                adata,
                root_key=root_key,
                root_cells=root_cells,
                n_samples=n_samples,
                uncertainty=uncertainty,
            )
        except CLEAR_ERRORS as error:
            assert len(_message(error)) > 20, f"{type(error).__name__}: {error!r}"
            after = {name: set(getattr(adata, name)) for name in before}
            assert after == before
            return
    assert np.isfinite(adata.layers["velocity"]).all()
    time = adata.obs["latent_time"].to_numpy()
    assert np.isfinite(time).all() and time.min() >= 0 and time.max() <= 1
