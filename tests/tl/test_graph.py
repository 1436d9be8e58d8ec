from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

import revelo

from ._fixtures import trajectory_adata


def _assert_graphs_equal(ours, theirs, atol=1e-4):
    for key in ("velocity_graph", "velocity_graph_neg"):
        assert sparse.issparse(ours.uns[key])
        difference = abs(ours.uns[key] - theirs.uns[key])
        assert difference.max() <= atol, key


@pytest.mark.parametrize(
    "options",
    [{}, {"sqrt_transform": True}, {"n_neighbors": 5}, {"n_recurse_neighbors": 1}],
)
def test_matches_scvelo(options):
    scv = pytest.importorskip("scvelo")
    adata = trajectory_adata()
    ours = revelo.tl.velocity_graph(adata, copy=True, **options)
    theirs = adata.copy()
    scv.settings.verbosity = 0
    scv.tl.velocity_graph(theirs, n_jobs=1, show_progress_bar=False, **options)
    _assert_graphs_equal(ours, theirs)
    assert ours.uns["velocity_params"] == theirs.uns["velocity_params"]
    np.testing.assert_allclose(
        ours.obs["velocity_self_transition"], theirs.obs["velocity_self_transition"], atol=1e-4
    )


def test_graph_signs_and_copy():
    adata = trajectory_adata()
    before = set(adata.uns)
    assert revelo.tl.velocity_graph(adata, device="cpu") is None
    assert set(adata.uns) - before == {"velocity_graph", "velocity_graph_neg", "velocity_params"}
    graph, graph_neg = adata.uns["velocity_graph"], adata.uns["velocity_graph_neg"]
    assert graph.data.min() > 0 and graph.data.max() <= 1
    assert graph_neg.data.max() < 0 and graph_neg.data.min() >= -1
    assert graph.diagonal().sum() == 0
    # velocities follow the order, so transitions to later cells dominate
    rows, cols = graph.nonzero()
    order = adata.obs["order"].to_numpy()
    assert (order[cols] > order[rows]).mean() > 0.8

    fresh = trajectory_adata()
    copied = revelo.tl.velocity_graph(fresh, copy=True)
    assert "velocity_graph" not in fresh.uns
    assert (abs(copied.uns["velocity_graph"] - graph)).max() == 0


def test_gene_subset_restricts_genes():
    adata = trajectory_adata()
    subset = adata.var_names[2:12]
    revelo.tl.velocity_graph(adata, gene_subset=subset)
    manual = trajectory_adata()
    manual.var["velocity_genes"] = manual.var_names.isin(subset)
    revelo.tl.velocity_graph(manual)
    assert abs(adata.uns["velocity_graph"] - manual.uns["velocity_graph"]).max() == 0


def test_missing_inputs_name_the_fix():
    adata = trajectory_adata()
    del adata.layers["velocity"]
    with pytest.raises(KeyError, match="add_outputs"):
        revelo.tl.velocity_graph(adata)
    adata = trajectory_adata()
    del adata.obsp["distances"]
    with pytest.raises(KeyError, match="neighbors"):
        revelo.tl.velocity_graph(adata)
    with pytest.raises(ValueError, match="n_neighbors"):
        revelo.tl.velocity_graph(trajectory_adata(), n_neighbors=50)
