from __future__ import annotations

import numpy as np
import pytest

import revelo

from ._fixtures import trajectory_adata


def test_shared_velocity_is_fully_confident():
    adata = trajectory_adata()
    rng = np.random.default_rng(1)
    adata.layers["velocity"] = np.tile(rng.normal(size=adata.n_vars), (adata.n_obs, 1))
    revelo.tl.velocity_confidence(adata)
    np.testing.assert_allclose(adata.obs["velocity_confidence"], 1.0, atol=1e-10)
    assert adata.obs["velocity_length"].nunique() == 1


def test_random_velocity_is_not_confident():
    adata = trajectory_adata(n_vars=400)
    adata.layers["velocity"] = np.random.default_rng(2).normal(size=adata.shape)
    revelo.tl.velocity_confidence(adata)
    assert adata.obs["velocity_confidence"].mean() < 0.05


def test_matches_scvelo():
    scv = pytest.importorskip("scvelo")
    adata = trajectory_adata()
    adata.var["spearmans_score"] = np.linspace(0, 1, adata.n_vars)
    theirs = adata.copy()
    # scVelo also derives a transition confidence, which needs the graph
    revelo.tl.velocity_graph(theirs)
    ours = revelo.tl.velocity_confidence(adata, copy=True)
    assert "velocity_confidence" not in adata.obs
    scv.settings.verbosity = 0
    scv.tl.velocity_confidence(theirs)
    np.testing.assert_allclose(
        ours.obs["velocity_confidence"], theirs.obs["velocity_confidence"], atol=1e-5
    )
    np.testing.assert_allclose(
        ours.obs["velocity_length"], theirs.obs["velocity_length"], atol=0.011
    )


def test_needs_velocity():
    adata = trajectory_adata()
    del adata.layers["velocity"]
    with pytest.raises(KeyError, match="add_outputs"):
        revelo.tl.velocity_confidence(adata)
