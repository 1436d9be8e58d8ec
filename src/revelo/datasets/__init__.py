"""Data sets: a simulator with ground truth and loaders for published data."""

from __future__ import annotations

from ._loaders import dentategyrus, pancreas
from ._simulate import simulate

__all__ = ["dentategyrus", "pancreas", "simulate"]
