"""Velocity uncertainty: spread of posterior draws in gene space and embedding; permutations."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse
from scipy.stats import spearmanr

import revelo
import revelo.model._uncertainty as uncertainty_module
from revelo._constants import REGISTRY_KEYS
from revelo.model._data import registered_tensors
from revelo.model._uncertainty import _cosine_statistics, _permute_within_groups

NOISE_GENE = 0
DIRECTIONAL = [
    "directional_variance",
    "directional_difference",
    "directional_cosine_sim_variance",
    "directional_cosine_sim_difference",
    "directional_cosine_sim_mean",
]
EXTRINSIC = [name.replace("directional", "extrinsic") for name in DIRECTIONAL]


@pytest.fixture(scope="module")
def adata():
    """A small preprocessed simulation whose first gene's (u, s) are replaced by pure noise."""
    raw = revelo.datasets.simulate(n_obs=200, n_vars=20, seed=0, noise="normal")
    adata = revelo.pp.preprocess(raw, n_top_genes=None, min_shared_counts=10, normalize=False)
    rng = np.random.default_rng(0)
    for layer in ("Ms", "Mu"):
        values = np.array(adata.layers[layer], dtype=np.float32)
        values[:, NOISE_GENE] = rng.uniform(size=adata.n_obs)
        adata.layers[layer] = values
    return adata


@pytest.fixture(scope="module")
def model(adata):
    torch.set_num_threads(1)
    revelo.settings.seed = 0
    data = adata.copy()
    revelo.REVELO.setup_anndata(data)
    model = revelo.REVELO(data, n_hidden=16)
    model.train(max_epochs=20, batch_size=32, enable_progress_bar=False)
    return model


def _naive_statistics(samples: np.ndarray, center: bool = True) -> np.ndarray:
    """Per-cell loop in numpy: columns in the order of DIRECTIONAL."""
    rows = []
    for cell in range(samples.shape[1]):
        draws = samples[:, cell].astype(np.float64)
        if center:
            draws = draws - draws.mean(1, keepdims=True)
        mean = draws.mean(0)
        cosines = []
        for draw in draws:
            norm = np.linalg.norm(draw) * np.linalg.norm(mean)
            if norm > 0:
                cosines.append(np.clip(draw @ mean / norm, -1, 1))
            else:
                cosines.append(float(np.array_equal(draw, mean)))
        cosines = np.array(cosines)
        angles = np.arccos(cosines)
        rows.append(
            [
                np.var(angles),
                np.percentile(angles, 95) - np.percentile(angles, 5),
                np.var(cosines),
                np.percentile(cosines, 95) - np.percentile(cosines, 5),
                np.mean(cosines),
            ]
        )
    return np.array(rows)


def _as_array(statistics: dict[str, torch.Tensor]) -> np.ndarray:
    names = [name.removeprefix("directional_") for name in DIRECTIONAL]
    return np.column_stack([statistics[name].numpy() for name in names])


@pytest.mark.parametrize("center", [True, False])
def test_cosine_statistics_match_a_per_cell_loop(center):
    rng = np.random.default_rng(1)
    spread = rng.uniform(0.01, 2.0, size=(1, 30, 1))
    samples = rng.normal(size=(1, 30, 8)) + spread * rng.normal(size=(12, 30, 8))
    samples[:, 0] = 0.0  # no velocity in any draw: a certain (if empty) direction
    samples[:, 1] = samples[0, 1]  # all draws identical
    samples[3, 2] = 0.0  # one zero draw
    result = _as_array(_cosine_statistics(torch.from_numpy(samples), center=center))
    expected = _naive_statistics(samples, center=center)
    np.testing.assert_allclose(result, expected, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(result[:2, [0, 1, 2, 3]], 0, atol=1e-6)
    np.testing.assert_allclose(result[:2, 4], 1)
    # the spread of the draws orders the cells
    assert spearmanr(spread.ravel()[2:], result[2:, 4]).statistic < -0.7


def test_directional_uncertainty_equals_naive_statistics_of_the_draws(model):
    adata = model.adata
    indices = [5, 0, 17, 199, 42]
    genes = list(adata.var_names[2:15])
    torch.manual_seed(3)
    frame, _ = model.get_directional_uncertainty(
        n_samples=6, indices=indices, gene_list=genes, batch_size=len(indices)
    )
    assert list(frame.columns) == DIRECTIONAL
    assert list(frame.index) == list(adata.obs_names[indices])

    tensors = registered_tensors(model.adata_manager)
    spliced = tensors[REGISTRY_KEYS.X_KEY][indices]
    unspliced = tensors[REGISTRY_KEYS.U_KEY][indices]
    model.module.eval()
    torch.manual_seed(3)
    with torch.inference_mode():
        # The minibatch is encoded once; each draw is z = μ + σ·ε with its own ε.
        encoded = model.module.inference(spliced, unspliced)
        mean, sd = encoded["qzm"], torch.exp(0.5 * encoded["qz_log_var"])
        draws = np.stack(
            [
                model.module.posterior_fit(
                    spliced, unspliced, z=mean + sd * torch.randn(mean.shape)
                )["velocity"].numpy()
                for _ in range(6)
            ]
        )
    expected = _naive_statistics(draws[..., 2:15])
    np.testing.assert_allclose(frame.to_numpy(), expected, rtol=1e-6, atol=1e-9)


def test_directional_uncertainty_is_seeded_and_covers_all_cells(model):
    torch.manual_seed(0)
    first, _ = model.get_directional_uncertainty(n_samples=5, batch_size=64)
    torch.manual_seed(0)
    second, _ = model.get_directional_uncertainty(n_samples=5, batch_size=64)
    torch.manual_seed(1)
    other, _ = model.get_directional_uncertainty(n_samples=5, batch_size=64)
    pd.testing.assert_frame_equal(first, second)
    assert not np.allclose(first.to_numpy(), other.to_numpy())
    assert first.shape == (model.adata.n_obs, len(DIRECTIONAL))
    assert list(first.index) == list(model.adata.obs_names)
    assert np.isfinite(first.to_numpy()).all()
    assert first["directional_variance"].max() > 0


def test_default_minibatch_keeps_the_draws_within_budget(model, monkeypatch):
    # Shrink the budget so that 200 cells need several minibatches: each stack of draws
    # stays within it and every cell gets its statistics.
    budget = 30 * 5 * model.summary_stats.n_vars
    monkeypatch.setattr(uncertainty_module, "_DRAW_ELEMENTS", budget)
    sizes = []
    draws = uncertainty_module.posterior_stacks

    def recording(module, batches, key, n_samples, device):
        for stack in draws(module, batches, key, n_samples, device):
            sizes.append(stack.numel())
            yield stack

    monkeypatch.setattr(uncertainty_module, "posterior_stacks", recording)
    result, _ = model.get_directional_uncertainty(n_samples=5)
    assert len(sizes) == -(-model.adata.n_obs // 30)
    assert max(sizes) <= budget
    assert list(result.index) == list(model.adata.obs_names)
    assert np.isfinite(result.to_numpy()).all()


def _widen_posterior(model, monkeypatch, shift: float) -> None:
    """Add ``shift`` to the encoder's log-variance (and so widen every cell's posterior)."""
    encoder = model.module.encoder
    forward = encoder.forward

    def wider(x, *args):
        mean, log_var = forward(x, *args)
        return mean, log_var + shift

    monkeypatch.setattr(encoder, "forward", wider)


def test_wider_posterior_means_larger_directional_uncertainty(model, monkeypatch):
    torch.manual_seed(0)
    narrow, _ = model.get_directional_uncertainty(n_samples=20)
    _widen_posterior(model, monkeypatch, 2.0)
    torch.manual_seed(0)
    wide, _ = model.get_directional_uncertainty(n_samples=20)
    agreement = "directional_cosine_sim_mean"
    assert (wide[agreement] < narrow[agreement]).mean() > 0.75
    assert wide[agreement].mean() < narrow[agreement].mean() - 0.02
    assert wide["directional_variance"].mean() > narrow["directional_variance"].mean()


def test_directional_uncertainty_rejects_bad_input(model):
    with pytest.raises(ValueError, match="at least 2"):
        model.get_directional_uncertainty(n_samples=1)
    with pytest.raises(KeyError, match=r"not in adata\.var_names"):
        model.get_directional_uncertainty(n_samples=2, gene_list=["no_such_gene"])


def _assert_same(before, after):
    assert set(before.layers) == set(after.layers)
    for key in before.layers:
        np.testing.assert_array_equal(before.layers[key], after.layers[key])
    pd.testing.assert_frame_equal(before.obs, after.obs)
    pd.testing.assert_frame_equal(before.var, after.var)
    assert set(before.obsm) == set(after.obsm)
    for key in before.obsm:
        np.testing.assert_array_equal(before.obsm[key], after.obsm[key])
    assert set(before.obsp) == set(after.obsp)
    for key in before.obsp:
        assert (sparse.csr_matrix(before.obsp[key]) != after.obsp[key]).nnz == 0
    assert set(before.uns) == set(after.uns)


def test_extrinsic_uncertainty(model, monkeypatch):
    adata = model.adata
    before = adata.copy()
    torch.manual_seed(0)
    frame = model.get_extrinsic_uncertainty(n_samples=4)
    assert list(frame.columns) == EXTRINSIC
    assert list(frame.index) == list(adata.obs_names)
    assert np.isfinite(frame.to_numpy()).all()
    assert frame["extrinsic_variance"].mean() > 1e-4
    _assert_same(before, adata)

    # identical draws give identical arrows: no spread
    from revelo.model import _posterior

    monkeypatch.setattr(_posterior, "reparameterize", lambda mean, log_var: mean)
    still = model.get_extrinsic_uncertainty(n_samples=3)
    np.testing.assert_allclose(still[EXTRINSIC[:4]].to_numpy(), 0, atol=1e-10)
    np.testing.assert_allclose(still["extrinsic_cosine_sim_mean"], 1)


def test_extrinsic_uncertainty_needs_neighbours_and_embedding(model):
    adata = model.adata.copy()
    del adata.obsm["X_umap"]
    with pytest.raises(KeyError, match="X_umap"):
        model.get_extrinsic_uncertainty(adata, n_samples=2)
    adata = model.adata.copy()
    del adata.obsp["distances"]
    with pytest.raises(KeyError, match="neighbour"):
        model.get_extrinsic_uncertainty(adata, n_samples=2)


def test_permute_within_groups_keeps_each_groups_values():
    values = torch.arange(24, dtype=torch.float32).reshape(8, 3)
    codes = np.array([0, 1, 0, 1, 0, 1, -1, 0])
    torch.manual_seed(0)
    permuted = _permute_within_groups(values, codes)
    for code in (0, 1):
        rows = codes == code
        for gene in range(3):
            assert sorted(permuted[rows, gene].tolist()) == sorted(values[rows, gene].tolist())
    np.testing.assert_array_equal(permuted[6], values[6])
    assert not torch.equal(permuted, values)
    # genes are shuffled independently: rows of the original do not move together
    group = torch.from_numpy(np.flatnonzero(codes == 0))
    moved = [tuple(row) for row in permuted[group].tolist()]
    assert set(moved) != {tuple(row) for row in values[group].tolist()}


def test_permutation_scores(model):
    adata = model.adata
    before = adata.copy()
    torch.manual_seed(0)
    scores, _ = model.get_permutation_scores("clusters", n_samples=3)
    types = adata.obs["clusters"].cat.categories
    assert scores.shape == (adata.n_vars, len(types))
    assert list(scores.index) == list(adata.var_names)
    assert list(scores.columns) == list(types)
    _assert_same(before, adata)

    per_gene = scores.mean(1)
    kinetic = per_gene.drop(adata.var_names[NOISE_GENE])
    assert kinetic.mean() > 1
    assert (kinetic > 0).mean() > 0.8
    assert per_gene.iloc[NOISE_GENE] < kinetic.min()

    with pytest.raises(KeyError, match="no 'cell_type'"):
        model.get_permutation_scores("cell_type")


def test_add_outputs_writes_plottable_uncertainty(model):
    adata = model.adata.copy()
    torch.manual_seed(0)
    model.add_outputs(adata, n_samples=3, extrinsic_uncertainty=True)
    for key in DIRECTIONAL + EXTRINSIC:
        assert key in adata.obs
        assert np.isfinite(adata.obs[key]).all()
    ax = revelo.pl.uncertainty(adata, key="directional_variance", show=False)
    drawn = np.sort(np.asarray(ax.collections[0].get_array()))
    np.testing.assert_allclose(drawn, np.sort(adata.obs["directional_variance"]))

    bare = model.adata.copy()
    del bare.obsm["X_umap"]
    model.add_outputs(bare, n_samples=3, extrinsic_uncertainty=True)
    assert set(DIRECTIONAL) <= set(bare.obs)
    assert not set(EXTRINSIC) & set(bare.obs)

    plain = model.adata.copy()
    model.add_outputs(plain, n_samples=3, uncertainty=False)
    assert not set(DIRECTIONAL) & set(plain.obs)


def test_add_outputs_takes_uncertainty_and_means_from_the_same_draws(model):
    adata = model.adata.copy()
    torch.manual_seed(1)
    model.add_outputs(adata, n_samples=4, batch_size=64)
    genes = adata.var_names[adata.var["velocity_genes"].to_numpy()]
    assert len(genes) > 0
    # The same draws, one query at a time: the same seed gives the same z per minibatch.
    torch.manual_seed(1)
    velocity = model.get_velocity(adata, n_samples=4, batch_size=64, return_numpy=True)
    torch.manual_seed(1)
    separate, _ = model.get_directional_uncertainty(
        adata, n_samples=4, gene_list=genes, batch_size=64
    )
    np.testing.assert_allclose(adata.layers["velocity"], velocity, rtol=1e-5, atol=1e-7)
    for key in DIRECTIONAL:
        np.testing.assert_allclose(adata.obs[key], separate[key], rtol=1e-5, atol=1e-9)
    # Draws of another seed give other statistics, so the comparison above can fail.
    torch.manual_seed(2)
    other, _ = model.get_directional_uncertainty(
        adata, n_samples=4, gene_list=genes, batch_size=64
    )
    assert not np.allclose(adata.obs["directional_variance"], other["directional_variance"])
