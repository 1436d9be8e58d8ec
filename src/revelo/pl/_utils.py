"""Shared pieces of the plotting functions: parameter docs, checks, figure handling."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import matplotlib.pyplot as plt
import numpy as np
import scanpy as sc

from revelo._docs import shared_docs
from revelo._utils import to_dense
from revelo._validation import check_layer

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Parameter text shared by several plots, at indentation 0 (the plots' docstrings are dedented).
_DOCS: dict[str, str] = {
    "adata": """\
adata
    Annotated data matrix.""",
    "basis": """\
basis
    Embedding to draw on; coordinates are read from ``obsm[f"X_{basis}"]``.""",
    "vkey": """\
vkey
    Key of the velocity layer; the projected velocities are read from
    ``obsm[f"{vkey}_{basis}"]``. When they are absent, the velocity graph
    (``uns[f"{vkey}_graph"]``) and the projection are computed with
    :func:`revelo.tl.velocity_graph` and :func:`revelo.tl.velocity_embedding`,
    which write these fields into ``adata`` (the plot modifies its input).""",
    "color": """\
color
    Key in ``obs`` or a gene name used to colour the cells, as in
    :func:`scanpy.pl.embedding`. `None` draws all cells in one colour.""",
    "grid_size": """\
grid_size
    Number of grid points along each axis.""",
    "smooth": """\
smooth
    Width of the Gaussian kernel, relative to the larger of the grid spacing and the
    median distance between neighbouring cells.""",
    "scatter_kwds": """\
scatter_kwds
    Further arguments to :func:`scanpy.pl.embedding`, e.g. ``size``, ``cmap``,
    ``palette``, ``frameon``.""",
    "title": """\
title
    Panel title; defaults to the colour key.""",
    "legend_loc": """\
legend_loc
    Location of the legend for categorical colours: ``"right margin"``, ``"on data"``,
    any matplotlib legend location, or `None` for no legend.""",
    "figsize": """\
figsize
    Size of a new figure in inches; ignored when `ax` is given.""",
    "ax": """\
ax
    Axes to draw on; a new figure is made when `None`.""",
    "show_save": """\
show
    Show the figure; `None` follows :attr:`scanpy.settings.autoshow`.
save
    Path the figure is written to; the file format follows the extension.
return_fig
    Return the :class:`~matplotlib.figure.Figure` instead of the axes.""",
    "returns": """\
:class:`~matplotlib.figure.Figure` when `return_fig` is `True`, the
:class:`~matplotlib.axes.Axes` when `show` is `False`, else `None`.""",
}


#: Fills the ``%(name)s`` placeholders of a plot's docstring with the shared parameter text.
doc_params = shared_docs(_DOCS)


# ------------------------------------------------------------------ prerequisite checks


def basis_key(basis: str) -> str:
    """Return the bare basis name, accepting both ``"umap"`` and ``"X_umap"``."""
    return basis[2:] if basis.startswith("X_") else basis


def get_basis(adata: AnnData, basis: str) -> np.ndarray:
    """Return the first two embedding coordinates, or raise naming the call to make first."""
    key = f"X_{basis_key(basis)}"
    if key not in adata.obsm:
        hint = (
            "run scanpy.tl.umap(adata) (or revelo.pp.preprocess, which computes it)"
            if basis_key(basis) == "umap"
            else f"compute the {basis_key(basis)!r} embedding first"
        )
        msg = f"No embedding found in adata.obsm[{key!r}]; {hint}."
        raise KeyError(msg)
    return np.asarray(adata.obsm[key])[:, :2]


def check_latent_time(adata: AnnData, key: str) -> None:
    """Raise when the latent time is missing."""
    if key not in adata.obs:
        msg = (
            f"No latent time in adata.obs[{key!r}]; run model.add_outputs or "
            "revelo.tl.latent_time first."
        )
        raise KeyError(msg)


def get_velocity_embedding(adata: AnnData, *, basis: str, vkey: str) -> np.ndarray:
    """Return ``obsm[f"{vkey}_{basis}"]``, computing the graph and projection when absent."""
    basis = basis_key(basis)
    get_basis(adata, basis)
    key = f"{vkey}_{basis}"
    if key not in adata.obsm:
        check_layer(adata, vkey)
        from revelo import tl

        if f"{vkey}_graph" not in adata.uns:
            tl.velocity_graph(adata, vkey=vkey)
        tl.velocity_embedding(adata, basis=basis, vkey=vkey)
    return np.asarray(adata.obsm[key])[:, :2]


def category_colors(adata: AnnData, key: str) -> list[str]:
    """Colours of the categories of ``obs[key]``, from ``uns[f"{key}_colors"]`` as in scanpy.

    Missing or too short colour lists are replaced by scanpy's default palette and stored, so
    that later plots of the same key agree.
    """
    n_categories = len(adata.obs[key].cat.categories)
    colors = adata.uns.get(f"{key}_colors")
    if colors is None or len(colors) < n_categories:
        palettes = (sc.pl.palettes.default_20, sc.pl.palettes.default_28)
        palette = next((p for p in palettes if len(p) >= n_categories), None)
        if palette is None:
            palette = (
                sc.pl.palettes.default_102 if n_categories <= 102 else ["grey"] * n_categories
            )
        colors = list(palette[:n_categories])
        adata.uns[f"{key}_colors"] = colors
    return list(colors[:n_categories])


def dense_column(adata: AnnData, layer: str, gene: int) -> np.ndarray:
    """One gene's values of a (possibly sparse) layer as a flat float array."""
    return to_dense(adata.layers[layer][:, gene], float).ravel()


# ------------------------------------------------------------------ figure handling


def new_axes(ax: Axes | None, figsize: tuple[float, float] | None) -> tuple[Figure, Axes]:
    """Return the figure and axes to draw on, making them when `ax` is `None`."""
    if ax is None:
        fig, ax = plt.subplots(figsize=figsize)
    else:
        fig = ax.get_figure()
    return fig, ax


def embedding_scatter(
    adata: AnnData,
    *,
    basis: str,
    color: str | None,
    ax: Axes,
    title: str | None,
    legend_loc: str | None,
    scatter_kwds: Mapping[str, Any] | None,
) -> Axes:
    """Draw the cells of an embedding with :func:`scanpy.pl.embedding`; the base of every plot."""
    get_basis(adata, basis)
    kwds = {"frameon": False, **(scatter_kwds or {})}
    return sc.pl.embedding(
        adata,
        basis_key(basis),
        color=color,
        ax=ax,
        title=title,
        legend_loc=legend_loc,
        show=False,
        **kwds,
    )


def label_colorbar(ax: Axes, label: str) -> None:
    """Label the colour bar that :func:`scanpy.pl.embedding` drew for ``ax``'s points."""
    for artist in ax.collections:
        colorbar = getattr(artist, "colorbar", None)
        if colorbar is not None:
            colorbar.set_label(label)


def finish(
    fig: Figure,
    axes: Axes | list[Axes],
    *,
    show: bool | None,
    save: str | os.PathLike | None,
    return_fig: bool,
) -> Figure | Axes | list[Axes] | None:
    """Save and show the figure, then return what the caller asked for."""
    if save is not None:
        fig.savefig(save, bbox_inches="tight")
    if return_fig:
        return fig
    if show is None:
        show = sc.settings.autoshow
    if show:
        plt.show()
        return None
    return axes
