"""Closed-form solution of the splicing ODE.

The kinetics are du/dt = α − βu and ds/dt = βu − γs. From a start (u₀, s₀) with a constant
transcription rate α the solution after a time t is

    u(t) = u₀·e^{−βt} + α/β·(1 − e^{−βt})
    s(t) = s₀·e^{−γt} + α/γ·(1 − e^{−γt}) + (α − βu₀)·(e^{−γt} − e^{−βt})/(γ − β)

Induction starts at (0, 0) with α > 0; repression starts at the switch point with α = 0.
The last ratio has the finite limit −t·e^{−βt} where β = γ, which :func:`exp_difference_ratio`
evaluates without cancellation, so the solution is exact for every β, γ > 0.
"""

from __future__ import annotations

import torch

# Below this |γ − β|·t the ratio switches to its Taylor series, where the direct difference
# of exponentials would lose most of its significant digits.
_SERIES_THRESHOLD = 1e-3


def exp_difference_ratio(beta: torch.Tensor, gamma: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Evaluate (e^{−γt} − e^{−βt}) / (γ − β), including its limit −t·e^{−βt} at β = γ.

    Parameters
    ----------
    beta, gamma
        Positive rates, broadcastable against ``t``.
    t
        Non-negative times.

    Returns
    -------
    The ratio, broadcast to the common shape; finite with finite gradients everywhere.
    """
    d = gamma - beta
    x = d * t
    near = x.abs() < _SERIES_THRESHOLD
    safe_d = torch.where(near, torch.ones_like(d), d)
    direct = (torch.exp(-gamma * t) - torch.exp(-beta * t)) / safe_d
    # e^{−βt}·(e^{−x} − 1)/d = −t·e^{−βt}·(1 − x/2 + x²/6 − …)
    series = -t * torch.exp(-beta * t) * (1 - x / 2 + x * x / 6)
    return torch.where(near, series, direct)


def solve_kinetics(
    u0: torch.Tensor | float,
    s0: torch.Tensor | float,
    alpha: torch.Tensor | float,
    beta: torch.Tensor,
    gamma: torch.Tensor,
    t: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Unspliced and spliced abundance a time ``t`` after the start ``(u0, s0)``.

    Parameters
    ----------
    u0, s0
        Abundances at the start.
    alpha
        Transcription rate (0 during repression).
    beta, gamma
        Splicing and degradation rates (positive).
    t
        Time since the start (non-negative). All arguments broadcast together.

    Returns
    -------
    ``(u, s)`` at time ``t``.
    """
    exp_beta = torch.exp(-beta * t)
    exp_gamma = torch.exp(-gamma * t)
    u = u0 * exp_beta + alpha / beta * (1 - exp_beta)
    s = (
        s0 * exp_gamma
        + alpha / gamma * (1 - exp_gamma)
        + (alpha - beta * u0) * exp_difference_ratio(beta, gamma, t)
    )
    return u, s


def induction(
    alpha: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Induction from (0, 0) with transcription rate ``alpha`` for a time ``t``."""
    return solve_kinetics(0.0, 0.0, alpha, beta, gamma, t)


def repression(
    u0: torch.Tensor, s0: torch.Tensor, beta: torch.Tensor, gamma: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Repression (no transcription) from the switch point ``(u0, s0)`` for a time ``t``."""
    return solve_kinetics(u0, s0, 0.0, beta, gamma, t)


def splicing_velocity(
    u: torch.Tensor,
    s: torch.Tensor,
    alpha: torch.Tensor | float,
    beta: torch.Tensor,
    gamma: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-hand side of the ODE: ``(du/dt, ds/dt) = (α − βu, βu − γs)``."""
    return alpha - beta * u, beta * u - gamma * s
