"""Closed-form solution of the splicing ODE.

The kinetics are du/dt = α − βu and ds/dt = βu − γs. From a start (u₀, s₀) with a constant
transcription rate α the solution after a time t is

    u(t) = u₀·e^{−βt} + α/β·(1 − e^{−βt})
    s(t) = s₀·e^{−γt} + α/γ·(1 − e^{−γt}) + (α − βu₀)·(e^{−γt} − e^{−βt})/(γ − β)

Induction starts at (0, 0) with α > 0; repression starts at the switch point with α = 0.
:func:`switch_trajectory` assembles the two phases and their velocities; it is the one place
where the one-switch trajectory is built, for the model, its plots and its tests.
The last ratio has the finite limit −t·e^{−βt} where β = γ, which :func:`exp_difference_ratio`
evaluates without cancellation, so the solution is exact for every β, γ > 0.
"""

from __future__ import annotations

from typing import NamedTuple

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


class KineticPoint(NamedTuple):
    """Abundances and their time derivatives at one point of a trajectory."""

    u: torch.Tensor
    s: torch.Tensor
    velocity_u: torch.Tensor
    velocity_s: torch.Tensor


class SwitchTrajectory(NamedTuple):
    """A point in induction, the switch point, and a point in repression (see below)."""

    induction: KineticPoint
    u_switch: torch.Tensor
    s_switch: torch.Tensor
    repression: KineticPoint


def switch_trajectory(
    alpha: torch.Tensor,
    beta: torch.Tensor,
    gamma: torch.Tensor,
    t_switch: torch.Tensor,
    t_induction: torch.Tensor,
    t_repression: torch.Tensor,
) -> SwitchTrajectory:
    """Expected (u, s) and velocities on the one-switch trajectory: induction, then repression.

    Induction runs from (0, 0) with transcription rate ``alpha`` until ``t_switch``; repression
    (no transcription) starts from the state reached there. The two phases are evaluated at
    their own times, so a cell may be placed on both at once (the model's mixture of states).

    Parameters
    ----------
    alpha, beta, gamma
        Transcription, splicing and degradation rates (positive).
    t_switch
        Time of the switch from induction to repression.
    t_induction
        Time since the start of induction, at most ``t_switch``.
    t_repression
        Time since the switch. All arguments broadcast together.

    Returns
    -------
    The induction point at ``t_induction``, the switch point ``(u_switch, s_switch)`` and the
    repression point at ``t_repression`` after the switch.
    """
    u_induction, s_induction = induction(alpha, beta, gamma, t_induction)
    u_switch, s_switch = induction(alpha, beta, gamma, t_switch)
    u_repression, s_repression = repression(u_switch, s_switch, beta, gamma, t_repression)
    return SwitchTrajectory(
        KineticPoint(
            u_induction,
            s_induction,
            *splicing_velocity(u_induction, s_induction, alpha, beta, gamma),
        ),
        u_switch,
        s_switch,
        KineticPoint(
            u_repression,
            s_repression,
            *splicing_velocity(u_repression, s_repression, 0.0, beta, gamma),
        ),
    )


def switch_trajectory_at(
    alpha: torch.Tensor,
    beta: torch.Tensor,
    gamma: torch.Tensor,
    t_switch: torch.Tensor,
    t: torch.Tensor,
) -> KineticPoint:
    """The one-switch trajectory on one time axis: induction, then repression from ``t_switch``.

    Parameters
    ----------
    alpha, beta, gamma
        Transcription, splicing and degradation rates (positive).
    t_switch
        Time of the switch from induction to repression.
    t
        Times on the axis, starting at 0 (the start of induction).

    Returns
    -------
    ``(u, s, velocity_u, velocity_s)`` at each time, from :func:`switch_trajectory`.
    """
    path = switch_trajectory(
        alpha, beta, gamma, t_switch, torch.minimum(t, t_switch), (t - t_switch).clamp_min(0.0)
    )
    induced = t < t_switch
    return KineticPoint(
        *(
            torch.where(induced, before, after)
            for before, after in zip(path.induction, path.repression, strict=True)
        )
    )
