"""Loading parameters saved by revelo 0.1.0, before the observation and time components."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import nn

#: Parameters and buffers of the observation model that 0.1.0 kept on the module itself.
_OBSERVATION_NAMES = ("noise_raw", "count_scale", "library_median", "log_theta")
#: Decoder heads that 0.1.0 built for both time modes.
_TIME_HEADS = ("rho", "tau", "cell_time")


def upgrade_state_dict(module: nn.Module, state_dict: dict, prefix: str = "") -> None:
    """Rename, in place, the entries of a 0.1.0 ``state_dict`` to those of ``module``.

    The observation model's entries move under ``observation.``; those it does not have (the
    Gaussian noise of a count model) are dropped, as are the decoder heads that the module's
    time mode does not build; a model saved before kinetic regimes gets every gene a full switch,
    and one saved before kinetic branches all-zero branch offsets and weights (one set of
    kinetics).
    A current ``state_dict`` is left as it is.

    Parameters
    ----------
    module
        The :class:`~revelo.module.REVELOVAE` being loaded.
    state_dict
        The entries to load, as passed to ``_load_from_state_dict``.
    prefix
        The module's prefix in ``state_dict``.
    """
    kept = module.observation.state_dict()
    for name in _OBSERVATION_NAMES:
        value = state_dict.pop(prefix + name, None)
        if value is not None and name in kept:
            state_dict[f"{prefix}observation.{name}"] = value
    for name in _TIME_HEADS:
        if name not in module.decoder.head_names:
            for part in ("weight", "bias"):
                state_dict.pop(f"{prefix}decoder.{name}.{part}", None)
    # Models saved before regimes existed fit every gene as a full switch.
    state_dict.setdefault(prefix + "regime", module.regime.new_zeros(module.regime.shape))
    # Models saved before kinetic branches had one set of kinetics: all-zero offsets (and
    # equal weights) make every branch that set.
    for name, tensor in module.state_dict().items():
        if "branch" in name:
            state_dict.setdefault(prefix + name, torch.zeros_like(tensor))
