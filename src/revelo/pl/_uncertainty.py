"""Per-cell velocity uncertainty on an embedding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._utils import doc_params, embedding_scatter, finish, label_colorbar, new_axes

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# What each statistic of ``model.add_outputs`` measures, for titles and colour bars.
_STATISTICS = {
    "variance": "angle of draws to their mean: variance (rad²)",
    "difference": "angle of draws to their mean: 5–95% range (rad)",
    "cosine_sim_variance": "cosine of draws to their mean: variance",
    "cosine_sim_difference": "cosine of draws to their mean: 5–95% range",
    "cosine_sim_mean": "cosine of draws to their mean: mean",
}
_SOURCES = {"directional": "intrinsic", "extrinsic": "extrinsic"}


def describe(key: str) -> tuple[str, str]:
    """Title and colour-bar label for an uncertainty column of ``obs``.

    ``"directional_cosine_sim_variance"`` gives ``("intrinsic velocity uncertainty", "cosine
    of draws to their mean: variance")``; an unknown key gives itself, in words.
    """
    source, _, statistic = key.partition("_")
    if source in _SOURCES and statistic in _STATISTICS:
        return f"{_SOURCES[source]} velocity uncertainty", _STATISTICS[statistic]
    words = key.replace("_", " ")
    return words, words


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
    title
        Panel title; by default what `key` measures, e.g. "intrinsic velocity uncertainty"
        (``directional_*``: the spread of the posterior velocity draws of each cell;
        ``extrinsic_*``: of its embedded arrows). The colour bar names the statistic.
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
    default_title, label = describe(key)
    fig, ax = new_axes(ax, figsize)
    ax = embedding_scatter(
        adata,
        basis=basis,
        color=key,
        ax=ax,
        title=default_title if title is None else title,
        legend_loc=legend_loc,
        scatter_kwds={"cmap": cmap, **(scatter_kwds or {})},
    )
    label_colorbar(ax, label)
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)
