"""Latent time on an embedding and gene expression along it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes
from scipy import sparse
from scipy.ndimage import uniform_filter1d

from revelo._utils import to_dense
from revelo._validation import check_layer

from ._utils import check_latent_time, doc_params, embedding_scatter, finish, label_colorbar

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from anndata import AnnData
    from matplotlib.figure import Figure

# Gene names on the heatmap: font size, and the vertical room one name needs, in points.
_LABEL_SIZE = 7.0
_LABEL_ROOM = 1.25 * _LABEL_SIZE


def _select_genes(
    adata: AnnData, genes: Sequence[str] | None, n_genes: int, layer: str
) -> list[str]:
    """Return the requested genes, or the `n_genes` best fitted (else most variable) ones."""
    if genes is not None:
        genes = [genes] if isinstance(genes, str) else list(genes)
        missing = [gene for gene in genes if gene not in adata.var_names]
        if missing:
            msg = f"Genes not found in adata.var_names: {', '.join(map(repr, missing))}."
            raise KeyError(msg)
        return genes
    if "fit_likelihood" in adata.var:
        score = adata.var["fit_likelihood"].to_numpy(dtype=float)
    else:
        matrix = adata.layers[layer]
        mean = np.asarray(matrix.mean(axis=0)).ravel()
        squares = matrix.multiply(matrix) if sparse.issparse(matrix) else np.square(matrix)
        score = np.asarray(squares.mean(axis=0)).ravel() - mean**2
    order = np.argsort(-np.nan_to_num(score, nan=-np.inf), kind="stable")
    return list(adata.var_names[order[:n_genes]])


def gene_trends(
    adata: AnnData, genes: Sequence[str], *, key: str, layer: str, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Expression of `genes` along latent time, smoothed and scaled to [0, 1] per gene.

    Parameters
    ----------
    adata
        Annotated data matrix with ``obs[key]`` and ``layers[layer]``.
    genes
        Genes to return.
    key
        Column of ``obs`` with the latent time.
    layer
        Layer with the expression.
    window
        Number of consecutive cells (in latent-time order) of the moving average.

    Returns
    -------
    The genes × cells matrix, rows ordered by the cell of peak expression, and the matching
    indices into `genes`.
    """
    cells = np.argsort(adata.obs[key].to_numpy(dtype=float), kind="stable")
    matrix = to_dense(adata[:, list(genes)].layers[layer], float)
    trends = uniform_filter1d(matrix[cells].T.astype(float), size=max(window, 1), axis=1)
    low = trends.min(axis=1, keepdims=True)
    span = trends.max(axis=1, keepdims=True) - low
    trends = (trends - low) / np.where(span > 0, span, 1.0)
    order = np.argsort(np.argmax(trends, axis=1), kind="stable")
    return trends[order], order


def label_step(n_labels: int, height_points: float) -> int:
    """Name every ``step``-th gene so that the names fit in ``height_points`` without overlap."""
    fit = max(int(height_points // _LABEL_ROOM), 1)
    return max(-(-n_labels // fit), 1)


def _heatmap(
    ax: Axes, trends: np.ndarray, genes: Sequence[str], *, cmap: str, title: str | None
) -> None:
    """Draw the genes × cells trend matrix, gene names on the right, colour bar below."""
    image = ax.imshow(trends, aspect="auto", interpolation="none", cmap=cmap, vmin=0, vmax=1)
    fig = ax.get_figure()
    ax.set_xticks([])
    # Names and axis label on the right keep them clear of a panel (and colour bar) on the left.
    ax.yaxis.tick_right()
    ax.yaxis.set_label_position("right")
    height = ax.get_position().height * fig.get_size_inches()[1] * 72
    step = label_step(len(genes), 0.9 * height)
    rows = np.arange(0, len(genes), step)
    ax.set_yticks(rows, labels=[genes[i] for i in rows], fontsize=_LABEL_SIZE)
    ax.tick_params(axis="y", length=0, pad=2)
    named = "" if step == 1 else f" (every {_ordinal(step)} named)"
    ax.set_ylabel(f"genes ordered by peak time{named}")
    ax.set_xlabel("cells ordered by latent time")
    ax.set_title(title if title is not None else "expression along latent time")
    fig.colorbar(
        image,
        ax=ax,
        location="bottom",
        fraction=0.04,
        pad=0.02,
        aspect=40,
        label="expression, scaled to [0, 1] per gene",
    )


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@doc_params
def latent_time(
    adata: AnnData,
    *,
    basis: str = "umap",
    key: str = "latent_time",
    kind: Literal["both", "embedding", "heatmap"] = "both",
    genes: Sequence[str] | None = None,
    n_genes: int = 50,
    layer: str = "Ms",
    window: int | None = None,
    cmap: str = "gnuplot",
    heatmap_cmap: str = "viridis",
    scatter_kwds: Mapping[str, Any] | None = None,
    title: str | None = None,
    figsize: tuple[float, float] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
) -> Figure | Axes | list[Axes] | None:
    """Latent time on an embedding, and gene expression along it as a heatmap.

    Parameters
    ----------
    %(adata)s
    %(basis)s
    key
        Column of ``obs`` with the latent time.
    kind
        ``"embedding"``: the cells coloured by latent time; ``"heatmap"``: genes × cells,
        cells ordered by latent time, each gene's moving average scaled to [0, 1], genes
        ordered by the time of their peak; ``"both"``: the two side by side.
    genes
        Genes of the heatmap; by default the `n_genes` with the highest
        ``var["fit_likelihood"]``, or the most variable in `layer` when it is absent.
    n_genes
        Number of genes chosen when `genes` is `None`.
    layer
        Layer with the expression shown in the heatmap.
    window
        Number of cells in the moving average along latent time; by default 2%% of the cells.
    cmap
        Colour map of the embedding.
    heatmap_cmap
        Colour map of the heatmap.
    %(scatter_kwds)s
    title
        Title of the embedding panel (default: `key`); the heatmap keeps its own title
        when both are drawn.
    %(figsize)s
    ax
        Axes to draw on, two of them for ``kind="both"``; a new figure is made when `None`.
    %(show_save)s

    Returns
    -------
    :class:`~matplotlib.figure.Figure` when `return_fig` is `True`; when `show` is `False`
    the :class:`~matplotlib.axes.Axes`, or ``[embedding_axes, heatmap_axes]`` for
    ``kind="both"``; else `None`.
    """
    if kind not in ("both", "embedding", "heatmap"):
        msg = f"kind={kind!r} is not one of 'both', 'embedding', 'heatmap'."
        raise ValueError(msg)
    check_latent_time(adata, key)
    n_panels = 2 if kind == "both" else 1
    if kind != "embedding":
        check_layer(adata, layer)
    if ax is None:
        default_size = (11.0, 5.0) if n_panels == 2 else (5.5, 5.0)
        fig, axes = plt.subplots(
            1, n_panels, figsize=figsize or default_size, squeeze=False, layout="constrained"
        )
        axes = list(axes.ravel())
    else:
        axes = [ax] if isinstance(ax, Axes) else list(ax)
        if len(axes) != n_panels:
            msg = f"kind={kind!r} draws {n_panels} panel(s) but {len(axes)} axes were given."
            raise ValueError(msg)
        fig = axes[0].get_figure()

    if kind in ("both", "embedding"):
        axes[0] = embedding_scatter(
            adata,
            basis=basis,
            color=key,
            ax=axes[0],
            title=title,
            legend_loc=None,
            scatter_kwds={"cmap": cmap, **(scatter_kwds or {})},
        )
        label_colorbar(axes[0], key.replace("_", " "))
    if kind in ("both", "heatmap"):
        chosen = _select_genes(adata, genes, n_genes, layer)
        window = max(adata.n_obs // 50, 1) if window is None else window
        trends, order = gene_trends(adata, chosen, key=key, layer=layer, window=window)
        heatmap_title = title if kind == "heatmap" else None
        _heatmap(
            axes[-1], trends, [chosen[i] for i in order], cmap=heatmap_cmap, title=heatmap_title
        )
    return finish(
        fig, axes if n_panels == 2 else axes[0], show=show, save=save, return_fig=return_fig
    )
