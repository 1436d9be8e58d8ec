"""Phase portraits draw each gene's curve for its fitted regime and name the regime."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
from anndata import AnnData

import revelo

REGIMES = ["full", "induction", "repression", "steady"]


def _adata():
    rng = np.random.default_rng(0)
    n_cells, n_genes = 50, 4
    adata = AnnData(
        X=rng.uniform(0, 1, (n_cells, n_genes)),
        var=pd.DataFrame(index=[f"g{i}" for i in range(n_genes)]),
    )
    adata.layers["Ms"] = rng.uniform(0, 3, (n_cells, n_genes))
    adata.layers["Mu"] = rng.uniform(0, 3, (n_cells, n_genes))
    # revelo's rates α 2, β 1, γ 0.5 with scaling 1 (scVelo's fit_beta is β / scaling)
    adata.var["fit_alpha"] = 2.0
    adata.var["fit_beta"] = 1.0
    adata.var["fit_gamma"] = 0.5
    adata.var["fit_t_"] = 8.0
    adata.var["fit_scaling"] = 1.0
    adata.var["fit_regime"] = pd.Categorical(REGIMES, categories=REGIMES)
    adata.uns["velocity_params"] = {"t_max": 20.0}
    return adata


def _curve(ax):
    line = next(line for line in ax.get_lines() if line.get_label() == "kinetic curve")
    return np.asarray(line.get_xdata()), np.asarray(line.get_ydata())


def test_each_regime_draws_its_own_curve_and_title():
    adata = _adata()
    axes = revelo.pl.phase_portrait(adata, list(adata.var_names), show=False, color=None)
    titles = [ax.get_title() for ax in axes]
    assert titles == ["g0", "g1 (induction only)", "g2 (repression only)", "g3 (steady)"]

    s_full, _ = _curve(axes[0])
    s_ind, u_ind = _curve(axes[1])
    # induction only: the induction part of the full curve, up to the switch, never decaying
    assert np.all(np.diff(s_ind) >= 0) and np.all(np.diff(u_ind) >= -1e-12)
    np.testing.assert_allclose(s_ind, s_full[: len(s_ind)])
    assert len(s_ind) < len(s_full)
    # repression only: starts at the induction steady state (α/γ, α/β) = (4, 2) and decays
    s_rep, u_rep = _curve(axes[2])
    np.testing.assert_allclose([s_rep[0], u_rep[0]], [4.0, 2.0])
    assert np.all(np.diff(u_rep) < 0)
    t = np.union1d(np.linspace(0.0, 20.0, 200), [8.0])  # the plot's grid, switch included
    np.testing.assert_allclose(u_rep, 2.0 * np.exp(-t), rtol=1e-6, atol=1e-9)
    # steady: one point at the steady state
    s_steady, u_steady = _curve(axes[3])
    np.testing.assert_allclose([s_steady[0], u_steady[0]], [4.0, 2.0])
    assert len(s_steady) == 1
