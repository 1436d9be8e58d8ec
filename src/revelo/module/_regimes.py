"""Kinetic regimes: which part of the one-switch trajectory a gene's cells cover.

A gene's data may show a full switch (induction, then repression), induction only (switched on
and still on when the last cell was sampled), repression only (decaying from its induction
steady state from the first cell on) or a steady state. Each regime opens a subset of the four
kinetic states (induction, induction steady state, repression, off) to the gene, and a
repression-only gene starts its repression from the induction steady state ``(α/β, α/γ)`` at the
start of the time axis rather than from a switch point.
"""

from __future__ import annotations

import torch

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
