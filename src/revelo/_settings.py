"""Global settings: random seed, verbosity and where real data sets are read from."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

# Libraries' informational records that say nothing a user must act on ("Seed set to 0", the
# logger tips, "File ... already downloaded"); their warnings and errors still pass.
CHATTY_LOGGERS = (
    "lightning.fabric.utilities.seed",
    "lightning.fabric.utilities.rank_zero",
    "lightning.pytorch.utilities.rank_zero",
    "lightning.pytorch.callbacks.early_stopping",
    "lightning_utilities.core.rank_zero",
    "scvi.data._download",
    "scvi.model.base._save_load",
)
_LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}


class _StderrHandler(logging.Handler):
    """Write revelo's records to the ``sys.stderr`` of the moment (notebooks replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
            sys.stderr.flush()
        except Exception:  # logging must never raise
            self.handleError(record)


def apply_verbosity(level: int) -> None:
    """Set revelo's logger to ``level``; let libraries' chatter through only at ``DEBUG``."""
    logger = logging.getLogger("revelo")
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        logger.addHandler(_StderrHandler())
        logger.propagate = False
    logger.setLevel(level)
    chatty = logging.NOTSET if level <= logging.DEBUG else logging.WARNING
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(chatty)


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
    verbosity
        How much revelo reports on ``stderr``: ``"error"``, ``"warning"``, ``"info"`` (the
        default: progress, summaries and what preprocessing removed) or ``"debug"``, which also
        lets lightning's and scvi-tools' informational messages through; a :mod:`logging` level
        (e.g. ``logging.DEBUG``) works too.
    data_dir
        Folder where the data set loaders look for ``.h5ad`` files before downloading, and where
        downloads are stored. Unless set here, the environment variable ``REVELO_DATA_DIR``
        names it, else the per-user cache ``$XDG_CACHE_HOME/revelo`` (``~/.cache/revelo``).
    n_jobs
        Number of threads revelo's calls may use: torch's pool is set to it, and during every
        preprocessing step, graph, training run and query the pools of numba and of the
        BLAS/OpenMP libraries are held to it too (and put back afterwards). Defaults to the
        CPUs this process may use (its affinity mask), capped by ``OMP_NUM_THREADS`` when that
        is set; `None` restores the default.
    """

    def __init__(self) -> None:
        self._data_dir: Path | None = None
        self._n_jobs: int | None = None
        self._verbosity = logging.INFO
        apply_verbosity(self._verbosity)

    @property
    def seed(self) -> int | None:
        """Random seed shared with scvi-tools."""
        import scvi

        return scvi.settings.seed

    @seed.setter
    def seed(self, value: int | None) -> None:
        import scvi

        scvi.settings.seed = value

    @property
    def verbosity(self) -> int:
        """The :mod:`logging` level of revelo's messages."""
        return self._verbosity

    @verbosity.setter
    def verbosity(self, value: int | str) -> None:
        if isinstance(value, str) and value.lower() in _LEVELS:
            value = _LEVELS[value.lower()]
        if isinstance(value, bool) or not isinstance(value, int):
            msg = (
                f"verbosity={value!r} is not a level; pass one of {sorted(_LEVELS)} or a "
                "logging level such as logging.DEBUG."
            )
            raise ValueError(msg)
        self._verbosity = value
        apply_verbosity(value)

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

    @property
    def n_jobs(self) -> int:
        """Number of threads for torch, numba and BLAS during revelo's calls."""
        from revelo._threads import default_n_jobs

        return default_n_jobs() if self._n_jobs is None else self._n_jobs

    @n_jobs.setter
    def n_jobs(self, value: int | None) -> None:
        from revelo._threads import check_n_jobs

        self._n_jobs = None if value is None else check_n_jobs(value)
        if "torch" in sys.modules:
            sys.modules["torch"].set_num_threads(self.n_jobs)

    def __repr__(self) -> str:
        return (
            f"revelo.settings(seed={self.seed}, verbosity={logging.getLevelName(self.verbosity)!r}"
            f", data_dir={str(self.data_dir)!r}, n_jobs={self.n_jobs})"
        )


settings = RevelosSettings()
