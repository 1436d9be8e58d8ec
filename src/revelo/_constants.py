"""Registry keys shared by the model and the module."""

from __future__ import annotations

from typing import Literal, NamedTuple, get_args


class _RegistryKeys(NamedTuple):
    X_KEY: str = "X"  # spliced
    U_KEY: str = "U"  # unspliced
    TIME_PRIOR_KEY: str = "time_prior"  # initial cell ordering, used during warm-up only
    BATCH_KEY: str = "batch"
    CAT_COVS_KEY: str = "extra_categorical_covs"
    CONT_COVS_KEY: str = "extra_continuous_covs"
    SIZE_FACTOR_KEY: str = "size_factor"


REGISTRY_KEYS = _RegistryKeys()

#: Names of the four kinetic states, in the order the module stores them.
STATE_NAMES: tuple[str, ...] = (
    "induction",
    "induction_steady",
    "repression",
    "repression_steady",
)

#: The two registered expression layers (spliced, unspliced).
EXPRESSION_KEYS: tuple[str, str] = (REGISTRY_KEYS.X_KEY, REGISTRY_KEYS.U_KEY)

#: Observation models of :class:`revelo.REVELO`.
Likelihood = Literal["gaussian", "poisson", "nb"]
LIKELIHOODS: tuple[str, ...] = get_args(Likelihood)

#: Time modes of :class:`revelo.REVELO`: a time per gene, or one clock per cell.
TimeMode = Literal["gene", "shared"]
TIME_MODES: tuple[str, ...] = get_args(TimeMode)
