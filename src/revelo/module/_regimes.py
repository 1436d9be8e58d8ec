"""Kinetic regimes: which part of the one-switch trajectory a gene's cells cover.

A gene's data may show a full switch (induction, then repression), induction only (switched on
and still on when the last cell was sampled), repression only (decaying from its induction
steady state from the first cell on) or a steady state. Each regime opens a subset of the four
kinetic states (induction, induction steady state, repression, off) to the gene, and a
repression-only gene starts its repression from the induction steady state ``(α/β, α/γ)`` at the
start of the time axis rather than from a switch point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ._kinetics import KineticPoint, repression, splicing_velocity

if TYPE_CHECKING:
    from ._time import PhaseTimes

#: Regime names, in the order of their codes (``module.regime`` holds the codes).
REGIMES = ("full", "induction", "repression", "steady")
FULL, INDUCTION, REPRESSION, STEADY = range(len(REGIMES))

#: Regimes × states (induction, induction steady state, repression, off): the open states.
STATE_MASK = torch.tensor(
    [
        [True, True, True, True],
        [True, True, False, True],
        [False, True, True, True],
        [False, True, False, False],
    ]
)
#: Added to the state logits of a closed state (finite, so that no NaN arises).
CLOSED_LOGIT = -1e4


def state_logit_offset(regime: torch.Tensor) -> torch.Tensor:
    """Genes × 4 offsets of the state logits: 0 where a state is open, a large negative if not."""
    mask = STATE_MASK.to(regime.device)[regime]
    return torch.where(mask, 0.0, CLOSED_LOGIT)


def repression_from_start(
    regime: torch.Tensor,
    repressed: KineticPoint,
    times: PhaseTimes,
    alpha: torch.Tensor,
    beta: torch.Tensor,
    gamma: torch.Tensor,
) -> tuple[KineticPoint, torch.Tensor]:
    """The repression state and the states' times, with repression-only genes started early.

    A repression-only gene decays from its induction steady state ``(α/β, α/γ)`` from the start
    of the time axis (``times.from_start``), not from a switch point; the other genes keep
    ``repressed`` and ``times.state`` as they are.

    Parameters
    ----------
    regime
        Each gene's regime code (:data:`REGIMES`).
    repressed
        The repression state of the one-switch trajectory (cells × genes).
    times
        Where the decoder puts each cell (:class:`~revelo.module.PhaseTimes`).
    alpha, beta, gamma
        Per-gene rates.

    Returns
    -------
    The repression state and the time of each of the four states (cells × genes × 4).
    """
    only_repressed = regime == REPRESSION
    if not only_repressed.any():
        return repressed, times.state
    u_decay, s_decay = repression(alpha / beta, alpha / gamma, beta, gamma, times.from_start)
    decay = (u_decay, s_decay, *splicing_velocity(u_decay, s_decay, 0.0, beta, gamma))
    repressed = type(repressed)(
        *(torch.where(only_repressed, a, b) for a, b in zip(decay, repressed, strict=True))
    )
    zeros = torch.zeros_like(times.from_start)
    start = torch.stack((times.state[..., 0], zeros, times.from_start, zeros), dim=-1)
    return repressed, torch.where(only_repressed.unsqueeze(-1), start, times.state)
