"""User-facing model classes."""

from __future__ import annotations

from ._model import REVELO

__all__ = ["REVELO"]
