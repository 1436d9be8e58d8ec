"""Each gene's regime chosen from its data along the cells' time."""

from __future__ import annotations

import numpy as np
import pytest

import revelo
from revelo.model._regimes import cell_order, regime_codes, velocity_potential


def _profiles(n_cells=600, seed=0):
    """Genes that rise and fall, only rise, only fall, stay flat; cells in shuffled order."""
    rng = np.random.default_rng(seed)
    t = rng.uniform(0, 1, n_cells)
    bump = np.exp(-(((t - 0.5) / 0.2) ** 2))
    rising = 1 - np.exp(-4 * t)
    falling = np.exp(-4 * t)
    flat = np.full(n_cells, 0.5)
    clean = np.stack([bump, rising, falling, flat], axis=1)
    noisy = lambda x: x + rng.normal(0, 0.05, x.shape)  # noqa: E731
    return t, noisy(clean), noisy(0.8 * clean)


def test_regime_codes_read_rise_and_fall_along_time():
    t, spliced, unspliced = _profiles()
    codes = regime_codes(unspliced, spliced, t)
    assert [revelo.module.REGIMES[code] for code in codes] == [
        "full",
        "induction",
        "repression",
        "steady",
    ]


def test_regime_codes_follow_the_order_of_time_only():
    t, spliced, unspliced = _profiles()
    # a monotone transform of time changes nothing; reversed time swaps the one-branch regimes
    np.testing.assert_array_equal(
        regime_codes(unspliced, spliced, np.exp(3 * t)), regime_codes(unspliced, spliced, t)
    )
    reversed_codes = regime_codes(unspliced, spliced, -t)
    assert [revelo.module.REGIMES[code] for code in reversed_codes][1:3] == [
        "repression",
        "induction",
    ]


def _trajectory(n_cells=300, seed=0):
    """Cells along a curve s(t) in 3 genes, their velocities ds/dt and a 10-neighbour graph."""
    from sklearn.neighbors import kneighbors_graph

    rng = np.random.default_rng(seed)
    t = np.sort(rng.uniform(0, 1, n_cells))
    spliced = np.stack([t, t**2, np.sin(2 * t)], axis=1)
    velocity = np.stack([np.ones_like(t), 2 * t, 2 * np.cos(2 * t)], axis=1)
    return t, velocity, spliced, kneighbors_graph(spliced, 10, include_self=False)


def _spearman(a, b):
    from scipy.stats import spearmanr

    return spearmanr(a, b)[0]


@pytest.mark.parametrize("chunk", [1 << 22, 7])
def test_velocity_potential_rises_where_the_velocities_lead(chunk):
    t, velocity, spliced, graph = _trajectory()
    assert _spearman(velocity_potential(velocity, spliced, graph, chunk=chunk), t) > 0.99
    assert _spearman(velocity_potential(-velocity, spliced, graph, chunk=chunk), t) < -0.99
    # noisy velocities still give the order
    rng = np.random.default_rng(1)
    noisy = velocity + rng.normal(0, 0.5, velocity.shape)
    assert _spearman(velocity_potential(noisy, spliced, graph, chunk=chunk), t) > 0.95


def test_velocity_potential_orders_a_steady_population_before_the_cells_it_leads_to():
    # cells resting at the start (velocity pointing on, but short per-gene progress) and a path
    rng = np.random.default_rng(0)
    from sklearn.neighbors import kneighbors_graph

    rest = rng.normal(0, 0.05, (100, 2))
    t = np.sort(rng.uniform(0.05, 1, 200))
    path = np.stack([t, t**2], axis=1) + rng.normal(0, 0.01, (200, 2))
    spliced = np.vstack([rest, path])
    velocity = np.vstack([np.tile([1.0, 0.0], (100, 1)), np.stack([np.ones_like(t), 2 * t], 1)])
    velocity += rng.normal(0, 0.3, velocity.shape)
    potential = velocity_potential(velocity, spliced, kneighbors_graph(spliced, 10))
    assert np.median(potential[:100]) < np.quantile(potential[100:], 0.1)


def test_velocity_potential_is_the_weighted_least_squares_fit_of_the_edge_flows():
    # independent computation: the edge incidence matrix and numpy's least squares
    rng = np.random.default_rng(2)
    n = 30
    spliced = rng.normal(size=(n, 4))
    velocity = rng.normal(size=(n, 4))
    dense = np.triu(rng.uniform(0.2, 1.0, (n, n)) * (rng.uniform(size=(n, n)) < 0.3), 1)
    dense[np.arange(n - 1), np.arange(1, n)] = 0.5  # connected
    graph = dense + dense.T
    from scipy import sparse

    potential = velocity_potential(velocity, spliced, sparse.csr_matrix(graph))

    def cosine(i, j):
        step = spliced[j] - spliced[i]
        return velocity[i] @ step / (np.linalg.norm(velocity[i]) * np.linalg.norm(step))

    rows, cols = np.nonzero(dense)
    incidence = np.zeros((len(rows), n))
    incidence[np.arange(len(rows)), cols] = 1
    incidence[np.arange(len(rows)), rows] = -1
    flow = np.array([(cosine(i, j) - cosine(j, i)) / 2 for i, j in zip(rows, cols)])
    root_weight = np.sqrt(dense[rows, cols])[:, None]
    expected, *_ = np.linalg.lstsq(root_weight * incidence, root_weight[:, 0] * flow, rcond=None)
    np.testing.assert_allclose(potential - potential.mean(), expected - expected.mean(), atol=1e-4)


def test_cell_order_follows_the_true_time_with_and_without_a_graph(trained):
    # on the graph, the velocities' potential; without one, the aggregated latent time
    true_t = trained.adata.obs["true_t"].to_numpy()
    assert _spearman(cell_order(trained), true_t) > 0.9
    graph = trained.adata.obsp.pop("connectivities")
    try:
        assert _spearman(cell_order(trained), true_t) > 0.9
    finally:
        trained.adata.obsp["connectivities"] = graph


def test_invalid_regimes_option(simulated):
    adata = simulated.copy()
    revelo.REVELO.setup_anndata(adata)
    with pytest.raises(ValueError, match="regimes="):
        revelo.REVELO(adata, regimes="some")


def test_full_model_writes_full_regimes(trained):
    adata = trained.adata.copy()
    trained.add_outputs(adata, n_samples=2)
    assert list(adata.var["fit_regime"].cat.categories) == list(revelo.module.REGIMES)
    assert (adata.var["fit_regime"] == "full").all()


@pytest.mark.slow
def test_auto_regimes_find_one_branch_genes():
    raw = revelo.datasets.simulate(
        n_obs=600,
        n_vars=40,
        seed=1,
        noise="nb",
        induction_fraction=0.2,
        repression_fraction=0.2,
        time_skew=2.0,
        library_noise=0.3,
        rates="broad",
    )
    adata = revelo.pp.preprocess(raw, n_top_genes=None, compute_umap=False)
    revelo.settings.seed = 0
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, regimes="auto")
    model.train(max_epochs=150, enable_progress_bar=False)
    model.add_outputs(adata, n_samples=5)
    codes = model.module.regime.numpy()
    np.testing.assert_array_equal(adata.var["fit_regime"].cat.codes.to_numpy(), codes)
    kind = adata.var["true_kind"].astype(str).to_numpy()
    fitted = adata.var["fit_regime"].astype(str).to_numpy()
    for name in ("induction", "repression"):
        assert np.mean(fitted[kind == name] == name) >= 0.8
    assert np.mean(fitted[kind == "full"] == "full") >= 0.7
    velocity = adata.layers["velocity"]
    assert (velocity[:, fitted == "induction"] >= 0).all()
    assert (velocity[:, fitted == "repression"] <= 0).all()
