"""Pure-torch modules: the variational kinetic model and its pieces.

Everything that the model (:mod:`revelo.model`) and the plots use from here is public:
the module, its components (observation models, time modes, encoder and decoder), the
kinetics and the evidence helpers.
"""

from __future__ import annotations

from ._components import (
    GaussianEncoder,
    KineticStateDecoder,
    kl_standard_normal,
    normal_log_prob,
    reparameterize,
)
from ._covariates import covariates_of
from ._evidence import (
    free_bits_kl,
    importance_weighted_bound,
    kl_per_dimension,
    log_importance_weights,
)
from ._kinetics import (
    KineticPoint,
    SwitchTrajectory,
    induction,
    repression,
    solve_kinetics,
    splicing_velocity,
    switch_trajectory,
    switch_trajectory_at,
)
from ._module import REVELOVAE
from ._observation import (
    GaussianObservation,
    NegativeBinomialObservation,
    PoissonObservation,
    nb_log_prob,
    observation_model,
    poisson_log_prob,
    size_factors,
)
from ._regimes import REGIMES, STATE_MASK, state_logit_offset
from ._time import GeneTime, PhaseTimes, SharedClock, time_model, uniform_clock_penalty

__all__ = [
    "REGIMES",
    "REVELOVAE",
    "STATE_MASK",
    "GaussianEncoder",
    "GaussianObservation",
    "GeneTime",
    "KineticPoint",
    "KineticStateDecoder",
    "NegativeBinomialObservation",
    "PhaseTimes",
    "PoissonObservation",
    "SharedClock",
    "SwitchTrajectory",
    "covariates_of",
    "free_bits_kl",
    "importance_weighted_bound",
    "induction",
    "kl_per_dimension",
    "kl_standard_normal",
    "log_importance_weights",
    "nb_log_prob",
    "normal_log_prob",
    "observation_model",
    "poisson_log_prob",
    "reparameterize",
    "repression",
    "size_factors",
    "solve_kinetics",
    "splicing_velocity",
    "state_logit_offset",
    "switch_trajectory",
    "switch_trajectory_at",
    "time_model",
    "uniform_clock_penalty",
]
