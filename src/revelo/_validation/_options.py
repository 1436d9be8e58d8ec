"""Checks of the model's options: likelihood, time mode, architecture and training."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from revelo._constants import LIKELIHOODS, TIME_MODES

# Checkpoint names that lightning resolves itself instead of reading a path.
_LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def check_model_params(
    *,
    n_hidden: int,
    n_latent: int,
    n_layers: int,
    dropout_rate: float,
    t_max: float,
    n_branches: int = 1,
) -> None:
    """Check the architecture options of :class:`~revelo.REVELO`.

    Parameters
    ----------
    n_hidden
        Units per hidden layer.
    n_latent
        Latent dimension.
    n_layers
        Hidden layers.
    dropout_rate
        Encoder dropout.
    t_max
        Length of the latent time axis.
    n_branches
        Number of kinetic branches.

    Raises
    ------
    ValueError
        When a value is out of range.
    """
    for name, value in (
        ("n_hidden", n_hidden),
        ("n_latent", n_latent),
        ("n_layers", n_layers),
        ("n_branches", n_branches),
    ):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            msg = f"{name} must be a positive integer, got {value!r}."
            raise ValueError(msg)
    if not 0 <= dropout_rate < 1:
        msg = f"dropout_rate must be in [0, 1), got {dropout_rate!r}."
        raise ValueError(msg)
    if not (math.isfinite(t_max) and t_max > 0):
        msg = f"t_max must be a positive finite number, got {t_max!r}."
        raise ValueError(msg)


def check_train_params(
    n_obs: int,
    *,
    max_epochs: int | None,
    lr: float,
    train_size: float,
    validation_size: float | None,
    batch_size: int | None,
    ckpt_path: str | None,
) -> None:
    """Check the options of :meth:`~revelo.REVELO.train` against the number of cells.

    The split is computed by :func:`split_sizes`, as the training data module does.

    Parameters
    ----------
    n_obs
        Number of registered cells.
    max_epochs
        Passes through the data.
    lr
        Learning rate.
    train_size
        Fraction of cells for training.
    validation_size
        Fraction for validation; ``None`` for the rest.
    batch_size
        Minibatch size.
    ckpt_path
        Lightning checkpoint to resume from.

    Raises
    ------
    ValueError
        When an option is out of range, or the split leaves no training cell, or no validation
        cell although validation was asked for.
    FileNotFoundError
        When ``ckpt_path`` is neither a file nor one of lightning's names (``"last"``, …).
    """
    if max_epochs is not None and (not isinstance(max_epochs, int | np.integer) or max_epochs < 1):
        msg = f"max_epochs must be a positive integer or None, got {max_epochs!r}."
        raise ValueError(msg)
    if not (math.isfinite(lr) and lr > 0):
        msg = f"lr must be a positive finite number, got {lr!r}."
        raise ValueError(msg)
    if batch_size is not None and (not isinstance(batch_size, int | np.integer) or batch_size < 1):
        msg = f"batch_size must be a positive integer or None, got {batch_size!r}."
        raise ValueError(msg)
    val = 1.0 - train_size if validation_size is None else validation_size
    _, n_val = split_sizes(n_obs, train_size, validation_size)
    if val > 0 and n_val == 0:
        needed = math.ceil(1 / val)
        msg = (
            f"With {n_obs} cells, validation_size={val:.3g} leaves no validation cell (at least "
            f"{needed} cells are needed). Use more cells, a larger validation_size, or "
            "train_size=1.0 to train without validation (and without early stopping)."
        )
        raise ValueError(msg)
    if ckpt_path is not None and str(ckpt_path) not in _LIGHTNING_CKPT_NAMES:
        if not Path(ckpt_path).is_file():
            msg = (
                f"Checkpoint {str(ckpt_path)!r} does not exist. Pass a .ckpt file written by "
                "`train(enable_checkpointing=True, checkpoint_dir=...)`, e.g. "
                "`<checkpoint_dir>/last.ckpt`."
            )
            raise FileNotFoundError(msg)


def split_sizes(n_obs: int, train_size: float, validation_size: float | None) -> tuple[int, int]:
    """Numbers of training and validation cells for a split of ``n_obs`` cells.

    Parameters
    ----------
    n_obs
        Number of cells.
    train_size
        Fraction of cells for training (rounded up).
    validation_size
        Fraction for validation (rounded down, at most what training leaves); ``None`` for the
        rest.

    Returns
    -------
    ``(n_train, n_validation)``; the remaining cells form the test set.

    Raises
    ------
    ValueError
        When the fractions are out of range or sum to more than 1.
    """
    val = 1.0 - train_size if validation_size is None else validation_size
    if not (0 < train_size <= 1 and 0 <= val and train_size + val <= 1 + 1e-9):
        msg = (
            f"train_size={train_size} and validation_size={validation_size} must be fractions "
            "with train_size > 0 and a sum of at most 1."
        )
        raise ValueError(msg)
    n_train = math.ceil(train_size * n_obs)
    return n_train, min(math.floor(val * n_obs), n_obs - n_train)


def check_choice(option: str, value: object, choices: tuple[str, ...]) -> None:
    """Raise a ``ValueError`` naming the choices unless ``value`` is one of them.

    Parameters
    ----------
    option
        The option's name, quoted by the message.
    value
        The value given.
    choices
        The values allowed.
    """
    if value not in choices:
        msg = f"{option}={value!r} is not one of {', '.join(map(repr, choices))}."
        raise ValueError(msg)


def check_likelihood(likelihood: str) -> None:
    """Raise a ``ValueError`` naming the choices unless ``likelihood`` is one of them."""
    check_choice("likelihood", likelihood, LIKELIHOODS)


def check_time_mode(time_mode: str) -> None:
    """Raise a ``ValueError`` naming the choices unless ``time_mode`` is one of them."""
    check_choice("time_mode", time_mode, TIME_MODES)
