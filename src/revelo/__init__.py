"""revelo: RNA velocity with a variational kinetic model on scvi-tools."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from . import datasets, pl, pp, tl
from ._settings import settings
from .model import REVELO

try:
    __version__ = version("revelo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["REVELO", "datasets", "pl", "pp", "settings", "tl"]
