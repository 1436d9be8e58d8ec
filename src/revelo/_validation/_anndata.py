"""Checks of an AnnData as a whole: in memory, unique names, registrable, same genes."""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Number
from typing import TYPE_CHECKING

import numpy as np

from ._layers import check_spliced_unspliced

if TYPE_CHECKING:
    from anndata import AnnData


def check_not_backed(adata: AnnData) -> None:
    """Raise if ``adata`` is opened in backed mode.

    Parameters
    ----------
    adata
        Annotated data matrix.

    Raises
    ------
    ValueError
        When ``adata.isbacked`` is true.
    """
    if adata.isbacked:
        msg = (
            f"The AnnData is opened in backed mode ({adata.filename}); revelo needs it in "
            "memory. Load it with `adata = adata.to_memory()` first."
        )
        raise ValueError(msg)


def check_unique_names(adata: AnnData) -> None:
    """Raise if cell or gene names are duplicated.

    Parameters
    ----------
    adata
        Annotated data matrix.

    Raises
    ------
    ValueError
        When ``obs_names`` or ``var_names`` hold duplicates.
    """
    for axis, names, fix in (
        ("obs_names", adata.obs_names, "adata.obs_names_make_unique()"),
        ("var_names", adata.var_names, "adata.var_names_make_unique()"),
    ):
        if not names.is_unique:
            duplicated = names[names.duplicated()].unique()
            shown = ", ".join(repr(name) for name in duplicated[:5])
            msg = (
                f"{len(duplicated)} {axis} are duplicated (e.g. {shown}). "
                f"Make them unique with `{fix}` first."
            )
            raise ValueError(msg)


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
    if spliced_layer == unspliced_layer:
        msg = (
            f"spliced_layer and unspliced_layer are both {spliced_layer!r}; the model needs "
            "the two abundances from two layers, e.g. spliced_layer='Ms', unspliced_layer='Mu'."
        )
        raise ValueError(msg)
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
    TypeError
        When the covariate keys are a string instead of a list, or a categorical column mixes
        value types.
    ValueError
        When a column has missing values, a categorical column holds fractional numbers, a
        continuous covariate or size factor is not numeric or not finite, or a size factor is
        not positive.
    """
    for option, keys in (
        ("categorical_covariate_keys", categorical_covariate_keys),
        ("continuous_covariate_keys", continuous_covariate_keys),
    ):
        if isinstance(keys, str):
            msg = f"{option} must be a list of obs columns, e.g. {option}=[{keys!r}]."
            raise TypeError(msg)
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
        _check_categories(adata.obs[key], key)
    for key in numerical:
        values = np.asarray(adata.obs[key])
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            msg = f"adata.obs[{key!r}] must be numeric and finite in every cell."
            raise ValueError(msg)
    if size_factor_key is not None and (np.asarray(adata.obs[size_factor_key]) <= 0).any():
        msg = f"adata.obs[{size_factor_key!r}] holds size factors that are not positive."
        raise ValueError(msg)


def _check_categories(column, key: str) -> None:
    """Raise when a categorical covariate mixes value types or is a continuous measurement."""
    values = column.cat.categories if hasattr(column, "cat") else column.unique()
    types = {_kind(value) for value in values}
    if len(types) > 1:
        msg = (
            f"adata.obs[{key!r}] mixes value types ({', '.join(sorted(types))}); make them one "
            f"type, e.g. `adata.obs[{key!r}] = adata.obs[{key!r}].astype(str)`."
        )
        raise TypeError(msg)
    numbers = np.asarray(values)
    if np.issubdtype(numbers.dtype, np.floating) and (numbers != np.round(numbers)).any():
        msg = (
            f"adata.obs[{key!r}] holds fractional numbers ({len(numbers)} distinct values), "
            "which would make each value a batch of its own. Register a measurement like this "
            "with continuous_covariate_keys; if it does label batches, convert it with "
            f"`adata.obs[{key!r}] = adata.obs[{key!r}].astype(str)`."
        )
        raise ValueError(msg)


def _kind(value: object) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    return "number" if isinstance(value, Number) else type(value).__name__


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
