"""Phase portraits: unspliced against spliced abundance per gene, with the fitted kinetics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from revelo._scvelo_keys import revelo_rates
from revelo._validation import check_layer
from revelo.module import solve_kinetics, switch_trajectory_at

from ._utils import category_colors, dense_column, doc_params, finish

if TYPE_CHECKING:
    import os

    from anndata import AnnData
    from matplotlib.figure import Figure

_RATE_COLUMNS = ("fit_alpha", "fit_beta", "fit_gamma", "fit_t_")
_RATE_KEYS = ("alpha", "beta", "gamma", "t_switch", "scaling")
_FITTED_LAYERS = ("fit_u", "fit_s", "fit_t")
_DEFAULT_T_MAX = 20.0
# Points of the kinetic curve on [0, t_max]; the switch time is added to keep the corner sharp.
_N_CURVE_POINTS = 200
_CURVE_STYLE = {"color": "purple", "linewidth": 2.0, "zorder": 3}
_STEADY_STYLE = {"color": "purple", "linewidth": 1.0, "linestyle": "--", "zorder": 3}
# Categories a legend lists in one column beside the panels.
_MARGIN_CATEGORIES = 12


def kinetic_curve(
    alpha: float, beta: float, gamma: float, t_switch: float, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Unspliced and spliced abundance at times `t` for one gene's switching kinetics.

    Induction runs from (0, 0) with rate `alpha` until `t_switch`; repression (no
    transcription) starts from the state reached at `t_switch`.

    Parameters
    ----------
    alpha, beta, gamma
        Transcription, splicing and degradation rates.
    t_switch
        Time of the switch from induction to repression.
    t
        Times on the shared axis, starting at 0.

    Returns
    -------
    ``(u, s)`` as arrays of the shape of `t`.
    """
    t = torch.as_tensor(t, dtype=torch.float64)
    alpha_, beta_, gamma_, t_switch_ = (
        torch.tensor(value, dtype=torch.float64) for value in (alpha, beta, gamma, t_switch)
    )
    point = switch_trajectory_at(alpha_, beta_, gamma_, t_switch_, t)
    return point.u.numpy(), point.s.numpy()


def _rate_curve(adata: AnnData, gene: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Solve the gene's curve from its fitted rates; `None` where they are missing."""
    if not all(column in adata.var for column in _RATE_COLUMNS):
        return None
    # scVelo's convention: the kinetics run on u / fit_scaling with fit_beta × fit_scaling.
    rates = revelo_rates(adata.var.iloc[[gene]])
    alpha, beta, gamma, t_switch, scaling = (float(rates[key][0]) for key in _RATE_KEYS)
    if not np.all(np.isfinite([alpha, beta, gamma, t_switch])) or min(beta, gamma) <= 0:
        return None
    t_max = float(adata.uns.get("velocity_params", {}).get("t_max", _DEFAULT_T_MAX))
    t = np.union1d(np.linspace(0.0, t_max, _N_CURVE_POINTS), [min(t_switch, t_max)])
    regime = _regime(adata, gene)
    if regime == "repression":
        # From the induction steady state at t = 0, without transcription.
        rates = [torch.tensor(value, dtype=torch.float64) for value in (alpha, beta, gamma)]
        start_u, start_s = rates[0] / rates[1], rates[0] / rates[2]
        u, s = (
            value.numpy()
            for value in solve_kinetics(
                start_u, start_s, 0.0, rates[1], rates[2], torch.as_tensor(t)
            )
        )
    elif regime == "steady":
        u, s = np.array([alpha / beta]), np.array([alpha / gamma])
    else:
        if regime == "induction":
            t = t[t <= t_switch]
        u, s = kinetic_curve(alpha, beta, gamma, t_switch, t)
    return s, u * scaling


def _regime(adata: AnnData, gene: int) -> str:
    """The gene's fitted regime (``var["fit_regime"]``), ``"full"`` when not written."""
    if "fit_regime" not in adata.var:
        return "full"
    return str(adata.var["fit_regime"].iloc[gene])


def _regime_title(adata: AnnData, gene_name: str) -> str:
    """The gene's name, with its regime when that is not a full switch."""
    regime = _regime(adata, adata.var_names.get_loc(gene_name))
    if regime == "full":
        return gene_name
    return f"{gene_name} ({regime}{'' if regime == 'steady' else ' only'})"


def _fitted_curve(adata: AnnData, gene: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the gene's per-cell fits ordered by its latent time, if present."""
    if not all(layer in adata.layers for layer in _FITTED_LAYERS):
        return None
    order = np.argsort(dense_column(adata, "fit_t", gene), kind="stable")
    return dense_column(adata, "fit_s", gene)[order], dense_column(adata, "fit_u", gene)[order]


def _curve(
    adata: AnnData, gene: int, kind: Literal["auto", "rates", "fitted"]
) -> tuple[np.ndarray, np.ndarray] | None:
    """Return the kinetic curve ``(s, u)`` of one gene for the requested `kind`."""
    curve = None
    if kind in ("auto", "rates"):
        curve = _rate_curve(adata, gene)
    if curve is None and kind in ("auto", "fitted"):
        curve = _fitted_curve(adata, gene)
    if curve is None and kind != "auto":
        wanted = _RATE_COLUMNS if kind == "rates" else _FITTED_LAYERS
        where = "var" if kind == "rates" else "layers"
        msg = (
            f"curve={kind!r} needs adata.{where}[{', '.join(map(repr, wanted))}] for gene "
            f"{adata.var_names[gene]!r}; run model.add_outputs(adata) first."
        )
        raise KeyError(msg)
    return curve


def _resolve_color(adata: AnnData, color: str | None) -> str | None:
    """Validate the colour key; `None` means ``"clusters"`` when that column exists."""
    if color is None:
        return "clusters" if "clusters" in adata.obs else None
    if color in adata.obs:
        values = adata.obs[color]
        if not (
            isinstance(values.dtype, pd.CategoricalDtype) or pd.api.types.is_numeric_dtype(values)
        ):
            msg = (
                f"obs[{color!r}] is neither categorical nor numeric; convert it with "
                f"adata.obs[{color!r}] = adata.obs[{color!r}].astype('category')."
            )
            raise TypeError(msg)
        return color
    if color in adata.layers:
        return color
    msg = f"color={color!r} is neither a column of adata.obs nor a key of adata.layers."
    raise KeyError(msg)


def _panel_axes(
    ax: Axes | Sequence[Axes] | None,
    n_panels: int,
    *,
    ncols: int,
    figsize: tuple[float, float] | None,
) -> tuple[Figure, list[Axes]]:
    """Return the panels' axes: the given ones, or a new grid of `ncols` columns."""
    if ax is None:
        nrows = -(-n_panels // max(min(ncols, n_panels), 1))
        # As many columns as the rows need, so the last row is as full as it can be.
        ncols = -(-n_panels // nrows)
        fig, grid = plt.subplots(
            nrows,
            ncols,
            figsize=figsize or (4.0 * ncols, 3.6 * nrows),
            squeeze=False,
            layout="constrained",
        )
        axes = list(grid.ravel())
        for unused in axes[n_panels:]:
            unused.remove()
        return fig, axes[:n_panels]
    axes = [ax] if isinstance(ax, Axes) else list(ax)
    if len(axes) != n_panels:
        msg = f"Got {len(axes)} axes for {n_panels} genes; pass one Axes per gene."
        raise ValueError(msg)
    return axes[0].get_figure(), axes


def _line_handles(curve: bool, steady_state: bool) -> list[Line2D]:
    """Legend keys of the kinetic curve and the steady-state line, when drawn."""
    handles = []
    if curve:
        handles.append(Line2D([], [], label="kinetic curve", **_CURVE_STYLE))
    if steady_state:
        handles.append(Line2D([], [], label="steady state u = γ/β · s", **_STEADY_STYLE))
    return handles


def _add_legend(
    ax: Axes,
    labels: Sequence[str],
    colors: Sequence[str],
    loc: str,
    *,
    title: str | None,
    lines: Sequence[Line2D],
    below: bool,
) -> None:
    """Legend of the categories (titled) and of the fitted lines.

    With ``loc="right margin"`` the categories go beside `ax`; the lines' key goes below the
    figure when `below` (a new grid, whose layout makes room), else inside `ax`.
    """
    handles = [
        Line2D([], [], marker="o", linestyle="", color=c, label=str(label))
        for label, c in zip(labels, colors)
    ]
    style = {"frameon": False, "fontsize": "small", "title_fontsize": "small"}
    if lines and below:
        ax.get_figure().legend(handles=lines, loc="outside lower center", ncols=2, **style)
    elif lines and handles:
        ax.add_artist(ax.legend(handles=lines, loc="lower right", **style))
    elif lines:
        ax.legend(handles=lines, loc="best" if loc == "right margin" else loc, **style)
    if not handles:
        return
    if loc == "right margin":
        ncol = 1 if len(handles) <= _MARGIN_CATEGORIES else 2
        ax.legend(
            handles=handles,
            loc="center left",
            bbox_to_anchor=(1.02, 0.5),
            title=title,
            ncol=ncol,
            **style,
        )
    else:
        ax.legend(handles=handles, loc=loc, title=title, **style)


def _legend_axes(axes: Sequence[Axes], *, new_grid: bool) -> Axes:
    """The last panel, or the top row's last one when a new grid's last row is not full.

    A legend beside a panel that is not at the figure's right edge would open a gap.
    """
    spec = axes[-1].get_subplotspec()
    if new_grid and not spec.is_last_col():
        return axes[spec.get_gridspec().ncols - 1]
    return axes[-1]


def _present_categories(adata: AnnData, color: str) -> tuple[list[str], list[str]]:
    """The categories of ``obs[color]`` that some cell has, in order, with their colours."""
    present = set(adata.obs[color].dropna().unique())
    pairs = zip(adata.obs[color].cat.categories, category_colors(adata, color))
    kept = [(label, c) for label, c in pairs if label in present]
    return [label for label, _ in kept], [c for _, c in kept]


def _axis_label(layer: str, kind: str) -> str:
    """What the values of ``layer`` are, e.g. "spliced (Ms, scaled moments)"."""
    if layer in ("Ms", "Mu"):
        return f"{kind} ({layer}, scaled moments)"
    if layer in (kind, f"{kind}_counts"):
        return f"{kind} counts"
    return f"{kind} ({layer})"


def _upper_limit(values: np.ndarray) -> float | None:
    """The axis end a little past the data; the fitted lines are clipped there."""
    finite = values[np.isfinite(values)]
    if finite.size == 0 or finite.max() <= 0:
        return None
    return 1.05 * float(finite.max())


@doc_params
def phase_portrait(
    adata: AnnData,
    genes: str | Sequence[str],
    *,
    color: str | None = None,
    curve: Literal["auto", "rates", "fitted"] | None = "auto",
    steady_state: bool = True,
    spliced_layer: str = "Ms",
    unspliced_layer: str = "Mu",
    size: float | None = None,
    cmap: str = "viridis",
    ncols: int = 4,
    title: str | Sequence[str] | None = None,
    legend_loc: str | None = "right margin",
    figsize: tuple[float, float] | None = None,
    ax: Axes | Sequence[Axes] | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
) -> Figure | Axes | list[Axes] | None:
    r"""Unspliced against spliced abundance of each gene, with its fitted kinetics.

    Each panel shows one gene's cells in the phase plane (``layers[spliced_layer]`` on the
    x-axis, ``layers[unspliced_layer]`` on the y-axis), the kinetic curve the model fitted,
    and the steady-state line :math:`u = \gamma / \beta \cdot s`.

    Parameters
    ----------
    %(adata)s
    genes
        One gene name or several; one panel is drawn per gene.
    color
        Column of ``obs`` (categorical or numeric) or key of ``layers`` (per cell and gene,
        e.g. ``"fit_t"``) to colour the cells by. `None` uses ``"clusters"`` when present.
    curve
        Which kinetic curve to draw: ``"rates"`` solves the switching ODE from
        ``var[["fit_alpha", "fit_beta", "fit_gamma", "fit_t_"]]`` over
        :math:`t \in [0, t_{max}]` (``uns["velocity_params"]["t_max"]``, default 20);
        ``"fitted"`` joins the per-cell fits ``layers["fit_s"]``, ``layers["fit_u"]`` in the
        order of ``layers["fit_t"]``; ``"auto"`` takes the first available; `None` draws no
        curve.
    steady_state
        Draw the steady-state line from ``var["fit_gamma"] / var["fit_beta"]`` when present.
    spliced_layer
        Layer with the (smoothed) spliced abundance.
    unspliced_layer
        Layer with the (smoothed) unspliced abundance.
    size
        Marker size; by default it shrinks with the number of cells.
    cmap
        Colour map for numeric colours.
    ncols
        Number of panels per row of a new figure.
    title
        Panel titles; defaults to the gene names, followed by the fitted regime
        (``var["fit_regime"]``) where it is not a full switch: ``"induction only"``,
        ``"repression only"`` (drawn from the induction steady state) or ``"steady"`` (drawn as
        one point).
    legend_loc
        Location of the legend for categorical colours: ``"right margin"``, any matplotlib
        legend location, or `None` for no legend. It is drawn on the last panel, or on the
        top row's last one when a new figure's last row is not full.
    %(figsize)s
    ax
        One axes per gene to draw on; a new figure is made when `None`.
    %(show_save)s

    Returns
    -------
    :class:`~matplotlib.figure.Figure` when `return_fig` is `True`; when `show` is `False`
    the :class:`~matplotlib.axes.Axes`, or a list of them for several genes; else `None`.
    """
    genes = [genes] if isinstance(genes, str) else list(genes)
    if not genes:
        msg = "phase_portrait got no gene; pass one name or a list of names from adata.var_names."
        raise ValueError(msg)
    missing = [gene for gene in genes if gene not in adata.var_names]
    if missing:
        msg = f"Genes not found in adata.var_names: {', '.join(map(repr, missing))}."
        raise KeyError(msg)
    check_layer(adata, spliced_layer)
    check_layer(adata, unspliced_layer)
    color = _resolve_color(adata, color)
    titles = (
        [_regime_title(adata, gene) for gene in genes]
        if title is None
        else [title]
        if isinstance(title, str)
        else list(title)
    )
    if size is None:
        size = float(np.clip(20_000 / adata.n_obs, 2, 40))

    fig, axes = _panel_axes(ax, len(genes), ncols=ncols, figsize=figsize)
    drew_curve = drew_steady_state = False
    categorical = color in adata.obs and isinstance(adata.obs[color].dtype, pd.CategoricalDtype)
    for panel, gene_name, panel_title in zip(axes, genes, titles):
        gene = adata.var_names.get_loc(gene_name)
        s = dense_column(adata, spliced_layer, gene)
        u = dense_column(adata, unspliced_layer, gene)
        if color is None:
            panel.scatter(s, u, s=size, color="lightgrey", linewidths=0)
        elif categorical:
            codes = adata.obs[color].cat.codes.to_numpy()
            palette = np.array([*category_colors(adata, color), "lightgrey"], dtype=object)
            panel.scatter(s, u, s=size, c=list(palette[codes]), linewidths=0)
        else:
            values = (
                adata.obs[color].to_numpy(dtype=float)
                if color in adata.obs
                else dense_column(adata, color, gene)
            )
            points = panel.scatter(s, u, s=size, c=values, cmap=cmap, linewidths=0)
            fig.colorbar(points, ax=panel, pad=0.01, fraction=0.05, label=color.replace("_", " "))

        fitted = None if curve is None else _curve(adata, gene, curve)
        if fitted is not None:
            drew_curve = True
            style = {**_CURVE_STYLE, "marker": "o"} if len(fitted[0]) == 1 else _CURVE_STYLE
            panel.plot(*fitted, label="kinetic curve", **style)
        if steady_state and {"fit_beta", "fit_gamma"} <= set(adata.var.columns):
            # With scVelo's fit_beta (revelo's beta / fit_scaling) the ratio is the slope
            # u / s of the steady state in the observed units.
            ratio = adata.var["fit_gamma"].iloc[gene] / adata.var["fit_beta"].iloc[gene]
            s_line = np.array([0.0, np.max(s)])
            u_line = ratio * s_line
            drew_steady_state = True
            panel.plot(s_line, u_line, label="steady state", **_STEADY_STYLE)

        panel.set_xlabel(_axis_label(spliced_layer, "spliced"))
        panel.set_ylabel(_axis_label(unspliced_layer, "unspliced"))
        panel.set_title(panel_title)
        # The axes follow the data; a fitted curve or line reaching beyond it is clipped.
        panel.set_xlim(0, _upper_limit(s))
        panel.set_ylim(0, _upper_limit(u))
        panel.spines[["top", "right"]].set_visible(False)

    lines = _line_handles(drew_curve, drew_steady_state)
    if legend_loc is not None and (categorical or lines):
        labels, colors = _present_categories(adata, color) if categorical else ([], [])
        _add_legend(
            _legend_axes(axes, new_grid=ax is None),
            labels,
            colors,
            legend_loc,
            title=color if categorical else None,
            lines=lines,
            below=ax is None and legend_loc == "right margin",
        )
    return finish(
        fig, axes[0] if len(axes) == 1 else axes, show=show, save=save, return_fig=return_fig
    )
