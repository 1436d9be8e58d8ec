"""Checks of expression layers: presence, shape, dtype and values.

Sparse checks look at the stored values only, so nothing is densified.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from ._hints import HINT_VELOCITY

if TYPE_CHECKING:
    from anndata import AnnData


def check_layer(adata: AnnData, key: str, hint: str = HINT_VELOCITY) -> None:
    """Raise when ``adata.layers`` lacks ``key`` written by an earlier step.

    Parameters
    ----------
    adata
        Annotated data matrix.
    key
        Key in ``adata.layers``.
    hint
        The call that writes the layer, e.g. :data:`HINT_VELOCITY`.

    Raises
    ------
    KeyError
        Naming the call to make first.
    """
    if key not in adata.layers:
        msg = f"adata.layers has no {key!r}: {hint}."
        raise KeyError(msg)


def check_layers(adata: AnnData, layers: Sequence[str], *, counts: bool = False) -> None:
    """Check that layers exist and hold finite, non-negative numbers.

    Parameters
    ----------
    adata
        Annotated data matrix.
    layers
        Keys in ``adata.layers`` to check.
    counts
        Also require integer values (raw counts; any numeric dtype is accepted as long as the
        values are whole numbers).

    Raises
    ------
    KeyError
        When a layer is missing.
    TypeError
        When a layer is not a numeric matrix, or is ``float16``.
    ValueError
        When a layer has the wrong shape, or holds NaN, infinite, negative or (with
        ``counts=True``) non-integer values.
    """
    for key in layers:
        if key not in adata.layers:
            present = ", ".join(repr(k) for k in adata.layers) or "none"
            msg = f"Layer {key!r} is missing; the layers present are: {present}. {_fix(key)}"
            raise KeyError(msg)
        _check_matrix(adata.layers[key], key, adata, counts=counts)


def _fix(key: str) -> str:
    """How to get the missing layer ``key``."""
    if key in ("Ms", "Mu"):
        return (
            "The moments Ms/Mu are written by `adata = revelo.pp.preprocess(adata)` from raw "
            "spliced/unspliced counts; register the AnnData it returns. Or model the raw counts "
            "directly with a count likelihood: `REVELO.setup_anndata(adata, 'spliced', "
            "'unspliced')`, then `REVELO(adata, likelihood='nb')` (or 'poisson')."
        )
    return (
        f"Store the matrix with `adata.layers[{key!r}] = ...` (e.g. from velocyto, STARsolo or "
        "alevin-fry spliced/unspliced output)."
    )


def warn_gaussian_on_counts(
    adata: AnnData, *, likelihood: str, spliced_layer: str, unspliced_layer: str
) -> None:
    """Warn when the Gaussian likelihood is asked to model raw integer counts.

    The Gaussian likelihood is made for the scaled moments ``Ms``/``Mu`` (values in [0, 1]);
    on raw counts it trains without error but fits badly. Layers are taken for counts when
    every stored value is a whole number and some exceed 1.

    Parameters
    ----------
    adata
        Annotated data matrix.
    likelihood
        The model's likelihood; only ``"gaussian"`` is checked.
    spliced_layer
        Key of the registered spliced layer.
    unspliced_layer
        Key of the registered unspliced layer.

    Warns
    -----
    UserWarning
        Naming :func:`revelo.pp.preprocess` and ``likelihood="nb"`` as the two ways out.
    """
    if likelihood != "gaussian":
        return
    layers = (spliced_layer, unspliced_layer)
    if not all(_holds_counts(adata.layers[key]) for key in layers):
        return
    msg = (
        f"Layers {spliced_layer!r} and {unspliced_layer!r} hold raw integer counts, but the "
        "Gaussian likelihood models the scaled moments Ms/Mu and fits counts badly. Run "
        "`adata = revelo.pp.preprocess(adata)` and `REVELO.setup_anndata(adata)` (moments), "
        'or keep the counts and model them with `REVELO(adata, likelihood="nb")` (or '
        '"poisson").'
    )
    warnings.warn(msg, UserWarning, stacklevel=3)


def _holds_counts(matrix) -> bool:
    values = matrix.data if sparse.issparse(matrix) else np.asarray(matrix)
    if values.size == 0:
        return False
    if np.issubdtype(values.dtype, np.floating) and not np.array_equal(values, np.round(values)):
        return False
    return bool(values.max() > 1)


def check_spliced_unspliced(
    adata: AnnData,
    *,
    spliced_layer: str = "spliced",
    unspliced_layer: str = "unspliced",
    counts: bool = True,
) -> None:
    """Check the spliced and unspliced layers together.

    Parameters
    ----------
    adata
        Annotated data matrix.
    spliced_layer
        Key of the spliced layer.
    unspliced_layer
        Key of the unspliced layer.
    counts
        Require raw (integer) counts.

    Raises
    ------
    KeyError, TypeError, ValueError
        As :func:`check_layers`; also ``TypeError`` when the two layers have different dtypes
        and ``ValueError`` when they have different shapes.
    """
    check_layers(adata, [spliced_layer, unspliced_layer], counts=counts)
    spliced = adata.layers[spliced_layer]
    unspliced = adata.layers[unspliced_layer]
    if spliced.shape != unspliced.shape:
        msg = (
            f"Layers {spliced_layer!r} {spliced.shape} and {unspliced_layer!r} "
            f"{unspliced.shape} differ in shape; both must be cells × genes of the same AnnData."
        )
        raise ValueError(msg)
    if spliced.dtype != unspliced.dtype:
        msg = (
            f"Layers {spliced_layer!r} ({spliced.dtype}) and {unspliced_layer!r} "
            f"({unspliced.dtype}) differ in dtype. Cast one to the other's dtype, e.g. "
            f"`adata.layers[{unspliced_layer!r}] = "
            f"adata.layers[{unspliced_layer!r}].astype({str(spliced.dtype)!r})`."
        )
        raise TypeError(msg)


def empty_cells_and_genes(
    adata: AnnData, layers: Sequence[str] = ("spliced", "unspliced")
) -> tuple[np.ndarray, np.ndarray]:
    """Find cells and genes without a single count in any of ``layers``.

    The layers must be non-negative (run :func:`check_layers` first).

    Parameters
    ----------
    adata
        Annotated data matrix.
    layers
        Keys in ``adata.layers`` to sum over.

    Returns
    -------
    Boolean masks ``(empty_cells, empty_genes)`` of lengths ``n_obs`` and ``n_vars``.
    """
    cell_totals = np.zeros(adata.n_obs)
    gene_totals = np.zeros(adata.n_vars)
    for key in layers:
        matrix = adata.layers[key]
        cell_totals += np.asarray(matrix.sum(axis=1)).ravel()
        gene_totals += np.asarray(matrix.sum(axis=0)).ravel()
    return cell_totals == 0, gene_totals == 0


def _check_matrix(matrix, key: str, adata: AnnData, *, counts: bool) -> None:
    """Check one matrix; ``key`` and ``adata`` are only used to write messages."""
    if matrix.shape != (adata.n_obs, adata.n_vars):
        msg = (
            f"Layer {key!r} has shape {matrix.shape} but the AnnData is "
            f"{adata.n_obs} cells × {adata.n_vars} genes; store a cells × genes matrix."
        )
        raise ValueError(msg)
    dtype = np.dtype(matrix.dtype)
    if dtype == np.float16:
        msg = (
            f"Layer {key!r} is float16, too imprecise for revelo. Cast it with "
            f"`adata.layers[{key!r}] = adata.layers[{key!r}].astype('float32')`."
        )
        raise TypeError(msg)
    if not (np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating)):
        if np.issubdtype(dtype, np.bool_):
            kind = "boolean"
        else:
            kind = str(dtype)
        msg = (
            f"Layer {key!r} has dtype {kind}; revelo needs an integer or float matrix. "
            "Cast it with `.astype('float32')`."
        )
        raise TypeError(msg)

    rows, cols, values = _stored_entries(matrix)
    floating = np.issubdtype(dtype, np.floating)
    checks = [("negative", values < 0)]
    if floating:
        checks.insert(0, ("NaN", np.isnan(values)))
        checks.insert(1, ("infinite", np.isinf(values)))
        if counts:
            checks.append(("non-integer", np.isfinite(values) & (values != np.round(values))))
    for what, bad in checks:
        n_bad = int(np.count_nonzero(bad))
        if n_bad == 0:
            continue
        first = int(np.flatnonzero(bad)[0])
        cell = adata.obs_names[int(rows(first))]
        gene = adata.var_names[int(cols(first))]
        where = f"first at cell {cell!r}, gene {gene!r}"
        if what == "non-integer":
            fix = (
                "revelo needs raw counts here: pass the unnormalized spliced/unspliced counts, "
                "not normalized or log-transformed values"
            )
        elif what == "negative":
            fix = "counts cannot be negative: pass the raw, uncorrected counts"
        else:
            fix = f"remove or replace the {what} values (e.g. with 0) before calling revelo"
        msg = f"Layer {key!r} has {n_bad} {what} entries ({where}); {fix}."
        raise ValueError(msg)


def _stored_entries(matrix):
    """Return ``(row_of, col_of, values)`` for the stored entries of a dense or sparse matrix.

    ``row_of`` and ``col_of`` map a position in ``values`` to its cell and gene index; they are
    only evaluated for the first offending entry, so nothing is densified or expanded.
    """
    if sparse.issparse(matrix):
        if matrix.format not in ("csr", "csc"):
            matrix = sparse.csr_matrix(matrix)
        indptr, indices = matrix.indptr, matrix.indices

        def major(i: int) -> int:
            return int(np.searchsorted(indptr, i, side="right") - 1)

        def minor(i: int) -> int:
            return int(indices[i])

        if matrix.format == "csr":
            return major, minor, matrix.data
        return minor, major, matrix.data
    array = np.asarray(matrix)
    n_cols = array.shape[1]
    return (lambda i: i // n_cols), (lambda i: i % n_cols), array.ravel()
