"""Model-side input checks: registration, model options, training options, loading.

Each check raises before any training starts, with a message that names the problem and the
fix; none of them modifies its input.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from revelo._validate import check_not_backed, check_spliced_unspliced, check_unique_names

if TYPE_CHECKING:
    from anndata import AnnData

# Checkpoint names that lightning resolves itself instead of reading a path.
_LIGHTNING_CKPT_NAMES = ("last", "best", "hpc", "registry")


def check_registrable(adata: AnnData, spliced_layer: str, unspliced_layer: str) -> None:
    """Check an AnnData before :meth:`~revelo.REVELO.setup_anndata` registers it.

    Parameters
    ----------
    adata
        Annotated data matrix.
    spliced_layer
        Key of the spliced layer.
    unspliced_layer
        Key of the unspliced layer.

    Raises
    ------
    KeyError
        When a layer is missing.
    TypeError
        When ``adata`` is not an AnnData, or a layer is float16, non-numeric, or the two layers
        differ in dtype.
    ValueError
        When ``adata`` is a view or backed, names are duplicated, or a layer has the wrong
        shape or NaN, infinite or negative values.
    """
    from anndata import AnnData

    if not isinstance(adata, AnnData):
        msg = f"Expected an AnnData, got {type(adata).__name__}."
        raise TypeError(msg)
    if adata.is_view:
        # scvi-tools refuses views too; a copy makes explicit that results land in a new object.
        msg = (
            "The AnnData is a view (e.g. `adata[cells, genes]`), which cannot hold the model's "
            "registration. Make it an AnnData of its own with `adata = adata.copy()` first."
        )
        raise ValueError(msg)
    check_not_backed(adata)
    check_unique_names(adata)
    check_spliced_unspliced(
        adata, spliced_layer=spliced_layer, unspliced_layer=unspliced_layer, counts=False
    )
    if adata.n_obs < 2 or adata.n_vars < 1:
        msg = (
            f"The AnnData has {adata.n_obs} cells × {adata.n_vars} genes; the model needs at "
            "least 2 cells and 1 gene."
        )
        raise ValueError(msg)


def check_covariates(
    adata: AnnData,
    *,
    batch_key: str | None,
    categorical_covariate_keys: Sequence[str] | None,
    continuous_covariate_keys: Sequence[str] | None,
    size_factor_key: str | None,
) -> None:
    """Check the ``obs`` columns that :meth:`~revelo.REVELO.setup_anndata` registers.

    Raises
    ------
    KeyError
        When a column is missing (the message lists the columns present).
    ValueError
        When a column has missing values, a continuous covariate or size factor is not
        numeric or not finite, or a size factor is not positive.
    """
    categorical = ([batch_key] if batch_key is not None else []) + list(
        categorical_covariate_keys or []
    )
    numerical = list(continuous_covariate_keys or []) + (
        [size_factor_key] if size_factor_key is not None else []
    )
    for key in categorical + numerical:
        if key not in adata.obs:
            msg = (
                f"adata.obs has no column {key!r} to register as a covariate; the columns are "
                f"{list(adata.obs.columns)}."
            )
            raise KeyError(msg)
    for key in categorical:
        if adata.obs[key].isna().any():
            msg = (
                f"adata.obs[{key!r}] has missing values; give those cells a category of their "
                "own (e.g. 'unknown') or drop them."
            )
            raise ValueError(msg)
    for key in numerical:
        values = np.asarray(adata.obs[key])
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            msg = f"adata.obs[{key!r}] must be numeric and finite in every cell."
            raise ValueError(msg)
    if size_factor_key is not None and (np.asarray(adata.obs[size_factor_key]) <= 0).any():
        msg = f"adata.obs[{size_factor_key!r}] holds size factors that are not positive."
        raise ValueError(msg)


def check_model_params(
    *, n_hidden: int, n_latent: int, n_layers: int, dropout_rate: float, t_max: float
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

    Raises
    ------
    ValueError
        When a value is out of range.
    """
    for name, value in (("n_hidden", n_hidden), ("n_latent", n_latent), ("n_layers", n_layers)):
        if not isinstance(value, int | np.integer) or value < 1:
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

    The split is computed exactly as :class:`~revelo.model._data.TensorDataSplitter` does.

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
    if not (0 < train_size <= 1 and 0 <= val and train_size + val <= 1 + 1e-9):
        msg = (
            f"train_size={train_size} and validation_size={validation_size} must be fractions "
            "with train_size > 0 and a sum of at most 1."
        )
        raise ValueError(msg)
    n_train = math.ceil(train_size * n_obs)
    n_val = min(math.floor(val * n_obs), n_obs - n_train)
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


def check_same_genes(saved: Sequence[str], names: Sequence[str]) -> None:
    """Raise if an AnnData's genes differ from the ones a model was trained on.

    Parameters
    ----------
    saved
        The model's gene names, in order.
    names
        The AnnData's gene names.

    Raises
    ------
    ValueError
        Naming the missing and unexpected genes, or the first position where the order differs.
    """
    saved = [str(name) for name in saved]
    names = [str(name) for name in names]
    if saved == names:
        return
    saved_set, names_set = set(saved), set(names)
    missing = [name for name in saved if name not in names_set]
    extra = [name for name in names if name not in saved_set]
    parts = []
    if missing:
        parts.append(f"{len(missing)} of the model's genes are missing ({_show(missing)})")
    if extra:
        parts.append(f"{len(extra)} genes are not in the model ({_show(extra)})")
    if not parts:
        first = next(i for i, (a, b) in enumerate(zip(saved, names)) if a != b)
        parts.append(
            f"the genes are in another order (position {first}: model {saved[first]!r}, "
            f"AnnData {names[first]!r})"
        )
    msg = (
        f"The AnnData's genes differ from the {len(saved)} genes the model was trained on: "
        f"{'; '.join(parts)}. Subset and order them with `adata = adata[:, model_genes].copy()`"
        " (model_genes from the training data's var_names)."
    )
    raise ValueError(msg)


def _show(names: list[str], n: int = 5) -> str:
    shown = ", ".join(repr(name) for name in names[:n])
    return shown + (", …" if len(names) > n else "")
