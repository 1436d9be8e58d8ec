"""Registry keys shared by the model and the module."""

from __future__ import annotations

from typing import NamedTuple


class _RegistryKeys(NamedTuple):
    X_KEY: str = "X"  # spliced
    U_KEY: str = "U"  # unspliced
    TIME_PRIOR_KEY: str = "time_prior"  # initial cell ordering, used during warm-up only


REGISTRY_KEYS = _RegistryKeys()

#: Names of the four kinetic states, in the order the module stores them.
STATE_NAMES: tuple[str, ...] = (
    "induction",
    "induction_steady",
    "repression",
    "repression_steady",
)
