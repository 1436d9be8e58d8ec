"""Global settings: random seed and where real data sets are read from."""

from __future__ import annotations

import os
from pathlib import Path

import scvi

#: Environment variable naming the data folder; it takes precedence over the default.
DATA_DIR_VARIABLE = "REVELO_DATA_DIR"


def default_data_dir() -> Path:
    """The per-user cache folder for data sets: ``$XDG_CACHE_HOME/revelo`` or ``~/.cache/revelo``.

    Returns
    -------
    The folder (it may not exist yet; the loaders create it when they download a file).
    """
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache).expanduser() / "revelo"


class RevelosSettings:
    """Package-wide settings, available as ``revelo.settings``.

    Attributes
    ----------
    seed
        Random seed for torch, numpy and Python; setting it sets ``scvi.settings.seed``.
    data_dir
        Folder where the data set loaders look for ``.h5ad`` files before downloading, and where
        downloads are stored. Unless set here, the environment variable ``REVELO_DATA_DIR``
        names it, else the per-user cache ``$XDG_CACHE_HOME/revelo`` (``~/.cache/revelo``).
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
        """Folder holding (or receiving) data set files; `None` restores the default."""
        if self._data_dir is not None:
            return self._data_dir
        env = os.environ.get(DATA_DIR_VARIABLE)
        if env:
            return Path(env).expanduser()
        return default_data_dir()

    @data_dir.setter
    def data_dir(self, value: str | os.PathLike | None) -> None:
        self._data_dir = None if value is None else Path(value)

    def __repr__(self) -> str:
        return f"revelo.settings(seed={self.seed}, data_dir={str(self.data_dir)!r})"


settings = RevelosSettings()
