"""Per-cell velocity uncertainty on an embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._utils import doc_params, embedding_scatter, finish, new_axes

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@doc_params
def uncertainty(
    adata: AnnData,
    *,
    key: str = "directional_variance",
    basis: str = "umap",
    cmap: str = "viridis",
    scatter_kwds: Mapping[str, Any] | None = None,
    title: str | None = None,
    legend_loc: str | None = "right margin",
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Cells on an embedding coloured by a per-cell velocity uncertainty.

    Parameters
    ----------
    %(adata)s
    key
        Column of ``obs`` with the uncertainty, e.g. ``"directional_variance"`` or
        ``"directional_cosine_sim_mean"`` as written by ``model.add_outputs``.
    %(basis)s
    cmap
        Colour map.
    %(scatter_kwds)s
    %(title)s
    %(legend_loc)s
    %(figsize)s
    %(ax)s
    %(show_save)s

    Returns
    -------
    %(returns)s
    """
    if key not in adata.obs:
        msg = (
            f"No uncertainty in adata.obs[{key!r}]; run model.add_outputs(adata) to write the "
            "per-cell uncertainty first."
        )
        raise KeyError(msg)
    fig, ax = new_axes(ax, figsize)
    ax = embedding_scatter(
        adata,
        basis=basis,
        color=key,
        ax=ax,
        title=title,
        legend_loc=legend_loc,
        scatter_kwds={"cmap": cmap, **(scatter_kwds or {})},
    )
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)
