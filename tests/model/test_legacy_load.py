"""Models saved in the 0.1.0 layout load and give the same results.

revelo 0.1.0 kept the observation model's parameters at the top of the module's state dict and
built all three decoder time heads whatever the time mode. ``LEGACY_KEYS`` records the entries
of three models that 0.1.0 saved (commit 960d9a9; 60 simulated cells × 12 genes): a per-gene
model, a shared-clock model and a negative-binomial model with a batch. Each test trains a small
model, rewrites its save into that layout (entries renamed, the extra ones 0.1.0 had added, the
options in 0.1.0's ``module_kwargs`` form) and loads it back: the loaded model must give the
rates and latent means of the model that was saved.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import revelo

_COMMON = [
    "alpha_raw",
    "beta_raw",
    "gamma_raw",
    "switch_raw",
    "unspliced_scaling_raw",
    "noise_raw",
    "switch_u",
    "switch_s",
    "steady_state_ratio",
    "residual_scale",
    "encoder.hidden.fc_layers.Layer 0.0.weight",
    "encoder.hidden.fc_layers.Layer 0.0.bias",
    "encoder.mean.weight",
    "encoder.mean.bias",
    "encoder.log_var.weight",
    "encoder.log_var.bias",
    "decoder.time_hidden.fc_layers.Layer 0.0.weight",
    "decoder.time_hidden.fc_layers.Layer 0.0.bias",
    "decoder.state_hidden.fc_layers.Layer 0.0.weight",
    "decoder.state_hidden.fc_layers.Layer 0.0.bias",
    "decoder.rho.weight",
    "decoder.rho.bias",
    "decoder.tau.weight",
    "decoder.tau.bias",
    "decoder.state_logits.weight",
    "decoder.state_logits.bias",
    "decoder.cell_time.weight",
    "decoder.cell_time.bias",
]
#: The state-dict entries of the models 0.1.0 saved, per case.
LEGACY_KEYS = {
    "gene": _COMMON,
    "shared": _COMMON,
    "nb_batch": [
        *_COMMON,
        "log_theta",
        "batch_log_scale",
        "count_scale",
        "library_median",
        "batch_log_scale_mean",
    ],
}
#: Shapes 0.1.0 gave the entries that the current module may not build (12 genes, 16 units).
LEGACY_SHAPES = {
    "noise_raw": (2, 12),
    "decoder.rho.weight": (12, 16),
    "decoder.rho.bias": (12,),
    "decoder.tau.weight": (12, 16),
    "decoder.tau.bias": (12,),
    "decoder.cell_time.weight": (1, 16),
    "decoder.cell_time.bias": (1,),
}
OPTIONS = {
    "gene": ({}, {}),
    "shared": ({"time_mode": "shared"}, {}),
    "nb_batch": ({"likelihood": "nb"}, {"batch_key": "batch"}),
}


def _as_0_1_0(state: dict, case: str) -> dict:
    """The module's state dict in 0.1.0's layout."""
    renamed = {key.removeprefix("observation."): value for key, value in state.items()}
    layout = {}
    for key in LEGACY_KEYS[case]:
        layout[key] = renamed.get(key, torch.zeros(LEGACY_SHAPES.get(key, (1,))))
    return layout


@pytest.mark.parametrize("case", ["gene", "shared", "nb_batch"])
def test_model_saved_in_the_0_1_0_layout_loads_with_same_results(case, tmp_path):
    model_options, setup_options = OPTIONS[case]
    adata = revelo.datasets.simulate(
        n_obs=60, n_vars=12, seed=0, **({"n_batches": 2} if setup_options else {})
    )
    if model_options.get("likelihood") == "nb":
        revelo.REVELO.setup_anndata(adata, "spliced", "unspliced", **setup_options)
    else:
        # Loading, not preprocessing, is tested: each layer scaled to [0, 1] per gene.
        for layer, scaled in (("spliced", "Ms"), ("unspliced", "Mu")):
            counts = np.asarray(adata.layers[layer], dtype=np.float32)
            adata.layers[scaled] = counts / np.maximum(counts.max(0), 1)
        revelo.REVELO.setup_anndata(adata)
    assert adata.n_vars == 12
    revelo.settings.seed = 0
    # 0.1.0 had one set of kinetics per gene
    model = revelo.REVELO(adata, n_hidden=16, n_latent=3, n_branches=1, **model_options)
    model.train(max_epochs=3, enable_progress_bar=False)
    model.save(tmp_path / "model")

    saved = torch.load(tmp_path / "model" / "model.pt", weights_only=False)
    saved["model_state_dict"] = _as_0_1_0(saved["model_state_dict"], case)
    likelihood = model_options.get("likelihood", "gaussian")
    saved["attr_dict"]["init_params_"] = {
        "kwargs": {"module_kwargs": {k: v for k, v in model_options.items() if k != "likelihood"}},
        "non_kwargs": {
            "n_hidden": 16,
            "n_latent": 3,
            "n_layers": 1,
            "dropout_rate": 0.1,
            "t_max": 20.0,
            "likelihood": likelihood,
        },
    }
    torch.save(saved, tmp_path / "model" / "model.pt")
    assert sorted(saved["model_state_dict"]) == sorted(LEGACY_KEYS[case])

    loaded = revelo.REVELO.load(tmp_path / "model", adata=adata.copy(), accelerator="cpu")
    np.testing.assert_allclose(loaded.get_rates().to_numpy(), model.get_rates().to_numpy())
    np.testing.assert_allclose(
        loaded.get_latent_representation(), model.get_latent_representation(), rtol=1e-6
    )
    velocity = loaded.get_velocity(n_samples=2)
    assert velocity.shape == (60, 12)
    assert np.isfinite(velocity.to_numpy()).all()
