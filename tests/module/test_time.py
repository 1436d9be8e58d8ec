"""Time modes: built only when chosen, so every parameter of a step gets a gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from revelo._constants import REGISTRY_KEYS
from revelo.module import REVELOVAE, GeneTime, SharedClock, time_model


def test_unknown_time_mode_names_the_choices():
    # A misspelt mode used to run the per-gene time silently.
    with pytest.raises(ValueError, match="time_mode='Shared' is not one of 'gene', 'shared'"):
        REVELOVAE(4, time_mode="Shared")


def test_each_mode_builds_only_the_heads_it_reads():
    assert isinstance(time_model("gene", 20.0), GeneTime)
    assert isinstance(time_model("shared", 20.0), SharedClock)
    per_gene = REVELOVAE(4, n_hidden=8, n_latent=2)
    shared = REVELOVAE(4, n_hidden=8, n_latent=2, time_mode="shared")
    heads = {"rho", "tau", "cell_time"}
    assert {name for name in heads if hasattr(per_gene.decoder, name)} == {"rho", "tau"}
    assert {name for name in heads if hasattr(shared.decoder, name)} == {"rho", "cell_time"}
    assert "cell_time" not in per_gene.generative(torch.zeros(3, 2))
    assert "tau" not in shared.generative(torch.zeros(3, 2))


def _counts(n_cells=12, n_genes=4):
    generator = torch.Generator().manual_seed(0)
    return {
        REGISTRY_KEYS.X_KEY: torch.poisson(torch.full((n_cells, n_genes), 3.0), generator),
        REGISTRY_KEYS.U_KEY: torch.poisson(torch.full((n_cells, n_genes), 2.0), generator),
        REGISTRY_KEYS.TIME_PRIOR_KEY: torch.rand(n_cells, 1, generator=generator) * 20.0,
        REGISTRY_KEYS.BATCH_KEY: torch.tensor([[0], [1]] * (n_cells // 2)),
    }


@pytest.mark.parametrize("time_mode", ["gene", "shared"])
@pytest.mark.parametrize("likelihood", ["gaussian", "poisson", "nb"])
def test_every_parameter_gets_a_gradient(time_mode, likelihood):
    # Plain DDP stops at a step that leaves a trainable parameter without a gradient.
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    module = REVELOVAE(
        4,
        n_hidden=8,
        n_latent=2,
        time_mode=time_mode,
        likelihood=likelihood,
        n_batch=2,
        switch_unspliced=rng.uniform(0.5, 1, 4),
        switch_spliced=rng.uniform(0.5, 1, 4),
        steady_state_ratio=rng.uniform(0.5, 1, 4),
        residual_scale=np.full(4, 0.2),
    )
    _, _, loss = module(_counts())
    loss.loss.backward()
    missing = [
        name
        for name, parameter in module.named_parameters()
        if parameter.requires_grad and parameter.grad is None
    ]
    assert not missing
