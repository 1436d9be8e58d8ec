"""Checks of a model's state and of the arguments of its queries.

A query (``get_*``, ``add_outputs``) needs a trained model, an AnnData with the model's genes in
the model's order and finite registered layers, cell positions inside that AnnData, and
positive minibatch and draw counts; :meth:`revelo.REVELO.train` needs the cells the model was
built on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ._anndata import check_same_genes
from ._layers import check_layers

if TYPE_CHECKING:
    from anndata import AnnData


class NotTrainedError(RuntimeError):
    """A query was made on a model that has not been trained (or whose training failed)."""


def check_trained(is_trained: bool, action: str) -> None:
    """Raise :class:`NotTrainedError` unless the model is trained.

    Parameters
    ----------
    is_trained
        The model's ``is_trained_``.
    action
        What was asked, quoted by the message (e.g. ``"get_velocity"``).
    """
    if not is_trained:
        msg = (
            f"{action} needs a trained model, and this one is not trained (or its last "
            "training failed). Call `model.train()` first, or load a trained model with "
            "`revelo.REVELO.load(folder, adata)`."
        )
        raise NotTrainedError(msg)


def check_query_anndata(
    adata: AnnData, model_genes: Sequence[str], spliced_layer: str, unspliced_layer: str
) -> None:
    """Check an AnnData about to be queried: the model's genes, in order, and finite layers.

    Parameters
    ----------
    adata
        The AnnData of the query.
    model_genes
        The genes the model was built on, in order.
    spliced_layer
        Key of the registered spliced layer.
    unspliced_layer
        Key of the registered unspliced layer.

    Raises
    ------
    ValueError
        When the genes differ in names or order (the message names them), or a layer holds
        NaN, infinite or negative values.
    KeyError
        When a registered layer is missing.
    """
    check_same_genes(model_genes, adata.var_names)
    check_layers(adata, [spliced_layer, unspliced_layer])


def check_indices(indices: Sequence[int] | np.ndarray | None, n_obs: int) -> np.ndarray:
    """Cell positions from ``indices``: integer positions, or a boolean mask over the cells.

    Parameters
    ----------
    indices
        Positions in ``[0, n_obs)``, a boolean mask of length ``n_obs``, or ``None`` for all.
    n_obs
        Number of cells of the AnnData queried.

    Returns
    -------
    The positions as an integer array.

    Raises
    ------
    ValueError
        When ``indices`` is empty, a mask of another length or selecting no cell, or holds
        positions outside ``[0, n_obs)``.
    TypeError
        When ``indices`` holds neither integers nor booleans.
    """
    if indices is None:
        return np.arange(n_obs)
    positions = np.asarray(indices).ravel()
    if positions.dtype == bool:
        if len(positions) != n_obs:
            msg = (
                f"The boolean indices mask has {len(positions)} entries but the AnnData has "
                f"{n_obs} cells; pass one entry per cell, or integer positions."
            )
            raise ValueError(msg)
        positions = np.flatnonzero(positions)
    elif len(positions) and not np.issubdtype(positions.dtype, np.integer):
        msg = (
            f"indices must be integer positions or a boolean mask, got dtype {positions.dtype}. "
            "For cell names use `np.flatnonzero(adata.obs_names.isin(names))`."
        )
        raise TypeError(msg)
    if len(positions) == 0:
        msg = "indices selects no cell; pass at least one position, or None for all cells."
        raise ValueError(msg)
    outside = (positions < 0) | (positions >= n_obs)
    if outside.any():
        msg = (
            f"indices holds {int(outside.sum())} positions outside [0, {n_obs}) (e.g. "
            f"{int(positions[outside][0])}); the AnnData has {n_obs} cells."
        )
        raise ValueError(msg)
    return positions.astype(np.int64)


def check_positive_int(name: str, value: object, *, minimum: int = 1, none: bool = False) -> None:
    """Raise unless ``value`` is an integer of at least ``minimum`` (or ``None`` if allowed).

    Parameters
    ----------
    name
        The option's name, quoted by the message.
    value
        The value given.
    minimum
        The smallest value allowed.
    none
        Whether ``None`` (the default of the option) is allowed.

    Raises
    ------
    TypeError
        When ``value`` is not an integer (booleans are not).
    ValueError
        When ``value`` is below ``minimum``.
    """
    if value is None and none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        msg = f"{name} must be an integer of at least {minimum}, got {value!r}."
        raise TypeError(msg)
    if value < minimum:
        msg = f"{name} must be at least {minimum}, got {value}."
        raise ValueError(msg)


def check_cells_unchanged(n_obs: int, n_obs_built: int) -> None:
    """Raise when the model's AnnData lost or gained cells after the model was built.

    Parameters
    ----------
    n_obs
        The number of cells the model's AnnData has now.
    n_obs_built
        The number it had when the model was built.
    """
    if n_obs != n_obs_built:
        msg = (
            f"The model's AnnData has {n_obs} cells now but had {n_obs_built} when the model "
            "was built; it was filtered in place afterwards. Filter first, then register and "
            "build a new model: `REVELO.setup_anndata(adata)`, `model = REVELO(adata)`."
        )
        raise ValueError(msg)
