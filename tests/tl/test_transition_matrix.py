"""``revelo.tl.transition_matrix`` against a dense computation of its documented formula."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

import revelo

from ._fixtures import trajectory_adata


def _dense_reference(graph: np.ndarray, graph_neg: np.ndarray, scale: float) -> np.ndarray:
    confidence = graph.max(axis=1)
    self_prob = np.clip(np.percentile(confidence, 98) - confidence, 0, 1)
    weights = np.expm1((graph + np.diag(self_prob)) * scale)
    weights -= np.expm1(-graph_neg * scale)
    weights /= np.abs(weights).sum(axis=1, keepdims=True)
    np.fill_diagonal(weights, 0)
    return weights


@pytest.mark.parametrize("scale", [1.0, 10.0])
def test_transition_matrix_follows_its_formula(scale):
    adata = trajectory_adata()
    revelo.tl.velocity_graph(adata)
    assert adata.uns["velocity_graph_neg"].nnz > 0, "the check needs negative cosines too"
    transitions = revelo.tl.transition_matrix(adata, scale=scale)
    assert sparse.isspmatrix_csr(transitions)
    assert transitions.diagonal().max() == 0
    expected = _dense_reference(
        adata.uns["velocity_graph"].toarray().astype(np.float64),
        adata.uns["velocity_graph_neg"].toarray().astype(np.float64),
        scale,
    )
    np.testing.assert_allclose(transitions.toarray(), expected, rtol=1e-10, atol=1e-12)


def test_transition_matrix_needs_the_graph():
    adata = trajectory_adata()
    with pytest.raises(KeyError, match=r"revelo\.tl\.velocity_graph\(adata, vkey='velocity'\)"):
        revelo.tl.transition_matrix(adata)
