from __future__ import annotations

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from revelo.datasets import simulate
from revelo.datasets._simulate import _splicing_solution, _switch_solution


def test_shapes_dtypes_and_ground_truth_keys():
    adata = simulate(n_obs=50, n_vars=7, seed=1)
    assert adata.shape == (50, 7)
    for key in ("spliced", "unspliced"):
        assert np.issubdtype(adata.layers[key].dtype, np.integer)
        assert (adata.layers[key] >= 0).all()
    assert np.issubdtype(adata.X.dtype, np.integer)
    np.testing.assert_array_equal(adata.X, adata.layers["spliced"])
    for key in ("true_velocity", "true_velocity_u", "true_spliced", "true_unspliced"):
        assert adata.layers[key].shape == (50, 7)
        assert np.issubdtype(adata.layers[key].dtype, np.floating)
    for key in ("true_alpha", "true_beta", "true_gamma", "true_t_switch"):
        assert (adata.var[key] > 0).all()
    t = adata.obs["true_t"].to_numpy()
    assert ((t >= 0) & (t <= 20)).all()
    assert adata.uns["simulation"]["seed"] == 1
    assert adata.uns["simulation"]["noise"] == "poisson"


def test_counts_reach_tens():
    adata = simulate(n_obs=300, n_vars=20)
    assert 10 <= np.median(adata.layers["spliced"].max(axis=0)) <= 200


def test_clusters_are_ordered_time_bins():
    adata = simulate(n_obs=200, n_vars=3, n_clusters=4)
    clusters = adata.obs["clusters"]
    assert list(clusters.cat.categories) == ["t0", "t1", "t2", "t3"]
    mean_time = adata.obs.groupby("clusters", observed=True)["true_t"].mean()
    assert mean_time.is_monotonic_increasing


def test_deterministic_by_seed():
    first, second = simulate(40, 5, seed=3), simulate(40, 5, seed=3)
    other = simulate(40, 5, seed=4)
    for key in ("spliced", "unspliced", "true_velocity"):
        np.testing.assert_array_equal(first.layers[key], second.layers[key])
    assert not np.array_equal(first.layers["spliced"], other.layers["spliced"])
    np.testing.assert_array_equal(first.var["true_alpha"], second.var["true_alpha"])


def test_truth_matches_numerical_integration_of_the_ode():
    adata = simulate(n_obs=30, n_vars=4, seed=5)
    t = adata.obs["true_t"].to_numpy()
    order = np.argsort(t)
    for gene in range(adata.n_vars):
        alpha, beta, gamma, t_switch = (
            adata.var[f"true_{key}"].iloc[gene] for key in ("alpha", "beta", "gamma", "t_switch")
        )

        def rhs(time, y, alpha=alpha, beta=beta, gamma=gamma, t_switch=t_switch):
            rate = alpha if time < t_switch else 0.0
            return [rate - beta * y[0], beta * y[0] - gamma * y[1]]

        solution = solve_ivp(
            rhs,
            (0, t.max()),
            [0.0, 0.0],
            t_eval=t[order],
            rtol=1e-10,
            atol=1e-10,
            max_step=0.05,
        )
        u, s = solution.y
        np.testing.assert_allclose(adata.layers["true_unspliced"][order, gene], u, atol=1e-4)
        np.testing.assert_allclose(adata.layers["true_spliced"][order, gene], s, atol=1e-4)
        np.testing.assert_allclose(
            adata.layers["true_velocity"][order, gene], beta * u - gamma * s, atol=1e-4
        )
        rate = np.where(t[order] < t_switch, alpha, 0.0)
        np.testing.assert_allclose(
            adata.layers["true_velocity_u"][order, gene], rate - beta * u, atol=1e-4
        )


def test_true_velocity_is_the_time_derivative():
    adata = simulate(n_obs=20, n_vars=3, seed=2)
    var = adata.var
    t = adata.obs["true_t"].to_numpy()[:, None]
    # Finite difference of the closed form, away from the switch (where alpha jumps).
    step = 1e-5
    away = np.abs(t - var["true_t_switch"].to_numpy()) > 10 * step
    args = [var[f"true_{k}"].to_numpy() for k in ("alpha", "beta", "gamma", "t_switch")]
    u_hi, s_hi, _ = _switch_solution(t + step, *args)
    u_lo, s_lo, _ = _switch_solution(t - step, *args)
    ds = (s_hi - s_lo) / (2 * step)
    du = (u_hi - u_lo) / (2 * step)
    np.testing.assert_allclose(ds[away], adata.layers["true_velocity"][away], atol=1e-4)
    np.testing.assert_allclose(du[away], adata.layers["true_velocity_u"][away], atol=1e-4)


def test_equal_beta_and_gamma_use_the_limit():
    tau, alpha, u0, s0 = np.linspace(0, 5, 11), 3.0, 0.5, 1.0
    u_eq, s_eq = _splicing_solution(tau, alpha, 0.7, 0.7, u0, s0)
    u_near, s_near = _splicing_solution(tau, alpha, 0.7, 0.7 + 1e-6, u0, s0)
    assert np.isfinite(s_eq).all()
    np.testing.assert_allclose(u_eq, u_near, atol=1e-5)
    np.testing.assert_allclose(s_eq, s_near, atol=1e-5)


def _residual_variance_ratio(adata) -> float:
    mean = adata.layers["true_spliced"]
    observed = adata.layers["spliced"]
    high = mean > 5
    return float(np.mean((observed[high] - mean[high]) ** 2 / mean[high]))


def test_noise_models_differ_as_expected():
    poisson = simulate(400, 20, noise="poisson")
    nb = simulate(400, 20, noise="nb", dispersion=0.3)
    normal = simulate(400, 20, noise="normal")
    np.testing.assert_array_equal(poisson.layers["true_spliced"], nb.layers["true_spliced"])
    ratio_poisson = _residual_variance_ratio(poisson)
    assert 0.9 < ratio_poisson < 1.1  # Poisson: variance equals the mean
    assert _residual_variance_ratio(nb) > 2 * ratio_poisson
    assert _residual_variance_ratio(normal) > ratio_poisson  # sd = sqrt(mean) + 0.5
    for adata in (poisson, nb, normal):
        assert adata.layers["spliced"].min() >= 0


def test_invalid_options():
    with pytest.raises(ValueError, match="noise='gauss'"):
        simulate(10, 2, noise="gauss")
    with pytest.raises(ValueError, match="dispersion"):
        simulate(10, 2, noise="nb", dispersion=0)


# ---------------------------------------------------------------------------- partial dynamics


def _partial(**kwargs):
    options = {"induction_fraction": 0.2, "repression_fraction": 0.2, "steady_fraction": 0.1}
    return simulate(n_obs=400, n_vars=40, seed=2, **{**options, **kwargs})


def test_gene_kinds_have_the_asked_fractions():
    adata = _partial()
    counts = adata.var["true_kind"].value_counts()
    assert counts["induction"] == 8
    assert counts["repression"] == 8
    assert counts["steady"] == 4
    assert counts["full"] == 20
    switch = adata.var["true_t_switch"]
    kind = adata.var["true_kind"]
    assert np.isinf(switch[kind == "induction"]).all()
    assert (switch[kind == "repression"] == 0).all()
    assert switch[kind == "steady"].isna().all()
    assert switch[kind == "full"].between(0.3 * 20, 0.7 * 20).all()


def test_partial_kinds_follow_the_ode_from_their_start():
    adata = _partial()
    t = adata.obs["true_t"].to_numpy()
    order = np.argsort(t)
    for name in ("induction", "repression", "steady"):
        gene = int(np.flatnonzero(adata.var["true_kind"] == name)[0])
        alpha, beta, gamma = (
            adata.var[f"true_{key}"].iloc[gene] for key in ("alpha", "beta", "gamma")
        )
        rate = 0.0 if name == "repression" else alpha
        start = [0.0, 0.0] if name == "induction" else [alpha / beta, alpha / gamma]

        def rhs(time, y, rate=rate, beta=beta, gamma=gamma):
            return [rate - beta * y[0], beta * y[0] - gamma * y[1]]

        solution = solve_ivp(
            rhs, (0, t.max()), start, t_eval=t[order], rtol=1e-10, atol=1e-10, max_step=0.05
        )
        u, s = solution.y
        np.testing.assert_allclose(adata.layers["true_unspliced"][order, gene], u, atol=1e-4)
        np.testing.assert_allclose(adata.layers["true_spliced"][order, gene], s, atol=1e-4)
        velocity = adata.layers["true_velocity"][:, gene]
        if name == "induction":
            assert (velocity > 0).all()
        elif name == "repression":
            assert (velocity < 0).all()
        else:
            np.testing.assert_allclose(velocity, 0.0, atol=1e-9)
        np.testing.assert_allclose(
            adata.layers["true_velocity_u"][order, gene], rate - beta * u, atol=1e-4
        )


def test_default_options_leave_the_data_unchanged():
    plain = simulate(n_obs=120, n_vars=9, seed=7, noise="nb")
    explicit = simulate(
        n_obs=120,
        n_vars=9,
        seed=7,
        noise="nb",
        induction_fraction=0.0,
        repression_fraction=0.0,
        steady_fraction=0.0,
        time_skew=1.0,
        library_noise=0.0,
        rates="narrow",
    )
    for key in ("spliced", "unspliced", "true_velocity"):
        np.testing.assert_array_equal(plain.layers[key], explicit.layers[key])
    assert (plain.var["true_kind"] == "full").all()
    assert "true_library_factor" not in plain.obs


def test_time_skew_crowds_cells_early():
    even = simulate(n_obs=2000, n_vars=2, seed=0)
    skewed = simulate(n_obs=2000, n_vars=2, seed=0, time_skew=2.0)
    # t = 20 U², so the median is 20 · 0.5² = 5 and a quarter of the cells lie before 20/16
    assert abs(np.median(skewed.obs["true_t"]) - 5.0) < 0.5
    assert abs(np.mean(skewed.obs["true_t"] < 1.25) - 0.25) < 0.03
    assert abs(np.median(even.obs["true_t"]) - 10.0) < 0.6


def test_library_noise_scales_every_count_of_a_cell():
    adata = simulate(n_obs=3000, n_vars=30, seed=1, library_noise=0.5, noise="poisson")
    factor = adata.obs["true_library_factor"].to_numpy()
    assert abs(np.std(np.log(factor)) - 0.5) < 0.03
    expected = adata.layers["true_spliced"].sum(1) * factor
    observed = adata.layers["spliced"].sum(1)
    # Poisson counts around the scaled means: the ratio is 1 up to sampling noise
    assert abs(np.median(observed / expected) - 1.0) < 0.02
    without = adata.layers["true_spliced"].sum(1)
    assert (
        np.corrcoef(np.log(observed + 1), np.log(expected + 1))[0, 1]
        > np.corrcoef(np.log(observed + 1), np.log(without + 1))[0, 1]
    )


def test_broad_rates_span_their_ranges():
    adata = simulate(n_obs=10, n_vars=500, seed=0, rates="broad")
    for key, (low, high) in {"alpha": (3, 30), "beta": (0.25, 4), "gamma": (0.1, 1.5)}.items():
        values = adata.var[f"true_{key}"]
        assert values.between(low, high).all()
        # log-uniform: the bottom and top fifths of the log range are each about a fifth
        position = (np.log(values) - np.log(low)) / (np.log(high) - np.log(low))
        assert 0.14 < np.mean(position < 0.2) < 0.26
        assert 0.14 < np.mean(position > 0.8) < 0.26
    assert np.mean(np.abs(np.log(adata.var["true_beta"])) > np.log(1.5)) > 0.5


@pytest.mark.parametrize(
    "options",
    [
        {"induction_fraction": -0.1},
        {"induction_fraction": 0.6, "repression_fraction": 0.6},
        {"time_skew": 0.0},
        {"library_noise": -1.0},
        {"rates": "wide"},
    ],
)
def test_invalid_partial_dynamics_options(options):
    with pytest.raises(ValueError, match=r"must|not one of"):
        simulate(n_obs=10, n_vars=3, **options)
