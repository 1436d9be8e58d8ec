"""Global settings: random seed and where real data sets are read from."""

from __future__ import annotations

import os
from pathlib import Path

import scvi


class RevelosSettings:
    """Package-wide settings, available as ``revelo.settings``.

    Attributes
    ----------
    seed
        Random seed for torch, numpy and Python; setting it sets ``scvi.settings.seed``.
    data_dir
        Folder where the data set loaders look for ``.h5ad`` files before downloading.
        Defaults to the environment variable ``REVELO_DATA_DIR``, then ``../shared/data``
        when that folder exists, then ``~/.cache/revelo``.
    """

    def __init__(self) -> None:
        self._data_dir: Path | None = None

    @property
    def seed(self) -> int | None:
        """Random seed shared with scvi-tools."""
        return scvi.settings.seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        scvi.settings.seed = value

    @property
    def data_dir(self) -> Path:
        """Folder holding (or receiving) data set files."""
        if self._data_dir is not None:
            return self._data_dir
        env = os.environ.get("REVELO_DATA_DIR")
        if env:
            return Path(env)
        shared = Path("..") / "shared" / "data"
        if shared.is_dir():
            return shared
        return Path.home() / ".cache" / "revelo"

    @data_dir.setter
    def data_dir(self, value: str | os.PathLike | None) -> None:
        self._data_dir = None if value is None else Path(value)

    def __repr__(self) -> str:
        return f"revelo.settings(seed={self.seed}, data_dir={str(self.data_dir)!r})"


settings = RevelosSettings()
