"""User-facing model classes."""

from __future__ import annotations

from revelo._validation import NotTrainedError

from ._callbacks import NonFiniteLossError
from ._model import REVELO

__all__ = ["REVELO", "NonFiniteLossError", "NotTrainedError"]
