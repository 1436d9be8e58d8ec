"""Models saved by revelo 0.1.0 load and give the same results.

``tests/data/legacy/<case>/`` holds models of 60 simulated cells × 12 genes saved with
``save_anndata=True`` by revelo 0.1.0 (commit 960d9a9), and ``expected.json`` with that
version's ``get_rates()`` and ``get_latent_representation()``: a per-gene model, a shared-clock
model and a negative-binomial model with a batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import revelo

LEGACY = Path(__file__).parent.parent / "data" / "legacy"


@pytest.mark.parametrize("case", ["gene", "shared", "nb_batch"])
def test_model_saved_by_0_1_0_loads_with_same_results(case):
    folder = LEGACY / case
    expected = json.loads((folder / "expected.json").read_text())
    model = revelo.REVELO.load(folder, accelerator="cpu")
    np.testing.assert_allclose(model.get_rates().to_numpy(), expected["rates"], rtol=1e-5)
    np.testing.assert_allclose(
        model.get_latent_representation(), expected["latent_mean"], rtol=1e-4, atol=1e-5
    )
    velocity = model.get_velocity(n_samples=2)
    assert velocity.shape == (60, 12)
    assert np.isfinite(velocity.to_numpy()).all()
