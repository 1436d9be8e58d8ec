"""Checks of :meth:`revelo.REVELO.train`'s numeric options, accelerator and checkpoint."""

from __future__ import annotations

import math
from numbers import Real
from pathlib import Path

import numpy as np
import torch

from ._model_state import check_positive_int


def _number(name: str, value: object, *, minimum: float, none: bool = False) -> None:
    """Raise unless ``value`` is a finite real number of at least ``minimum``."""
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, Real):
        msg = f"{name} must be a number, got {value!r} ({type(value).__name__})."
        raise TypeError(msg)
    if not (math.isfinite(value) and value >= minimum):
        msg = f"{name} must be a finite number of at least {minimum}, got {value!r}."
        raise ValueError(msg)


def check_training_options(
    *,
    train_size: object,
    validation_size: object,
    weight_decay: object,
    early_stopping_patience: object,
    gradient_clip_val: object,
    n_epochs_kl_warmup: object,
    kl_weight: object,
    free_bits: object,
    accelerator: object,
) -> None:
    """Check the types and ranges of the options of :meth:`~revelo.REVELO.train`.

    The split fractions are checked against the number of cells afterwards, by
    :func:`~revelo._validation.check_train_params`.

    Parameters
    ----------
    train_size
        Fraction of cells for training.
    validation_size
        Fraction for validation, or ``None``.
    weight_decay
        AdamW weight decay.
    early_stopping_patience
        Epochs without improvement before stopping.
    gradient_clip_val
        Gradient norm clip.
    n_epochs_kl_warmup
        Epochs of the KL warm-up, or ``None``.
    kl_weight
        Final weight of the KL term.
    free_bits
        Floor on each latent dimension's KL.
    accelerator
        Lightning's accelerator name.

    Raises
    ------
    TypeError
        When a number is given as another type (e.g. a string).
    ValueError
        When a number is out of range, or a GPU is asked for where torch sees none.
    """
    _number("train_size", train_size, minimum=0.0)
    _number("validation_size", validation_size, minimum=0.0, none=True)
    for name, value in (
        ("weight_decay", weight_decay),
        ("gradient_clip_val", gradient_clip_val),
        ("kl_weight", kl_weight),
        ("free_bits", free_bits),
    ):
        _number(name, value, minimum=0.0)
    check_positive_int("early_stopping_patience", early_stopping_patience, minimum=1)
    check_positive_int("n_epochs_kl_warmup", n_epochs_kl_warmup, minimum=1, none=True)
    check_accelerator(accelerator)


def check_accelerator(accelerator: object) -> None:
    """Raise when ``accelerator`` asks for a GPU that torch cannot use.

    Parameters
    ----------
    accelerator
        ``"cpu"``, ``"gpu"``, ``"cuda"``, ``"auto"``, … as in lightning.
    """
    if isinstance(accelerator, str) and accelerator.lower() in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            msg = (
                f"accelerator={accelerator!r} asks for a CUDA GPU, but torch sees none "
                "(torch.cuda.is_available() is False: no GPU, no driver, or a CPU-only torch). "
                "Use accelerator='cpu' (or 'auto'), or install a CUDA build of torch."
            )
            raise ValueError(msg)


def check_checkpoint_matches(
    checkpoint_state: dict[str, torch.Tensor], module_state: dict[str, torch.Tensor], path: str
) -> None:
    """Raise when a lightning checkpoint's weights do not fit the model's module.

    Parameters
    ----------
    checkpoint_state
        The checkpoint's ``state_dict`` (keys prefixed ``module.`` by the training plan).
    module_state
        The model's ``module.state_dict()``.
    path
        The checkpoint's path, quoted by the message.

    Raises
    ------
    ValueError
        Naming the first weight that is missing or of another shape.
    """
    saved = {
        key.removeprefix("module."): value
        for key, value in checkpoint_state.items()
        if key.startswith("module.")
    }
    problem = None
    missing = sorted(set(module_state) - set(saved))
    extra = sorted(set(saved) - set(module_state))
    if missing or extra:
        problem = f"weights {(missing or extra)[:3]} are {'missing' if missing else 'unexpected'}"
    else:
        for key, value in module_state.items():
            if tuple(np.shape(saved[key])) != tuple(value.shape):
                problem = (
                    f"weight {key!r} has shape {tuple(np.shape(saved[key]))} in the checkpoint "
                    f"but {tuple(value.shape)} in this model"
                )
                break
    if problem is not None:
        msg = (
            f"Checkpoint {path!r} was written by another model: {problem}. Resume with a "
            "model built with the same options on the same genes (and covariates) as the one "
            "that wrote it, or train this one without ckpt_path."
        )
        raise ValueError(msg)


def check_checkpoint(module_state: dict[str, torch.Tensor], ckpt_path: str | Path) -> None:
    """Raise when ``ckpt_path`` is unreadable, not a lightning checkpoint, or of another model.

    Lightning's names (``"last"``, …) and missing files are left to
    :func:`~revelo._validation.check_train_params`.

    Parameters
    ----------
    module_state
        The model's ``module.state_dict()``.
    ckpt_path
        The checkpoint given to :meth:`~revelo.REVELO.train`.
    """
    path = Path(str(ckpt_path))
    if not path.is_file():
        return
    try:
        # The user's own file, as lightning itself reads it on resume.
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as error:  # any failure to read means the same to the user
        msg = (
            f"Checkpoint {str(path)!r} cannot be read ({type(error).__name__}: {error}); it is "
            "damaged or not a checkpoint. Pass a .ckpt file written by `train("
            "enable_checkpointing=True, checkpoint_dir=...)`."
        )
        raise ValueError(msg) from error
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        msg = (
            f"{str(path)!r} is not a lightning checkpoint (it has no 'state_dict'). Pass a .ckpt "
            "file written by `train(enable_checkpointing=True, checkpoint_dir=...)`, not a "
            "folder or file written by `model.save`."
        )
        raise ValueError(msg)
    check_checkpoint_matches(state, module_state, str(path))
