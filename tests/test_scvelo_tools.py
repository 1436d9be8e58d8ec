"""Every scVelo tool and plot that reads velocity results runs on revelo's outputs.

One short fit on a small simulation whose cells run from one state to another (half the genes
are only induced), so that roots, end points and orderings have a right answer. scVelo's
velocity graph (against revelo's) and stream plot are tested in ``test_compat.py``; the
``fit_likelihood`` filters of ``latent_time`` and ``rank_velocity_genes``, on real data, in
``test_scvelo_keys.py``. ``tl.paga`` needs igraph.
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

import revelo
from revelo.pl._phase import kinetic_curve

scv = pytest.importorskip("scvelo")

#: scVelo's per-gene keys of a dynamical fit (``tl.recover_dynamics``) that its tools read.
#: ``fit_r2`` is left out: scVelo computes it itself when absent.
_DYNAMICAL_KEYS = (
    "alpha beta gamma t_ scaling std_u std_s likelihood u0 s0 pval_steady steady_u steady_s "
    "variance alignment_scaling"
).split()
#: Those that scVelo computes from the data alone, before it fits a gene.
_DATA_KEYS = ("std_u", "std_s", "pval_steady", "steady_u", "steady_s")


@pytest.fixture(scope="module")
def fitted():
    """A short fit with outputs added and scVelo's velocity graph."""
    import torch

    torch.set_num_threads(1)
    revelo.settings.seed = 0
    scv.settings.verbosity = 0
    raw = revelo.datasets.simulate(
        n_obs=300, n_vars=40, seed=0, noise="normal", induction_fraction=0.5
    )
    adata = revelo.pp.preprocess(raw, n_top_genes=None, min_shared_counts=10, normalize=False)
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=32)
    model.train(max_epochs=100, enable_progress_bar=False)
    model.add_outputs(adata, n_samples=5, uncertainty=False)
    scv.tl.velocity_graph(adata, n_jobs=1, show_progress_bar=False)
    return model, adata


@pytest.fixture
def adata(fitted):
    return fitted[1].copy()


@pytest.fixture
def close_figures():
    yield
    plt.close("all")


def _ranked(adata, key: str) -> pd.DataFrame:
    return pd.DataFrame(adata.uns[key]["names"])


def _dynamical_scores(adata) -> pd.DataFrame:
    """``rank_dynamical_genes``' scores as a genes × clusters table."""
    names = _ranked(adata, "rank_dynamical_genes")
    scores = pd.DataFrame(adata.uns["rank_dynamical_genes"]["scores"])
    return pd.DataFrame({c: pd.Series(scores[c].to_numpy(), index=names[c]) for c in names})


# --------------------------------------------------------------------------- the keys
def test_every_dynamical_key_is_written_and_finite(adata):
    for name in _DYNAMICAL_KEYS:
        assert np.isfinite(adata.var[f"fit_{name}"]).all(), name
    assert adata.uns["recover_dynamics"] == {
        "fit_connected_states": False,
        "fit_basal_transcription": False,
        "use_raw": False,
    }
    # No basal abundance, one shared time axis.
    assert (adata.var["fit_u0"] == 0).all() and (adata.var["fit_s0"] == 0).all()
    assert (adata.var["fit_alignment_scaling"] == 1).all()
    assert (adata.var["fit_variance"] > 0).all()


def test_data_statistics_are_scvelos_own(adata):
    """scVelo's recover_dynamics, on the same cells, gives the same data statistics."""
    genes = list(adata.var_names[:3])
    theirs = adata.copy()
    scv.tl.recover_dynamics(theirs, var_names=genes, max_iter=2, n_jobs=1)
    for name in (*_DATA_KEYS, "u0", "s0"):
        np.testing.assert_allclose(
            adata.var.loc[genes, f"fit_{name}"],
            theirs.var.loc[genes, f"fit_{name}"],
            rtol=1e-5,
            atol=1e-7,
            err_msg=name,
        )
    # The fitted ones differ: scVelo fitted its own curve.
    assert not np.allclose(adata.var.loc[genes, "fit_alpha"], theirs.var.loc[genes, "fit_alpha"])


# --------------------------------------------------------------------------- tools
def test_velocity_embedding_and_confidence(adata):
    scv.tl.velocity_embedding(adata, basis="umap")
    arrows = adata.obsm["velocity_umap"]
    assert arrows.shape == (adata.n_obs, 2) and np.isfinite(arrows).all()
    assert (np.linalg.norm(arrows, axis=1) > 0).mean() > 0.9

    scv.tl.velocity_confidence(adata)
    confidence = adata.obs["velocity_confidence"]
    assert np.isfinite(confidence).all() and (confidence.abs() <= 1 + 1e-6).all()
    assert confidence.mean() > 0.5  # neighbours' velocities agree along the trajectory
    assert (adata.obs["velocity_length"] >= 0).all()
    scv.tl.velocity_confidence_transition(adata)
    assert adata.obs["velocity_confidence_transition"].mean() > 0.5


def test_terminal_states_pseudotime_and_latent_time(adata):
    true_t = adata.obs["true_t"]
    scv.tl.terminal_states(adata)
    roots, ends = adata.obs["root_cells"], adata.obs["end_points"]
    assert roots.max() > 0 and ends.max() > 0
    assert np.average(true_t, weights=roots) < np.average(true_t, weights=ends)

    scv.tl.velocity_pseudotime(adata)
    pseudotime = adata.obs["velocity_pseudotime"]
    assert pseudotime.between(0, 1).all()
    assert spearmanr(pseudotime, true_t)[0] > 0.8

    revelos = adata.obs["latent_time"].copy()
    scv.tl.latent_time(adata)  # min_likelihood=0.1 on fit_likelihood
    assert adata.obs["latent_time"].between(0, 1).all()
    assert spearmanr(adata.obs["latent_time"], true_t)[0] > 0.6
    assert spearmanr(adata.obs["latent_time"], revelos)[0] > 0.6


def test_rank_velocity_genes(adata):
    scv.tl.rank_velocity_genes(adata, groupby="clusters", n_genes=5)
    names = _ranked(adata, "rank_velocity_genes")
    assert list(names.columns) == list(adata.obs["clusters"].cat.categories)
    ranked = set(np.ravel(names.to_numpy()))
    velocity_genes = adata.var_names[adata.var["velocity_genes"]]
    assert ranked <= set(velocity_genes[adata.var.loc[velocity_genes, "fit_likelihood"] > 0.1])
    assert np.isfinite(pd.DataFrame(adata.uns["rank_velocity_genes"]["scores"]).to_numpy()).all()


def test_rank_dynamical_genes(adata):
    """It failed with ``KeyError: 'fit_std_u'``; it ranks revelo's fitted genes by cluster."""
    scv.tl.rank_dynamical_genes(adata, n_genes=adata.n_vars)
    names = _ranked(adata, "rank_dynamical_genes")
    scores = pd.DataFrame(adata.uns["rank_dynamical_genes"]["scores"]).to_numpy()
    assert list(names.columns) == list(adata.obs["clusters"].cat.categories)
    for cluster in names:  # every fitted gene, once per cluster
        assert sorted(names[cluster]) == sorted(adata.var_names)
    assert np.isfinite(scores).all() and (scores >= 0).all()
    assert (np.diff(scores, axis=0) <= 0).all()
    assert scores[0].min() > 0

    # A curve twice too high fits worse: its likelihood falls in every cluster where it had one.
    gene = names.iloc[0, 0]
    before = _dynamical_scores(adata).loc[gene]
    wrong = adata.copy()
    wrong.var.loc[gene, "fit_alpha"] *= 2
    scv.tl.rank_dynamical_genes(wrong, n_genes=adata.n_vars)
    after = _dynamical_scores(wrong).loc[gene]
    scored = before > 0
    assert scored.sum() >= 2
    assert (after[scored] < before[scored] / 2).all()


def test_dynamical_velocity_from_revelos_curve(adata):
    """``tl.velocity(mode="dynamical")`` recomputes velocities from the fitted curve."""
    revelos = adata.layers["velocity"].copy()
    scv.tl.velocity(adata, mode="dynamical")
    theirs = adata.layers["velocity"]
    assert np.isfinite(theirs).all()
    agreement = [spearmanr(revelos[:, g], theirs[:, g])[0] for g in range(adata.n_vars)]
    assert np.median(agreement) > 0.5
    # scVelo's velocity genes: fit_likelihood above its min_likelihood=1e-3, among others.
    assert not (adata.var["velocity_genes"] & ~(adata.var["fit_likelihood"] > 1e-3)).any()


def test_differential_kinetic_test(adata):
    scv.tl.differential_kinetic_test(adata, groupby="clusters")
    record = adata.varm["fit_pvals_kinetics"]  # one field per cluster
    pvals = np.column_stack([np.ravel(record[name]) for name in record.dtype.names])
    assert pvals.shape == (adata.n_vars, adata.obs["clusters"].cat.categories.size)
    tested = np.isfinite(pvals)
    assert tested.any(axis=1).all()  # every gene was tested
    assert ((pvals[tested] >= 0) & (pvals[tested] <= 1)).all()
    assert adata.uns["recover_dynamics"]["fit_diff_kinetics"] == "clusters"
    flagged = adata.var["fit_diff_kinetics"].astype(str)
    categories = set(adata.obs["clusters"].cat.categories)
    for value in flagged[flagged.str.len() > 0]:
        assert set(value.split(",")) <= categories


def test_paga(adata, close_figures):
    pytest.importorskip("igraph")
    scv.tl.paga(adata, groups="clusters")
    # The transition from group i to group j at [j, i]; the groups are time bins, in order.
    transitions = adata.uns["paga"]["transitions_confidence"].toarray()
    n_groups = len(adata.obs["clusters"].cat.categories)
    forward = sum(transitions[i + 1, i] for i in range(n_groups - 1))
    backward = sum(transitions[i, i + 1] for i in range(n_groups - 1))
    assert forward > 0 and backward == 0
    scv.pl.paga(adata, basis="umap", show=False)


# --------------------------------------------------------------------------- plots
def test_embedding_plots(adata, close_figures):
    ax = scv.pl.velocity_embedding_grid(adata, basis="umap", show=False)
    assert any(len(q.U) > 0 for q in ax.collections if hasattr(q, "U"))
    ax = scv.pl.velocity_embedding(adata, basis="umap", show=False)
    quivers = [q for q in ax.collections if hasattr(q, "U")]
    assert quivers and sum(len(q.U) for q in quivers) > adata.n_obs // 2


def test_phase_portraits_draw_revelos_curve(fitted, adata, close_figures):
    """``pl.scatter`` on a gene draws the learned curve from ``var``; it is revelo's."""
    model, _ = fitted
    rates = model.get_rates()
    for gene in adata.var_names[:3]:
        ax = scv.pl.scatter(adata, basis=gene, show=False)
        (curve,) = [line for line in ax.get_lines() if line.get_label() == "learned dynamics"]
        # scVelo draws induction up to fit_t_ and repression up to the gene's latest time.
        alpha, beta, gamma, t_switch, scaling = rates.loc[gene]
        t_last = adata[:, gene].layers["fit_t"].max()
        t = np.concatenate(
            [np.linspace(0, t_switch, num=500), np.linspace(t_switch, t_last, num=500)]
        )
        u, s = kinetic_curve(alpha, beta, gamma, t_switch, t)
        np.testing.assert_allclose(curve.get_xdata(), s, atol=1e-4)
        np.testing.assert_allclose(curve.get_ydata(), scaling * u, atol=1e-4)
        plt.close("all")

    scv.pl.velocity(adata, var_names=list(adata.var_names[:2]), show=False)
    axes = plt.gcf().axes
    assert len(axes) >= 2 * 3  # phase portrait, velocity and expression per gene
    assert all(ax.has_data() for ax in axes)
