"""revelo: RNA velocity with a variational kinetic model on scvi-tools."""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

from ._settings import settings

if TYPE_CHECKING:
    from . import datasets, pl, pp, tl
    from .model import REVELO

try:
    __version__ = version("revelo")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["REVELO", "datasets", "pl", "pp", "settings", "tl"]

_SUBMODULES = {"datasets", "pl", "pp", "tl", "model", "module"}


def __getattr__(name: str):
    # The scientific stack (torch, scvi-tools, scanpy) loads on first use, so that
    # `revelo --help` answers at once.
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "REVELO":
        return importlib.import_module(".model", __name__).REVELO
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
