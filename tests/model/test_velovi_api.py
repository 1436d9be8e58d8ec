"""VeloVI's documented calls run on REVELO and return what VeloVI returns.

The call sequence of scvi-tools' VeloVI test (synthetic data with spliced = unspliced = X,
one epoch) and the calls of VeloVI's tutorial, with its output helper written afresh below,
run on :class:`revelo.REVELO` and on ``scvi.external.VELOVI``. The results are compared by
type, shape, labels and dtype, and the same assertions of meaning are made on both models.
"""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from anndata import AnnData

import revelo

velovi = pytest.importorskip("scvi.external.velovi")

N_LATENT = 5
MODELS = ("revelo", "velovi")
GENES = ["gene_7", "gene_2", "gene_40"]
STATE_NAMES = ["induction", "induction_steady", "repression", "repression_steady"]
DIRECTIONAL = [
    "directional_variance",
    "directional_difference",
    "directional_cosine_sim_variance",
    "directional_cosine_sim_difference",
    "directional_cosine_sim_mean",
]
#: Defaults that REVELO keeps on purpose (see docs/coming_from.md): more posterior draws, and
#: velocities unclipped so that they equal the ones ``add_outputs`` writes.
OWN_DEFAULTS = {
    ("get_velocity", "n_samples"): 25,
    ("get_velocity", "clip"): False,
    ("get_latent_time", "n_samples"): 25,
    ("get_state_assignment", "n_samples"): 25,
    ("get_expression_fit", "n_samples"): 25,
    ("get_gene_likelihood", "n_samples"): 25,
}
QUERIES = (
    "get_latent_representation",
    "get_velocity",
    "get_latent_time",
    "get_state_assignment",
    "get_expression_fit",
    "get_gene_likelihood",
    "get_directional_uncertainty",
    "get_permutation_scores",
)


def _trained(cls):
    """scvi-tools' VeloVI test: synthetic counts as both layers, one epoch on half the cells."""
    from scvi.data import synthetic_iid

    adata = synthetic_iid()
    adata.layers["spliced"] = adata.X.copy()
    adata.layers["unspliced"] = adata.X.copy()
    cls.setup_anndata(adata, unspliced_layer="unspliced", spliced_layer="spliced")
    model = cls(adata, n_latent=N_LATENT)
    model.train(1, check_val_every_n_epoch=1, train_size=0.5)
    return model


@pytest.fixture(scope="module")
def models():
    revelo.settings.seed = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return {"revelo": _trained(revelo.REVELO), "velovi": _trained(velovi.VELOVI)}


def _structure(value):
    """What a result is made of: types, shapes, labels and dtype kinds, nested."""
    if isinstance(value, tuple):
        return ("tuple", [_structure(item) for item in value])
    if isinstance(value, list):
        return ("list", value)
    if isinstance(value, pd.DataFrame):
        kinds = {"f" if pd.api.types.is_float_dtype(dtype) else "names" for dtype in value.dtypes}
        return ("DataFrame", value.shape, list(value.index), list(value.columns), kinds)
    if isinstance(value, np.ndarray):
        return ("ndarray", value.shape, "f" if value.dtype.kind == "f" else "names")
    if isinstance(value, AnnData):
        return ("AnnData", value.shape, list(value.obs_names), list(value.var_names))
    raise TypeError(type(value))


def _quietly(function, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return function(*args, **kwargs)


@pytest.mark.parametrize("name", QUERIES)
def test_velovi_arguments_are_accepted_in_order_with_their_defaults(name):
    theirs = inspect.signature(getattr(velovi.VELOVI, name)).parameters
    ours = inspect.signature(getattr(revelo.REVELO, name)).parameters
    # scvi-tools' **data_loader_kwargs is left out: revelo does not build scvi-tools loaders.
    shared = [key for key, p in theirs.items() if p.kind is not p.VAR_KEYWORD]
    assert list(ours)[: len(shared)] == shared
    for key in shared[1:]:
        assert ours[key].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD, key
        expected = OWN_DEFAULTS.get((name, key), theirs[key].default)
        assert ours[key].default == expected, key
    for key in list(ours)[len(shared) :]:
        assert ours[key].kind is inspect.Parameter.KEYWORD_ONLY, key


def test_scvi_tools_test_sequence_gives_velovis_structures(models, capsys):
    def sequence(model, n_jobs):
        # VELOVI's default n_jobs=-1 starts a process pool; the result does not depend on it.
        return {
            "latent": model.get_latent_representation(),
            "velocity": model.get_velocity(),
            "time": model.get_latent_time(),
            "states": model.get_state_assignment(),
            "fit": model.get_expression_fit(),
            "likelihood": model.get_gene_likelihood(),
            "directional": model.get_directional_uncertainty(n_jobs=n_jobs),
            "permutation": model.get_permutation_scores(labels_key="labels"),
        }

    ours = _quietly(sequence, models["revelo"], -1)
    theirs = _quietly(sequence, models["velovi"], 1)
    for name in MODELS:
        assert len(models[name].history["elbo_train"]) == 1
        print(models[name])
    assert "REVELO" in capsys.readouterr().out
    for key in ours:
        if key == "likelihood":
            # VELOVI returns an array here whatever return_numpy says; its documentation, and
            # REVELO, a DataFrame of the same shape.
            assert ours[key].shape == theirs[key].shape
            assert isinstance(ours[key], pd.DataFrame)
            continue
        assert _structure(ours[key]) == _structure(theirs[key]), key


@pytest.mark.parametrize("name", MODELS)
def test_tutorial_calls_mean_the_same(models, name):
    model = models[name]
    adata = model.adata
    n, g = adata.shape
    genes = [gene for gene in adata.var_names if gene in GENES]
    spliced = np.asarray(adata.layers["spliced"], dtype=np.float64)

    velocity = _quietly(model.get_velocity, n_samples=25, velo_statistic="mean")
    assert velocity.shape == (n, g) and list(velocity.index) == list(adata.obs_names)
    assert _quietly(model.get_velocity, velo_statistic="max").shape == (n, g)
    draws = _quietly(model.get_velocity, n_samples=3, return_mean=False)
    assert isinstance(draws, np.ndarray) and draws.shape == (3, n, g)
    subset = _quietly(model.get_velocity, gene_list=GENES, clip=False)
    assert list(subset.columns) == genes
    overall = _quietly(model.get_velocity, n_samples_overall=7)
    assert overall.shape == (7, g) and set(overall.index) <= set(adata.obs_names)
    clipped = _quietly(model.get_velocity, clip=True, return_numpy=True)
    assert (clipped >= -spliced - 1e-6).all()

    t_max = float(model.module.t_max)
    time = _quietly(model.get_latent_time, time_statistic="max", gene_list=GENES, return_mean=True)
    assert list(time.columns) == genes
    assert time.to_numpy().min() >= 0 and time.to_numpy().max() <= t_max
    assert _quietly(model.get_latent_time, n_samples_overall=5).shape == (5, g)
    time_draws = _quietly(model.get_latent_time, n_samples=2, return_mean=False)
    assert time_draws.shape == (2, n, g)

    probs, names = _quietly(model.get_state_assignment, gene_list=GENES, return_numpy=True)
    assert names == STATE_NAMES and probs.shape == (n, len(genes), 4)
    np.testing.assert_allclose(probs.sum(-1), 1, rtol=1e-5)
    hard, names = _quietly(model.get_state_assignment, hard_assignment=True)
    assert hard.shape == (n, g) and set(np.unique(hard.to_numpy().astype(str))) <= set(names)

    fit_s, fit_u = _quietly(
        model.get_expression_fit, gene_list=GENES, return_mean=False, n_samples=2
    )
    assert fit_s.shape == fit_u.shape == (2, n, len(genes))
    restricted, _ = _quietly(model.get_expression_fit, restrict_to_latent_dim=0)
    assert restricted.shape == (n, g) and np.isfinite(restricted.to_numpy()).all()

    frame, cosines = _quietly(model.get_directional_uncertainty, adata, 10, None, 1)
    assert list(frame.columns) == DIRECTIONAL and list(frame.index) == list(adata.obs_names)
    assert cosines.shape == (n, 10)
    np.testing.assert_allclose(cosines.mean(1), frame["directional_cosine_sim_mean"], atol=1e-5)
    np.testing.assert_allclose(
        cosines.var(1), frame["directional_cosine_sim_variance"], rtol=1e-3, atol=1e-6
    )

    before = adata.layers["spliced"].copy()
    scores, permuted = _quietly(model.get_permutation_scores, "labels", adata)
    assert list(scores.index) == list(adata.var_names)
    assert list(scores.columns) == sorted(adata.obs["labels"].unique())
    np.testing.assert_array_equal(adata.layers["spliced"], before)
    assert permuted.shape == adata.shape and permuted is not adata
    shuffled = np.asarray(permuted.layers["spliced"])
    assert not np.array_equal(shuffled, before)
    for label in adata.obs["labels"].unique():
        rows = (adata.obs["labels"] == label).to_numpy()
        np.testing.assert_array_equal(np.sort(shuffled[rows], 0), np.sort(before[rows], 0))

    likelihood = np.asarray(_quietly(model.get_gene_likelihood, gene_list=GENES))
    assert likelihood.shape == (n, len(genes)) and np.isfinite(likelihood).all()
    assert _quietly(model.get_latent_representation, mc_samples=10).shape == (n, N_LATENT)


def add_velovi_outputs_to_adata(adata, vae):
    """The output helper of VeloVI's tutorial, as a user would write it."""
    latent_time = vae.get_latent_time(n_samples=25)
    velocities = vae.get_velocity(n_samples=25, velo_statistic="mean")
    scaling = 20 / latent_time.max(0)
    adata.layers["velocity"] = np.asarray(velocities / scaling)
    adata.layers["latent_time_velovi"] = np.asarray(latent_time)
    rates = vae.get_rates()
    for key in ("alpha", "beta", "gamma"):
        adata.var[f"fit_{key}"] = rates[key] / scaling
    switch = torch.nn.functional.softplus(vae.module.switch_time_unconstr)
    adata.var["fit_t_"] = switch.detach().cpu().numpy() * scaling
    adata.layers["fit_t"] = latent_time.values * np.asarray(scaling)[np.newaxis, :]
    adata.var["fit_scaling"] = 1.0


@pytest.mark.parametrize("name", MODELS)
def test_tutorial_output_helper_runs(models, name):
    model = models[name]
    adata = model.adata.copy()
    _quietly(add_velovi_outputs_to_adata, adata, model)
    n, g = adata.shape
    for key in ("velocity", "latent_time_velovi", "fit_t"):
        assert adata.layers[key].shape == (n, g) and np.isfinite(adata.layers[key]).all()
    for key in ("fit_alpha", "fit_beta", "fit_gamma", "fit_t_"):
        assert (adata.var[key] > 0).all(), key
    history = model.history
    assert {"elbo_train", "elbo_validation"} <= set(history)


def test_switch_time_unconstr_is_a_read_only_view_of_the_reported_switch_time(models):
    module = models["revelo"].module
    switch = torch.nn.functional.softplus(module.switch_time_unconstr)
    torch.testing.assert_close(switch, module.population_kinetics()[1].detach())
    assert not module.switch_time_unconstr.requires_grad
    assert "switch_time_unconstr" not in module.state_dict()
    with pytest.raises(AttributeError):
        module.switch_time_unconstr = switch
    np.testing.assert_allclose(models["revelo"].get_rates()["t_switch"], switch.numpy(), rtol=1e-5)


def test_revelo_only_shapes_of_the_velovi_arguments(models):
    model = models["revelo"]
    n, g = model.adata.shape
    # separate draws ask for an array; a DataFrame request is overruled with a warning
    with pytest.warns(UserWarning, match="return_numpy=False is ignored"):
        draws = model.get_gene_likelihood(n_samples=2, return_mean=False, return_numpy=False)
    assert draws.shape == (2, n, g)
    probs, _ = model.get_state_assignment(n_samples=2, return_mean=False)
    assert probs.shape == (2, n, g, 4)
    hard, _ = model.get_state_assignment(n_samples=2, return_mean=False, hard_assignment=True)
    assert hard.shape == (2, n, g) and set(np.unique(hard)) <= set(STATE_NAMES)
    # "max": the velocity of each draw's most probable state, 0 where that is a steady state
    torch.manual_seed(0)
    states, _ = model.get_state_assignment(n_samples=1)
    torch.manual_seed(0)
    top = model.get_velocity(n_samples=1, velo_statistic="max", return_numpy=True)
    torch.manual_seed(0)
    mean = model.get_velocity(n_samples=1, return_numpy=True)
    steady = np.isin(states.argmax(-1), [1, 3])
    assert steady.any() and (top[steady] == 0).all()
    certain = states.max(-1) > 0.999
    scale = np.abs(mean).max()
    np.testing.assert_allclose(top[certain], mean[certain], rtol=1e-2, atol=1e-4 * scale)
    assert not np.allclose(top, mean)
    # scvi-tools' dataloader argument: the same encoding as from adata
    loader = model._make_data_loader(adata=model.adata, batch_size=128)
    np.testing.assert_allclose(
        model.get_latent_representation(dataloader=loader),
        model.get_latent_representation(),
        atol=1e-6,
    )
    # n_jobs counts as joblib does in VeloVI: -1 all threads revelo may use, -2 one fewer
    for n_jobs in (-1, -2, 1):
        frame, _ = model.get_directional_uncertainty(n_samples=2, n_jobs=n_jobs)
        assert frame.shape == (n, len(DIRECTIONAL))
    with pytest.raises(ValueError, match="n_jobs=0"):
        model.get_directional_uncertainty(n_samples=2, n_jobs=0)
    with pytest.raises(ValueError, match="velo_statistic"):
        model.get_velocity(velo_statistic="median")
    with pytest.raises(ValueError, match="restrict_to_latent_dim"):
        model.get_expression_fit(restrict_to_latent_dim=N_LATENT)
    with pytest.raises(KeyError, match=r"not in adata\.var_names"):
        model.get_velocity(gene_list=["no_such_gene"])
