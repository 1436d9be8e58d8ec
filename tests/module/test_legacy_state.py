"""State dicts in the layout of revelo 0.1.0 load into the current module."""

from __future__ import annotations

import pytest
import torch

from revelo._constants import REGISTRY_KEYS
from revelo.module import REVELOVAE

N_GENES, N_HIDDEN = 5, 8


def _module(seed, **kwargs):
    torch.manual_seed(seed)
    return REVELOVAE(N_GENES, n_hidden=N_HIDDEN, n_latent=2, **kwargs).eval()


def _as_0_1_0(state: dict, likelihood: str) -> dict:
    """The layout of 0.1.0: observation entries on the module, every decoder head built."""
    old = {}
    for key, value in state.items():
        old[key.removeprefix("observation.")] = value
    if likelihood != "gaussian":
        old["noise_raw"] = torch.randn(2, N_GENES)
    for name, width in (("rho", N_GENES), ("tau", N_GENES), ("cell_time", 1)):
        old.setdefault(f"decoder.{name}.weight", torch.randn(width, N_HIDDEN))
        old.setdefault(f"decoder.{name}.bias", torch.randn(width))
    return old


@pytest.mark.parametrize("time_mode", ["gene", "shared"])
@pytest.mark.parametrize("likelihood", ["gaussian", "nb"])
def test_state_dict_of_0_1_0_loads(time_mode, likelihood):
    saved = _module(0, time_mode=time_mode, likelihood=likelihood)
    with torch.no_grad():
        for parameter in saved.parameters():
            parameter.add_(0.1 * torch.randn_like(parameter))
    old = _as_0_1_0(saved.state_dict(), likelihood)
    assert "observation.noise_raw" not in old and "decoder.cell_time.weight" in old

    loaded = _module(1, time_mode=time_mode, likelihood=likelihood)
    loaded.load_state_dict(old)  # strict: every entry placed or deliberately dropped
    for key, value in saved.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value, rtol=0, atol=0)

    generator = torch.Generator().manual_seed(2)
    spliced = torch.poisson(torch.full((4, N_GENES), 3.0), generator)
    unspliced = torch.poisson(torch.full((4, N_GENES), 2.0), generator)
    covariates = {REGISTRY_KEYS.SIZE_FACTOR_KEY: torch.ones(4, 1)}
    with torch.no_grad():
        expected = saved.posterior_fit(spliced, unspliced, use_mean=True, covariates=covariates)
        got = loaded.posterior_fit(spliced, unspliced, use_mean=True, covariates=covariates)
    for key, value in expected.items():
        torch.testing.assert_close(got[key], value)


def test_current_state_dict_round_trips():
    saved = _module(0, likelihood="poisson", time_mode="shared")
    loaded = _module(1, likelihood="poisson", time_mode="shared")
    loaded.load_state_dict(saved.state_dict())
    assert set(loaded.state_dict()) == set(saved.state_dict())
    assert "observation.count_scale" in loaded.state_dict()
