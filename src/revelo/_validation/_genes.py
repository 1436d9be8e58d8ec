"""A gene selection, given as names or as a boolean mask, turned into a boolean mask."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def gene_mask(
    var_names: pd.Index, genes: Sequence[str] | np.ndarray | None, *, name: str = "genes"
) -> np.ndarray:
    """Return the boolean mask over ``var_names`` that ``genes`` selects.

    Parameters
    ----------
    var_names
        The AnnData's gene names, ``adata.var_names``.
    genes
        Gene names, or a boolean mask with one entry per gene; `None` selects every gene.
    name
        The caller's parameter name, quoted by the error messages.

    Returns
    -------
    Boolean array of length ``len(var_names)``.

    Raises
    ------
    ValueError
        When a boolean mask has the wrong length, or a list of names is empty.
    KeyError
        When a name is not in ``var_names``.
    """
    n_vars = len(var_names)
    if genes is None:
        return np.ones(n_vars, dtype=bool)
    genes = np.asarray(genes)
    if genes.dtype == bool:
        if genes.shape != (n_vars,):
            msg = (
                f"A boolean `{name}` mask needs {n_vars} entries (one per gene), not "
                f"{genes.shape}; pass gene names or a mask over adata.var_names."
            )
            raise ValueError(msg)
        return genes.copy()
    unknown = pd.Index(genes).difference(var_names)
    if len(unknown) > 0:
        msg = (
            f"Some genes in `{name}` are not in adata.var_names: {list(unknown[:5])}; pass "
            "names from adata.var_names."
        )
        raise KeyError(msg)
    if genes.size == 0:
        msg = f"`{name}` is empty; pass at least one gene name, or None for every gene."
        raise ValueError(msg)
    return np.asarray(var_names.isin(genes))
