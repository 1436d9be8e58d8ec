"""Tools: velocity graph, embeddings, shared latent time, confidence and evaluation metrics."""

from __future__ import annotations

from ._accuracy import latent_time_accuracy, velocity_accuracy
from ._confidence import velocity_confidence
from ._embedding import transition_matrix, velocity_embedding
from ._graph import velocity_graph
from ._latent_time import latent_time
from ._metrics import (
    MetricScores,
    batch_mixing,
    cross_boundary_correctness,
    in_cluster_coherence,
    velocity_consistency,
)

__all__ = [
    "MetricScores",
    "batch_mixing",
    "cross_boundary_correctness",
    "in_cluster_coherence",
    "latent_time",
    "latent_time_accuracy",
    "transition_matrix",
    "velocity_accuracy",
    "velocity_confidence",
    "velocity_consistency",
    "velocity_embedding",
    "velocity_graph",
]
