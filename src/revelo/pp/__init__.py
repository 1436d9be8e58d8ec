"""Preprocessing: from raw spliced/unspliced counts to model-ready moments."""

from __future__ import annotations

from ._moments import moments
from ._preprocess import preprocess

__all__ = ["moments", "preprocess"]
