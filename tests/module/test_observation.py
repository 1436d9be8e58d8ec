"""Observation models: chosen once from the likelihood name; size factors on arrays and tensors."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

from revelo._constants import REGISTRY_KEYS
from revelo.module import (
    REVELOVAE,
    GaussianObservation,
    NegativeBinomialObservation,
    PoissonObservation,
    observation_model,
    size_factors,
)


@pytest.mark.parametrize(
    ("likelihood", "cls", "names"),
    [
        ("gaussian", GaussianObservation, {"noise_raw"}),
        ("poisson", PoissonObservation, {"count_scale", "library_median"}),
        ("nb", NegativeBinomialObservation, {"count_scale", "library_median", "log_theta"}),
    ],
)
def test_each_likelihood_owns_only_its_parameters(likelihood, cls, names):
    model = observation_model(likelihood, 4)
    assert type(model) is cls
    assert set(model.state_dict()) == names


def test_unknown_likelihood_names_the_choices():
    with pytest.raises(ValueError, match="'gaussian', 'poisson', 'nb'"):
        observation_model("Poisson", 4)


def test_size_factors_agree_on_arrays_and_tensors():
    rng = np.random.default_rng(0)
    library = rng.uniform(0, 50, (8, 2)).astype(np.float32)
    library[0] = 0.0  # an empty cell is floored, not zero
    median = np.array([[10.0, 5.0], [20.0, 8.0]], dtype=np.float32)
    batch = np.array([0, 1, 1, 0, 1, 0, 0, 1])
    expected = np.maximum(library / median[batch], 1e-3)
    from_arrays = size_factors(library, median, batch)
    from_tensors = size_factors(
        torch.from_numpy(library), torch.from_numpy(median), torch.from_numpy(batch)[:, None]
    )
    np.testing.assert_allclose(from_arrays, expected)
    np.testing.assert_allclose(from_tensors.numpy(), expected)
    # Without batches, the first row of medians.
    np.testing.assert_allclose(
        size_factors(library, median), np.maximum(library / median[0], 1e-3)
    )
    # A given factor (one per cell) serves both layers.
    given = rng.uniform(0.5, 2, 8)
    np.testing.assert_allclose(size_factors(library, median, batch, given), np.c_[given, given])
    tensor_given = size_factors(
        torch.from_numpy(library), torch.from_numpy(median), None, torch.from_numpy(given)[:, None]
    )
    np.testing.assert_allclose(tensor_given.numpy(), np.c_[given, given])


def test_poisson_state_log_joint_by_hand():
    count_scale = np.array([[2.0, 3.0], [1.0, 4.0]])
    module = REVELOVAE(
        2,
        n_hidden=8,
        n_latent=2,
        likelihood="poisson",
        count_scale=count_scale,
        library_median=[[6.0, 3.0]],
    ).eval()
    spliced = torch.tensor([[4.0, 2.0], [0.0, 7.0]])
    unspliced = torch.tensor([[1.0, 0.0], [3.0, 2.0]])
    size = {REGISTRY_KEYS.SIZE_FACTOR_KEY: torch.tensor([[0.5], [2.0]])}
    with torch.no_grad():
        generative = module.generative(torch.zeros(2, 2))
        log_joint = module.state_log_joint(spliced, unspliced, generative, size)
    mean_s, mean_u = generative["mean_s"].numpy(), generative["mean_u"].numpy()
    factor = np.array([0.5, 2.0])[:, None, None]
    rate_s = factor * count_scale[0][None, :, None] * (mean_s + 0.01)
    rate_u = factor * count_scale[1][None, :, None] * (mean_u + 0.01)
    log_prior = torch.log_softmax(generative["state_logits"], -1).numpy()
    expected = (
        log_prior
        + stats.poisson.logpmf(unspliced.numpy()[..., None], rate_u)
        + stats.poisson.logpmf(spliced.numpy()[..., None], rate_s)
    )
    np.testing.assert_allclose(log_joint.numpy(), expected, rtol=1e-5, atol=1e-5)
