"""Pure-torch modules: the variational kinetic model and its pieces."""

from __future__ import annotations

from ._components import (
    GaussianEncoder,
    KineticStateDecoder,
    kl_standard_normal,
    normal_log_prob,
    reparameterize,
)
from ._kinetics import induction, repression, solve_kinetics
from ._module import REVELOVAE

__all__ = [
    "REVELOVAE",
    "GaussianEncoder",
    "KineticStateDecoder",
    "induction",
    "kl_standard_normal",
    "normal_log_prob",
    "reparameterize",
    "repression",
    "solve_kinetics",
]
