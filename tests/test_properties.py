"""Property-based: any small AnnData ends in valid velocities or a documented, clear error."""

from __future__ import annotations

import warnings

import anndata as ad
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse

import revelo

FORMATS = {"dense": np.asarray, "csr": sparse.csr_matrix, "csc": sparse.csc_matrix}
DTYPES = [np.int32, np.int64, np.float32, np.float64]
# The errors revelo documents for bad input; anything else is a bug.
CLEAR_ERRORS = (ValueError, KeyError, TypeError)

FAST = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
LONG = settings(FAST, max_examples=150)

NAME = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=8
)


@st.composite
def raw_anndata(draw) -> ad.AnnData:
    """Raw spliced/unspliced counts of random shape, sparsity, dtype, format and names."""
    n_obs = draw(st.integers(30, 80))
    n_vars = draw(st.integers(5, 30))
    dtype = draw(st.sampled_from(DTYPES))
    fmt = draw(st.sampled_from(sorted(FORMATS)))
    density = draw(st.floats(0.05, 1.0))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    # Unspliced follows spliced per gene, as near a steady state, so that some genes pass
    # preprocessing's steady-state filter and the whole pipeline is exercised.
    # Genes respond differently to a 2-d cell state, so per-cell normalization keeps structure.
    state = rng.normal(size=(n_obs, 2)) @ rng.normal(size=(2, n_vars))
    spliced_rate = rng.gamma(2.0, 3.0, size=(1, n_vars)) * np.exp(state)
    unspliced_rate = spliced_rate * rng.uniform(0.1, 1.0, size=(1, n_vars))
    layers = {}
    for key, rate in (("spliced", spliced_rate), ("unspliced", unspliced_rate)):
        counts = rng.poisson(rate) * (rng.random((n_obs, n_vars)) < density)
        layers[key] = counts.astype(np.float64)
    n_zero_rows = draw(st.integers(0, 3))
    n_zero_cols = draw(st.integers(0, 2))
    for layer in layers.values():
        layer[:n_zero_rows] = 0
        layer[:, n_vars - n_zero_cols :] = 0

    corruption = draw(st.sampled_from(["none"] * 8 + ["nan", "inf", "negative", "fraction"]))
    if corruption != "none":
        i, j = draw(st.integers(0, n_obs - 1)), draw(st.integers(0, n_vars - 1))
        value = {"nan": np.nan, "inf": np.inf, "negative": -3.0, "fraction": 0.5}[corruption]
        layers["unspliced"][i, j] = value
        if not np.issubdtype(dtype, np.floating) and corruption in ("nan", "inf"):
            dtype = np.float32  # an integer dtype cannot hold the corruption

    for key, layer in layers.items():
        layers[key] = FORMATS[fmt](layer.astype(dtype))
    adata = ad.AnnData(
        X=sparse.csr_matrix(layers["spliced"], dtype=np.float32),
        layers=layers,
    )
    obs_names = draw(st.lists(NAME, min_size=n_obs, max_size=n_obs, unique=True))
    var_names = draw(st.lists(NAME, min_size=n_vars, max_size=n_vars, unique=True))
    if draw(st.integers(0, 7)) == 0:
        var_names[-1] = var_names[0]
    adata.obs_names = pd.Index(obs_names)
    adata.var_names = pd.Index(var_names)
    return adata


def _pipeline(adata: ad.AnnData, n_neighbors: int, min_shared_counts: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            prepared = revelo.pp.preprocess(
                adata,
                n_top_genes=None,
                n_neighbors=n_neighbors,
                min_shared_counts=min_shared_counts,
                compute_umap=False,
            )
            revelo.REVELO.setup_anndata(prepared)
            revelo.settings.seed = 0
            model = revelo.REVELO(prepared, n_hidden=8)
            model.train(max_epochs=1, enable_progress_bar=False)
            velocity = model.get_velocity(n_samples=2, return_numpy=True)
        except CLEAR_ERRORS as error:
            message = str(error.args[0] if error.args else error)
            assert len(message) > 20, f"{type(error).__name__} without a clear message: {error!r}"
            return
    assert velocity.shape == prepared.shape
    assert np.isfinite(velocity).all()


@FAST
@given(raw_anndata(), st.integers(2, 10), st.integers(0, 20))
def test_random_input_gives_velocities_or_a_clear_error(adata, n_neighbors, min_shared_counts):
    _pipeline(adata, n_neighbors, min_shared_counts)


@pytest.mark.slow
@LONG
@given(raw_anndata(), st.integers(2, 30), st.integers(0, 20))
def test_random_input_gives_velocities_or_a_clear_error_long(
    adata, n_neighbors, min_shared_counts
):
    _pipeline(adata, n_neighbors, min_shared_counts)
