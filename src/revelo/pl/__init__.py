"""Plotting: scanpy-style velocity plots."""

from __future__ import annotations

from ._embedding import velocity_embedding, velocity_embedding_grid, velocity_embedding_stream
from ._latent_time import latent_time
from ._phase import phase_portrait
from ._uncertainty import uncertainty

__all__ = [
    "latent_time",
    "phase_portrait",
    "uncertainty",
    "velocity_embedding",
    "velocity_embedding_grid",
    "velocity_embedding_stream",
]
