"""Velocities on an embedding: stream lines, grid arrows and one arrow per cell."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from scipy.spatial import cKDTree

from revelo._validation import check_positive_int

from ._utils import (
    doc_params,
    embedding_scatter,
    finish,
    get_basis,
    get_velocity_embedding,
    new_axes,
)

if TYPE_CHECKING:
    import os
    from collections.abc import Mapping

    from anndata import AnnData
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

# Number of cells each grid point averages over before the Gaussian weights fade them out.
_N_GRID_NEIGHBORS = 30
# The arrow scale of the per-cell plot matches a grid of this many points per axis.
_CELL_ARROW_GRID = 20


def grid_velocities(
    coords: np.ndarray,
    velocity: np.ndarray,
    *,
    grid_size: int,
    smooth: float,
    min_mass: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Smooth per-cell velocities onto a regular grid with a Gaussian kernel.

    Parameters
    ----------
    coords
        Cell coordinates, shape ``(n_cells, 2)``.
    velocity
        Velocities in the same coordinates, shape ``(n_cells, 2)``.
    grid_size
        Number of grid points along each axis.
    smooth
        Kernel bandwidth in units of the larger of grid spacing and median nearest-cell distance.
    min_mass
        Grid points whose summed kernel weight is below this fraction of the 99th percentile
        are set to NaN, so that nothing is drawn where there are (almost) no cells.

    Returns
    -------
    The grid axes ``xs`` and ``ys`` and the velocity components ``u``, ``v`` of shape
    ``(grid_size, grid_size)``, indexed ``[y, x]`` as :meth:`~matplotlib.axes.Axes.streamplot`
    expects.
    """
    lo, hi = coords.min(axis=0), coords.max(axis=0)
    check_positive_int("grid_size", grid_size, minimum=2)
    xs = np.linspace(lo[0], hi[0], grid_size)
    ys = np.linspace(lo[1], hi[1], grid_size)
    grid = np.stack(np.meshgrid(xs, ys), axis=-1).reshape(-1, 2)

    tree = cKDTree(coords)
    # A kernel narrower than the gaps between cells would leave holes inside the data.
    cell_gap = np.median(tree.query(coords, k=2)[0][:, 1])
    grid_gap = np.max((hi - lo) / max(grid_size - 1, 1))
    bandwidth = smooth * max(cell_gap, grid_gap)

    k = min(_N_GRID_NEIGHBORS, len(coords))
    dist, idx = tree.query(grid, k=k)
    dist, idx = dist.reshape(len(grid), k), idx.reshape(len(grid), k)
    weights = np.exp(-0.5 * (dist / bandwidth) ** 2)
    mass = weights.sum(axis=1)
    grid_velocity = (
        np.einsum("gk,gkd->gd", weights, velocity[idx]) / np.maximum(mass, 1e-12)[:, None]
    )
    grid_velocity[mass < min_mass * np.percentile(mass, 99)] = np.nan

    u = grid_velocity[:, 0].reshape(grid_size, grid_size)
    v = grid_velocity[:, 1].reshape(grid_size, grid_size)
    return xs, ys, u, v


def _quiver(
    ax: Axes,
    xy: np.ndarray,
    uv: np.ndarray,
    *,
    length: float,
    quiver_kwds: Mapping[str, Any] | None,
) -> None:
    """Draw arrows scaled so that the 95th-percentile velocity spans `length` data units."""
    speed = np.linalg.norm(uv, axis=1)
    reference = np.percentile(speed, 95) if len(speed) else 1.0
    scale = reference / length if reference > 0 else 1.0
    kwds = {
        "angles": "xy",
        "scale_units": "xy",
        "scale": scale,
        "width": 0.002,
        "headwidth": 4,
        "color": "black",
        "zorder": 3,
        **(quiver_kwds or {}),
    }
    ax.quiver(xy[:, 0], xy[:, 1], uv[:, 0], uv[:, 1], **kwds)


def _draw_cells(
    adata: AnnData,
    *,
    basis: str,
    vkey: str,
    color: str | None,
    title: str | None,
    legend_loc: str | None,
    figsize: tuple[float, float] | None,
    ax: Axes | None,
    scatter_kwds: Mapping[str, Any] | None,
) -> tuple[Figure, Axes, np.ndarray, np.ndarray]:
    """Check the inputs, draw the cells and return figure, axes, coordinates and velocities."""
    coords = get_basis(adata, basis)
    velocity = get_velocity_embedding(adata, basis=basis, vkey=vkey)
    fig, ax = new_axes(ax, figsize)
    ax = embedding_scatter(
        adata,
        basis=basis,
        color=color,
        ax=ax,
        title=title,
        legend_loc=legend_loc,
        scatter_kwds=scatter_kwds,
    )
    return fig, ax, coords, velocity


@doc_params
def velocity_embedding_stream(
    adata: AnnData,
    *,
    basis: str = "umap",
    vkey: str = "velocity",
    color: str | None = None,
    density: float = 2.0,
    grid_size: int = 50,
    smooth: float = 1.0,
    min_mass: float = 0.05,
    stream_kwds: Mapping[str, Any] | None = None,
    scatter_kwds: Mapping[str, Any] | None = None,
    title: str | None = None,
    legend_loc: str | None = "right margin",
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Velocity stream lines on an embedding.

    The per-cell velocities are smoothed onto a regular grid with a Gaussian kernel; grid
    points far from any cell are left empty, and stream lines are drawn with
    :meth:`~matplotlib.axes.Axes.streamplot`.

    Parameters
    ----------
    %(adata)s
    %(basis)s
    %(vkey)s
    %(color)s
    density
        Density of the stream lines, as in :meth:`~matplotlib.axes.Axes.streamplot`.
    %(grid_size)s
    %(smooth)s
    min_mass
        Grid points whose kernel mass is below this fraction of the 99th percentile get no
        stream line.
    stream_kwds
        Further arguments to :meth:`~matplotlib.axes.Axes.streamplot`, e.g. ``color``,
        ``linewidth``, ``arrowsize``.
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
    fig, ax, coords, velocity = _draw_cells(
        adata,
        basis=basis,
        vkey=vkey,
        color=color,
        title=title,
        legend_loc=legend_loc,
        figsize=figsize,
        ax=ax,
        scatter_kwds=scatter_kwds,
    )
    xs, ys, u, v = grid_velocities(
        coords, velocity, grid_size=grid_size, smooth=smooth, min_mass=min_mass
    )
    kwds = {
        "density": density,
        "color": "0.15",
        "linewidth": 0.8,
        "arrowsize": 1.0,
        "zorder": 3,
        **(stream_kwds or {}),
    }
    ax.streamplot(xs, ys, u, v, **kwds)
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)


@doc_params
def velocity_embedding_grid(
    adata: AnnData,
    *,
    basis: str = "umap",
    vkey: str = "velocity",
    color: str | None = None,
    grid_size: int = 20,
    smooth: float = 1.0,
    min_mass: float = 0.3,
    arrow_length: float = 1.0,
    quiver_kwds: Mapping[str, Any] | None = None,
    scatter_kwds: Mapping[str, Any] | None = None,
    title: str | None = None,
    legend_loc: str | None = "right margin",
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """Grid-averaged velocity arrows on an embedding.

    The per-cell velocities are smoothed onto a regular grid with a Gaussian kernel (see
    :func:`velocity_embedding_stream`) and one arrow is drawn per grid point near cells.

    Parameters
    ----------
    %(adata)s
    %(basis)s
    %(vkey)s
    %(color)s
    %(grid_size)s
    %(smooth)s
    min_mass
        Grid points whose kernel mass is below this fraction of the 99th percentile get no
        arrow.
    arrow_length
        Length of the longer arrows (95th percentile), in grid spacings.
    quiver_kwds
        Further arguments to :meth:`~matplotlib.axes.Axes.quiver`, e.g. ``color``, ``width``.
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
    fig, ax, coords, velocity = _draw_cells(
        adata,
        basis=basis,
        vkey=vkey,
        color=color,
        title=title,
        legend_loc=legend_loc,
        figsize=figsize,
        ax=ax,
        scatter_kwds=scatter_kwds,
    )
    xs, ys, u, v = grid_velocities(
        coords, velocity, grid_size=grid_size, smooth=smooth, min_mass=min_mass
    )
    gx, gy = np.meshgrid(xs, ys)
    keep = np.isfinite(u)
    xy = np.column_stack([gx[keep], gy[keep]])
    uv = np.column_stack([u[keep], v[keep]])
    spacing = max(xs[1] - xs[0], ys[1] - ys[0]) if grid_size > 1 else 1.0
    _quiver(ax, xy, uv, length=arrow_length * spacing, quiver_kwds=quiver_kwds)
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)


@doc_params
def velocity_embedding(
    adata: AnnData,
    *,
    basis: str = "umap",
    vkey: str = "velocity",
    color: str | None = None,
    n_arrows: int | None = None,
    arrow_length: float = 1.0,
    random_state: int = 0,
    quiver_kwds: Mapping[str, Any] | None = None,
    scatter_kwds: Mapping[str, Any] | None = None,
    title: str | None = None,
    legend_loc: str | None = "right margin",
    figsize: tuple[float, float] | None = None,
    ax: Axes | None = None,
    show: bool | None = None,
    save: str | os.PathLike | None = None,
    return_fig: bool = False,
) -> Figure | Axes | None:
    """One velocity arrow per cell on an embedding.

    Parameters
    ----------
    %(adata)s
    %(basis)s
    %(vkey)s
    %(color)s
    n_arrows
        Draw arrows for this many randomly chosen cells only; all cells when `None`.
    arrow_length
        Length of the longer arrows (95th percentile), in 1/20 of the embedding's extent.
    random_state
        Seed for choosing the cells when `n_arrows` is set.
    quiver_kwds
        Further arguments to :meth:`~matplotlib.axes.Axes.quiver`, e.g. ``color``, ``width``.
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
    fig, ax, coords, velocity = _draw_cells(
        adata,
        basis=basis,
        vkey=vkey,
        color=color,
        title=title,
        legend_loc=legend_loc,
        figsize=figsize,
        ax=ax,
        scatter_kwds=scatter_kwds,
    )
    if n_arrows is not None and n_arrows < adata.n_obs:
        rng = np.random.default_rng(random_state)
        cells = np.sort(rng.choice(adata.n_obs, size=n_arrows, replace=False))
    else:
        cells = np.arange(adata.n_obs)
    extent = np.max(coords.max(axis=0) - coords.min(axis=0))
    length = arrow_length * extent / _CELL_ARROW_GRID
    _quiver(ax, coords[cells], velocity[cells], length=length, quiver_kwds=quiver_kwds)
    return finish(fig, ax, show=show, save=save, return_fig=return_fig)
