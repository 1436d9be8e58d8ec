"""Checks of :func:`revelo.pp.preprocess`'s options and of its gene selection."""

from __future__ import annotations

from typing import NoReturn

import numpy as np

from ._model_state import check_positive_int


def check_n_top_genes(n_top_genes: object) -> None:
    """Raise unless ``n_top_genes`` is a positive integer or ``None``.

    Raises
    ------
    TypeError
        When it is not an integer.
    ValueError
        When it is 0 or negative (``None`` keeps every gene).
    """
    try:
        check_positive_int("n_top_genes", n_top_genes, none=True)
    except ValueError as error:
        msg = f"{error} Pass n_top_genes=None to keep every gene that passes the filters."
        raise ValueError(msg) from None


def raise_no_variable_genes(spliced, n_top_genes: int, error: Exception) -> NoReturn:
    """Turn a failure of the highly-variable-gene selection into an error that says why.

    scanpy's selection bins genes by mean expression; with (nearly) no spliced counts there is
    nothing to bin and it fails with an index error.

    Parameters
    ----------
    spliced
        The spliced counts of the genes that passed the count filters.
    n_top_genes
        The number of genes asked for.
    error
        scanpy's error.
    """
    totals = np.asarray(spliced.sum(axis=0)).ravel()
    n_expressed = int(np.count_nonzero(totals))
    msg = (
        f"The {n_top_genes} most variable genes cannot be chosen: only {n_expressed} of the "
        f"{len(totals)} genes that passed the count filters have any spliced count "
        f"({totals.sum():g} in all). Check that layers['spliced'] holds the spliced counts "
        "(not an empty matrix, not swapped with unspliced), or pass n_top_genes=None to keep "
        f"every gene. (scanpy: {type(error).__name__}: {error})"
    )
    raise ValueError(msg) from error
