"""Plots render on small synthetic data and draw what they claim to draw."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import anndata as ad
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from matplotlib.collections import LineCollection, PathCollection
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.image import AxesImage
from matplotlib.legend import Legend
from matplotlib.quiver import Quiver

import revelo
from revelo.pl._utils import _DOCS

N_CELLS = 200
N_GENES = 6
T_MAX = 20.0


def _rotation(xy: np.ndarray) -> np.ndarray:
    """The synthetic flow: counter-clockwise rotation about the origin."""
    return np.column_stack([-xy[:, 1], xy[:, 0]])


def _closed_form(alpha, beta, gamma, t_switch, t):
    """Switching kinetics written out independently of revelo (numpy, β = γ limit by hand)."""

    def solve(u0, s0, a, t):
        eb, eg = np.exp(-beta * t), np.exp(-gamma * t)
        ratio = -t * eb if np.isclose(beta, gamma) else (eg - eb) / (gamma - beta)
        u = u0 * eb + a / beta * (1 - eb)
        s = s0 * eg + a / gamma * (1 - eg) + (a - beta * u0) * ratio
        return u, s

    t = np.asarray(t, dtype=float)
    u_on, s_on = solve(0.0, 0.0, alpha, np.minimum(t, t_switch))
    u0, s0 = solve(0.0, 0.0, alpha, np.asarray(t_switch))
    u_off, s_off = solve(u0, s0, 0.0, np.maximum(t - t_switch, 0))
    return np.where(t < t_switch, u_on, u_off), np.where(t < t_switch, s_on, s_off)


@pytest.fixture
def adata() -> ad.AnnData:
    """200 cells on a ring in UMAP space rotating counter-clockwise, with model outputs."""
    rng = np.random.default_rng(0)
    angle = rng.uniform(0, 2 * np.pi, N_CELLS)
    radius = rng.uniform(1, 3, N_CELLS)
    xy = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    adata = ad.AnnData(np.zeros((N_CELLS, N_GENES), dtype=np.float32))
    adata.var_names = [f"gene{i}" for i in range(N_GENES)]
    adata.obsm["X_umap"] = xy
    adata.obsm["velocity_umap"] = _rotation(xy)
    adata.obs["clusters"] = pd.Categorical(
        np.array(["A", "B", "C"])[(angle // (2 * np.pi / 3)).astype(int)]
    )
    adata.obs["latent_time"] = angle / (2 * np.pi)
    adata.obs["directional_variance"] = rng.gamma(2.0, size=N_CELLS)

    adata.var["fit_alpha"] = rng.uniform(1, 3, N_GENES)
    adata.var["fit_beta"] = rng.uniform(0.5, 1.5, N_GENES)
    adata.var["fit_gamma"] = rng.uniform(0.2, 0.8, N_GENES)
    adata.var.loc["gene0", "fit_gamma"] = adata.var.loc["gene0", "fit_beta"]  # β = γ limit
    adata.var["fit_t_"] = rng.uniform(5, 12, N_GENES)
    adata.uns["velocity_params"] = {"t_max": T_MAX}

    t = T_MAX * adata.obs["latent_time"].to_numpy()
    fit_u, fit_s = np.empty((N_CELLS, N_GENES)), np.empty((N_CELLS, N_GENES))
    for j, rates in enumerate(adata.var[["fit_alpha", "fit_beta", "fit_gamma", "fit_t_"]].values):
        fit_u[:, j], fit_s[:, j] = _closed_form(*rates, t)
    adata.layers["fit_u"], adata.layers["fit_s"] = fit_u, fit_s
    adata.layers["fit_t"] = np.repeat(t[:, None], N_GENES, axis=1)
    adata.layers["Mu"] = np.clip(fit_u + rng.normal(0, 0.1, fit_u.shape), 0, None)
    adata.layers["Ms"] = np.clip(fit_s + rng.normal(0, 0.2, fit_s.shape), 0, None)
    adata.layers["velocity"] = (
        adata.var["fit_beta"].values * fit_u - adata.var["fit_gamma"].values * fit_s
    )
    return adata


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _cells(ax) -> PathCollection:
    """The scatter of the cells: the first collection with one point per cell."""
    return next(
        c
        for c in ax.collections
        if isinstance(c, PathCollection) and len(c.get_offsets()) == N_CELLS
    )


def _quiver(ax) -> Quiver:
    (quiver,) = [c for c in ax.collections if isinstance(c, Quiver)]
    return quiver


def _cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


# ------------------------------------------------------------------ docs


@pytest.mark.parametrize("name", revelo.pl.__all__)
def test_docstring_placeholders_filled(name):
    doc = getattr(revelo.pl, name).__doc__
    assert "%(" not in doc
    assert "Parameters" in doc and "Returns" in doc
    assert "return_fig" in doc


def test_shared_docs_used():
    # every shared entry is used by at least one plot, so none goes stale unnoticed
    docs = "".join(getattr(revelo.pl, name).__doc__ for name in revelo.pl.__all__)
    for text in _DOCS.values():
        assert text in docs


# ------------------------------------------------------------------ embeddings


def test_stream_follows_flow(adata):
    ax = revelo.pl.velocity_embedding_stream(adata, show=False)
    (lines,) = [c for c in ax.collections if isinstance(c, LineCollection)]
    # one polyline per stream line (or one segment each, depending on matplotlib)
    polylines = lines.get_segments()
    start = np.concatenate([p[:-1] for p in polylines])
    step = np.concatenate([np.diff(p, axis=0) for p in polylines])
    assert len(step) > 50
    moving = np.linalg.norm(step, axis=1) > 0
    cosine = _cosine(step[moving], _rotation(start[moving]))
    assert np.median(cosine) > 0.95
    assert len(ax.patches) > 0  # stream arrow heads
    # nothing drawn in the empty disc at the centre of the ring
    assert np.min(np.linalg.norm(start, axis=1)) > 0.5


def test_grid_arrows_follow_flow(adata):
    ax = revelo.pl.velocity_embedding_grid(adata, grid_size=15, show=False)
    quiver = _quiver(ax)
    assert 0 < quiver.N < 15 * 15  # empty corners are masked
    xy = np.column_stack([quiver.X, quiver.Y])
    uv = np.column_stack([quiver.U, quiver.V])
    assert np.median(_cosine(uv, _rotation(xy))) > 0.95


def test_arrows_one_per_cell(adata):
    ax = revelo.pl.velocity_embedding(adata, show=False)
    quiver = _quiver(ax)
    assert quiver.N == N_CELLS
    np.testing.assert_allclose(np.column_stack([quiver.X, quiver.Y]), adata.obsm["X_umap"])
    np.testing.assert_allclose(np.column_stack([quiver.U, quiver.V]), adata.obsm["velocity_umap"])


def test_arrows_subsample(adata):
    ax = revelo.pl.velocity_embedding(adata, n_arrows=50, show=False)
    quiver = _quiver(ax)
    assert quiver.N == 50
    rows = [np.flatnonzero(np.isclose(adata.obsm["X_umap"][:, 0], x))[0] for x in quiver.X]
    np.testing.assert_allclose(quiver.U, adata.obsm["velocity_umap"][rows, 0])


@pytest.mark.parametrize(
    "plot",
    [
        revelo.pl.velocity_embedding_stream,
        revelo.pl.velocity_embedding_grid,
        revelo.pl.velocity_embedding,
    ],
)
def test_embedding_categorical_colors(adata, plot):
    ax = plot(adata, color="clusters", show=False)
    assert ax.get_title() == "clusters"
    assert ax.get_xlabel() == "UMAP1" and ax.get_ylabel() == "UMAP2"
    colors = [to_rgb(c) for c in adata.uns["clusters_colors"]]
    drawn = [tuple(c[:3]) for c in _cells(ax).get_facecolors()]
    expected = [colors[code] for code in adata.obs["clusters"].cat.codes]
    np.testing.assert_allclose(np.array(sorted(drawn)), np.array(sorted(expected)), atol=1e-6)
    legend_texts = {t.get_text() for t in ax.texts} | {
        t.get_text() for legend in [ax.get_legend()] if legend for t in legend.get_texts()
    }
    assert {"A", "B", "C"} <= legend_texts


def test_embedding_continuous_color_and_title(adata):
    ax = revelo.pl.velocity_embedding(adata, color="latent_time", title="time", show=False)
    assert ax.get_title() == "time"
    drawn = np.asarray(_cells(ax).get_array())
    np.testing.assert_allclose(np.sort(drawn), np.sort(adata.obs["latent_time"].to_numpy()))


def test_return_fig_ax_and_save(adata, tmp_path):
    fig = revelo.pl.velocity_embedding_stream(adata, return_fig=True)
    assert isinstance(fig, Figure)
    _, ax = plt.subplots()
    assert revelo.pl.velocity_embedding_grid(adata, ax=ax, show=False) is ax
    path = tmp_path / "stream.png"
    revelo.pl.velocity_embedding_stream(adata, save=path, show=False)
    assert path.stat().st_size > 0
    assert revelo.pl.velocity_embedding(adata, show=True) is None


def test_missing_umap(adata):
    del adata.obsm["X_umap"]
    with pytest.raises(KeyError, match=r"scanpy\.tl\.umap\(adata\).*revelo\.pp\.preprocess"):
        revelo.pl.velocity_embedding_stream(adata, show=False)


def test_missing_velocity(adata):
    del adata.obsm["velocity_umap"]
    del adata.layers["velocity"]
    with pytest.raises(KeyError, match=r"model\.add_outputs\(adata\)"):
        revelo.pl.velocity_embedding(adata, show=False)


def test_computes_velocity_embedding_when_absent(adata):
    # the flow in gene space is a linear image of the 2D rotation, so its projection rotates
    rng = np.random.default_rng(1)
    loadings = rng.normal(size=(2, N_GENES))
    xy = adata.obsm["X_umap"]
    adata.layers["Ms"] = xy @ loadings
    adata.layers["velocity"] = _rotation(xy) @ loadings
    adata.var["velocity_genes"] = True
    del adata.obsm["velocity_umap"]
    sc.pp.neighbors(adata, use_rep="X_umap", n_neighbors=15)
    ax = revelo.pl.velocity_embedding(adata, show=False)
    assert "velocity_graph" in adata.uns
    assert "velocity_umap" in adata.obsm
    quiver = _quiver(ax)
    uv = np.column_stack([quiver.U, quiver.V])
    assert np.median(_cosine(uv, _rotation(xy))) > 0.8


# ------------------------------------------------------------------ phase portrait


def _line(ax, label):
    (line,) = [line for line in ax.get_lines() if line.get_label() == label]
    return line


@pytest.mark.parametrize("gene", ["gene0", "gene1"])  # gene0 has β = γ
def test_phase_curve_matches_closed_form(adata, gene):
    ax = revelo.pl.phase_portrait(adata, gene, show=False)
    assert ax.get_title() == gene
    assert ax.get_xlabel() == "spliced (Ms, scaled moments)"
    assert ax.get_ylabel() == "unspliced (Mu, scaled moments)"
    curve = _line(ax, "kinetic curve").get_xydata()
    rates = adata.var.loc[gene, ["fit_alpha", "fit_beta", "fit_gamma", "fit_t_"]].to_numpy()
    t = np.linspace(0, T_MAX, 200)[[0, 30, 90, 150, 199]]
    u, s = _closed_form(*rates, t)
    for point in np.column_stack([s, u]):
        assert np.min(np.linalg.norm(curve - point, axis=1)) < 1e-8
    # the switch point is a vertex, so the corner is drawn sharp
    u_switch, s_switch = _closed_form(*rates, rates[3])
    assert np.min(np.linalg.norm(curve - [s_switch, u_switch], axis=1)) < 1e-8


def test_phase_steady_state_and_points(adata):
    ax = revelo.pl.phase_portrait(adata, "gene2", show=False)
    (x0, x1), (y0, y1) = np.transpose(_line(ax, "steady state").get_xydata())
    slope = adata.var.loc["gene2", "fit_gamma"] / adata.var.loc["gene2", "fit_beta"]
    assert (y1 - y0) / (x1 - x0) == pytest.approx(slope)
    offsets = _cells(ax).get_offsets()
    np.testing.assert_allclose(offsets[:, 0], adata[:, "gene2"].layers["Ms"].ravel())
    np.testing.assert_allclose(offsets[:, 1], adata[:, "gene2"].layers["Mu"].ravel())


def test_phase_fitted_curve_and_layer_color(adata):
    del adata.var["fit_alpha"]
    ax = revelo.pl.phase_portrait(adata, "gene3", color="fit_t", show=False)
    curve = _line(ax, "kinetic curve").get_xydata()
    order = np.argsort(adata.layers["fit_t"][:, 3], kind="stable")
    np.testing.assert_allclose(curve[:, 0], adata.layers["fit_s"][order, 3])
    np.testing.assert_allclose(curve[:, 1], adata.layers["fit_u"][order, 3])
    np.testing.assert_allclose(_cells(ax).get_array(), adata.layers["fit_t"][:, 3])
    with pytest.raises(KeyError, match=r"model\.add_outputs"):
        revelo.pl.phase_portrait(adata, "gene3", curve="rates", show=False)


def test_phase_several_genes_categorical(adata, tmp_path):
    axes = revelo.pl.phase_portrait(
        adata, ["gene1", "gene2", "gene3"], color="clusters", show=False
    )
    assert [ax.get_title() for ax in axes] == ["gene1", "gene2", "gene3"]
    colors = [to_rgb(c) for c in adata.uns["clusters_colors"]]
    expected = np.array([colors[code] for code in adata.obs["clusters"].cat.codes])
    np.testing.assert_allclose(_cells(axes[0]).get_facecolors()[:, :3], expected)
    assert [t.get_text() for t in axes[-1].get_legend().get_texts()] == ["A", "B", "C"]
    # an incomplete last row: the legend goes beside the top row's last panel, at the right
    axes = revelo.pl.phase_portrait(
        adata, ["gene1", "gene2", "gene3"], color="clusters", ncols=2, show=False
    )
    assert [ax.get_legend() is not None for ax in axes] == [False, True, False]
    path = tmp_path / "phase.pdf"
    fig = revelo.pl.phase_portrait(adata, ["gene1", "gene2"], save=path, return_fig=True)
    assert isinstance(fig, Figure) and path.exists()


def test_phase_errors(adata):
    with pytest.raises(KeyError, match="nope"):
        revelo.pl.phase_portrait(adata, "nope", show=False)
    with pytest.raises(ValueError, match="one Axes per gene"):
        revelo.pl.phase_portrait(adata, ["gene1", "gene2"], ax=plt.gca(), show=False)
    del adata.layers["Mu"]
    with pytest.raises(KeyError, match=r"model\.add_outputs\(adata\)"):
        revelo.pl.phase_portrait(adata, "gene1", show=False)


# ------------------------------------------------------------------ latent time, uncertainty


def test_latent_time_both_panels(adata):
    ax_embedding, ax_heatmap = revelo.pl.latent_time(adata, n_genes=4, show=False)
    drawn = np.asarray(_cells(ax_embedding).get_array())
    np.testing.assert_allclose(np.sort(drawn), np.sort(adata.obs["latent_time"]))
    assert ax_embedding.get_title() == "latent_time"
    (image,) = [i for i in ax_heatmap.get_images() if isinstance(i, AxesImage)]
    trends = image.get_array()
    assert trends.shape == (4, N_CELLS)
    assert trends.min() == pytest.approx(0) and trends.max() == pytest.approx(1)
    assert np.all(np.diff(np.argmax(trends, axis=1)) >= 0)  # genes ordered by peak time
    labels = [t.get_text() for t in ax_heatmap.get_yticklabels()]
    assert len(set(labels)) == 4 and set(labels) <= set(adata.var_names)
    assert ax_heatmap.get_xlabel() == "cells ordered by latent time"


def test_latent_time_heatmap_genes(adata):
    adata.var["fit_likelihood"] = np.arange(N_GENES, dtype=float)
    ax = revelo.pl.latent_time(adata, kind="heatmap", n_genes=3, title="trends", show=False)
    assert ax.get_title() == "trends"
    assert {t.get_text() for t in ax.get_yticklabels()} == {"gene5", "gene4", "gene3"}
    ax = revelo.pl.latent_time(adata, kind="heatmap", genes=["gene1", "gene2"], show=False)
    assert {t.get_text() for t in ax.get_yticklabels()} == {"gene1", "gene2"}


def test_latent_time_missing(adata):
    del adata.obs["latent_time"]
    with pytest.raises(KeyError, match=r"model\.add_outputs or revelo\.tl\.latent_time"):
        revelo.pl.latent_time(adata, show=False)


def test_uncertainty(adata, tmp_path):
    ax = revelo.pl.uncertainty(adata, show=False)
    assert ax.get_title() == "intrinsic velocity uncertainty"
    drawn = np.asarray(_cells(ax).get_array())
    np.testing.assert_allclose(np.sort(drawn), np.sort(adata.obs["directional_variance"]))
    revelo.pl.uncertainty(adata, save=tmp_path / "u.png", show=False)
    assert (tmp_path / "u.png").exists()
    with pytest.raises(KeyError, match=r"model\.add_outputs\(adata\)"):
        revelo.pl.uncertainty(adata, key="directional_cosine_sim_mean", show=False)


def test_auto_compute_calls_tools(adata, monkeypatch):
    del adata.obsm["velocity_umap"]
    calls = []

    def fake_graph(adata, *, vkey):
        calls.append(("graph", vkey))
        adata.uns[f"{vkey}_graph"] = None

    def fake_embedding(adata, *, basis, vkey):
        calls.append(("embedding", basis, vkey))
        adata.obsm[f"{vkey}_{basis}"] = _rotation(adata.obsm[f"X_{basis}"])

    monkeypatch.setattr(revelo.tl, "velocity_graph", fake_graph)
    monkeypatch.setattr(revelo.tl, "velocity_embedding", fake_embedding)
    revelo.pl.velocity_embedding_stream(adata, basis="X_umap", show=False)
    assert calls == [("graph", "velocity"), ("embedding", "umap", "velocity")]
    # a stored graph is reused; only the projection is redone
    del adata.obsm["velocity_umap"]
    revelo.pl.velocity_embedding_grid(adata, show=False)
    assert calls[2:] == [("embedding", "umap", "velocity")]


# ------------------------------------------------------------------ figures for a talk


def _colorbar_labels(fig) -> list[str]:
    return [a.get_ylabel() or a.get_xlabel() for a in fig.axes if a.get_label() == "<colorbar>"]


def test_phase_axes_follow_the_data_and_clip_the_curve(adata):
    # a gene whose kinetics reach far past the cells
    adata.var.loc["gene1", "fit_alpha"] = 30.0
    ax = revelo.pl.phase_portrait(adata, "gene1", show=False)
    s = adata[:, "gene1"].layers["Ms"].ravel()
    u = adata[:, "gene1"].layers["Mu"].ravel()
    assert ax.get_xlim() == pytest.approx((0, 1.05 * s.max()))
    assert ax.get_ylim() == pytest.approx((0, 1.05 * u.max()))
    assert _line(ax, "kinetic curve").get_xydata()[:, 1].max() > 2 * u.max()


def test_phase_legend_keys_lines_and_lists_present_clusters_under_a_title(adata):
    adata.obs["clusters"] = adata.obs["clusters"].cat.add_categories(["unused"])
    fig = revelo.pl.phase_portrait(
        adata, ["gene1", "gene2"], color="clusters", show=False, return_fig=True
    )
    legend = fig.axes[-1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["A", "B", "C"]
    assert legend.get_title().get_text() == "clusters"
    # the key of the fitted lines, below the grid
    (lines,) = fig.legends
    keys = {line.get_label(): line for line in lines.get_lines()}
    assert list(keys) == ["kinetic curve", "steady state u = γ/β · s"]
    assert keys["steady state u = γ/β · s"].get_linestyle() == "--"
    # on the caller's axes the key goes inside the panel
    _, ax = plt.subplots()
    revelo.pl.phase_portrait(adata, "gene1", color="clusters", ax=ax, show=False)
    texts = {
        t.get_text() for a in ax.get_children() if isinstance(a, Legend) for t in a.get_texts()
    }
    assert {"A", "B", "C", "kinetic curve"} <= texts


def test_phase_grid_has_no_empty_panels(adata):
    fig = revelo.pl.phase_portrait(
        adata, [f"gene{i}" for i in range(6)], color="clusters", show=False, return_fig=True
    )
    panels = [a for a in fig.axes if a.get_label() != "<colorbar>"]
    assert len(panels) == 6
    assert panels[0].get_subplotspec().get_gridspec().get_geometry() == (2, 3)


def test_phase_numeric_colour_bar_is_labelled(adata):
    fig = revelo.pl.phase_portrait(
        adata, "gene1", color="latent_time", show=False, return_fig=True
    )
    assert _colorbar_labels(fig) == ["latent time"]


def test_latent_time_labels_do_not_overlap_and_sit_clear_of_the_embedding(adata):
    genes = [f"g{i}" for i in range(60)]
    big = ad.AnnData(np.zeros((N_CELLS, 60), dtype=np.float32), obs=adata.obs.copy())
    big.var_names = genes
    big.obsm["X_umap"] = adata.obsm["X_umap"]
    rng = np.random.default_rng(1)
    big.layers["Ms"] = rng.random((N_CELLS, 60))
    fig = revelo.pl.latent_time(big, n_genes=60, show=False, return_fig=True)
    embedding, heatmap = fig.axes[0], next(a for a in fig.axes if a.get_images())
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in heatmap.get_yticklabels() if t.get_text()]
    assert 10 < len(boxes) <= 60
    assert all(a.y1 <= b.y0 or b.y1 <= a.y0 for a, b in itertools.pairwise(boxes))
    # names and label on the right of the heatmap, away from the embedding's colour bar
    right = heatmap.get_window_extent(renderer).x1
    assert all(box.x0 >= right for box in boxes)
    assert heatmap.yaxis.get_label_position() == "right"
    assert "genes ordered by peak time" in heatmap.get_ylabel()
    labels = _colorbar_labels(fig)
    assert "latent time" in labels
    assert "expression, scaled to [0, 1] per gene" in labels
    assert embedding.get_title() == "latent_time"


def test_uncertainty_title_and_colour_bar_say_what_is_shown(adata):
    adata.obs["extrinsic_cosine_sim_mean"] = adata.obs["directional_variance"]
    fig = revelo.pl.uncertainty(
        adata, key="extrinsic_cosine_sim_mean", show=False, return_fig=True
    )
    assert fig.axes[0].get_title() == "extrinsic velocity uncertainty"
    assert _colorbar_labels(fig) == ["cosine of draws to their mean: mean"]
    ax = revelo.pl.uncertainty(adata, title="mine", show=False)
    assert ax.get_title() == "mine"
