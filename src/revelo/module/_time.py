"""Time modes: where the decoder places each cell on each gene's trajectory.

``"gene"`` (per-gene time, VeloVI's) lets every gene place the cell freely on its induction and
its repression; ``"shared"`` gives each cell one clock, which each gene may run a little ahead
of or behind. A mode names the decoder heads it reads (:class:`~revelo.module.KineticStateDecoder`
builds only those), turns their outputs into phase times, adds its own loss terms and may
restrict the states a gene can be in. :func:`time_model` picks one from the ``time_mode`` string;
a new mode is a new class here with the same members, a name in ``revelo._constants.TimeMode``
and a case in :func:`time_model`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from revelo._constants import REGISTRY_KEYS, TimeMode
from revelo._validation import check_time_mode


class PhaseTimes(NamedTuple):
    """Where the decoder puts a cell, per gene (cells × genes, or cells × genes × 4)."""

    #: Time since the start of induction, for the induction state.
    induction: torch.Tensor
    #: Time since the switch, for the repression state.
    repression: torch.Tensor
    #: Time on the axis [0, t_max] that each of the four states places the cell at.
    state: torch.Tensor
    #: Decoder outputs to report as they are (``rho``, ``tau``, ``cell_time``).
    outputs: dict[str, torch.Tensor]
    #: Time since the start of the axis for the repression of a repression-only gene, which
    #: starts from its induction steady state at t = 0.
    from_start: torch.Tensor | None = None


class GeneTime:
    """Per-gene time: each gene places the cell on its own trajectory (VeloVI's).

    The decoder's ``rho`` is the fraction of the induction phase elapsed and ``tau`` that of
    the repression phase.

    Parameters
    ----------
    t_max
        Length of the time axis.
    """

    #: Decoder heads with one output per gene, and with one output per cell.
    gene_heads: tuple[str, ...] = ("rho", "tau")
    cell_heads: tuple[str, ...] = ()

    def __init__(self, t_max: float):
        self.t_max = t_max

    def phase_times(self, heads: dict[str, torch.Tensor], t_switch: torch.Tensor) -> PhaseTimes:
        """Phase times from the decoder heads and the per-gene switch times."""
        rho, tau = heads["rho"], heads["tau"]
        t_induction = t_switch * rho
        t_repression = (self.t_max - t_switch) * tau
        # The off state (0, 0) is where induction starts, at t = 0; repression only tends
        # to it. The read-out (posterior_fit) leaves it out: a cell there may be early or late.
        state = torch.stack(
            (
                t_induction,
                t_switch * torch.ones_like(rho),
                t_switch + t_repression,
                torch.zeros_like(rho),
            ),
            dim=-1,
        )
        return PhaseTimes(
            t_induction, t_repression, state, {"rho": rho, "tau": tau}, self.t_max * tau
        )

    def loss(self, tensors: dict, generative_outputs: dict, kl_weight: float, n_genes: int):
        """No terms of its own."""
        return 0.0

    def allowed_states(self, generative_outputs: dict, t_switch: torch.Tensor) -> None:
        """Every state is open to every gene."""
        return None


class SharedClock:
    """One clock per cell, which each gene may run ahead of or behind by a bounded amount.

    The decoder's ``cell_time`` is the clock as a fraction of the axis and ``rho`` each gene's
    deviation from it, at most ``gene_time_spread × t_max`` either way.

    Parameters
    ----------
    t_max
        Length of the time axis.
    gene_time_spread
        The largest deviation of a gene's time from the cell's clock, as a fraction of
        ``t_max``.
    time_prior_weight
        Weight of the pull toward the registered initial ordering of the cells; it fades out
        with the KL warm-up, as ``(1 − kl_weight)``.
    clock_uniform_weight
        Weight (per gene) of :func:`uniform_clock_penalty` on each minibatch's clock values.
        Without it the clocks of all cells collapse into a short stretch of the axis, where
        each gene's deviation does the work of the clock.
    """

    gene_heads: tuple[str, ...] = ("rho",)
    cell_heads: tuple[str, ...] = ("cell_time",)

    def __init__(
        self,
        t_max: float,
        *,
        gene_time_spread: float = 0.1,
        time_prior_weight: float = 1.0,
        clock_uniform_weight: float = 30.0,
    ):
        self.t_max = t_max
        self.gene_time_spread = gene_time_spread
        self.time_prior_weight = time_prior_weight
        self.clock_uniform_weight = clock_uniform_weight

    def phase_times(self, heads: dict[str, torch.Tensor], t_switch: torch.Tensor) -> PhaseTimes:
        """Phase times from the decoder heads and the per-gene switch times."""
        rho, cell_time = heads["rho"], heads["cell_time"]
        deviation = self.gene_time_spread * self.t_max * (2 * rho - 1)
        gene_time = (self.t_max * cell_time + deviation).clamp(0.0, self.t_max)
        t_induction = torch.minimum(gene_time, t_switch)
        t_repression = (gene_time - t_switch).clamp_min(0.0)
        state = gene_time.unsqueeze(-1).expand(*gene_time.shape, 4)
        outputs = {"rho": rho, "cell_time": self.t_max * cell_time.squeeze(-1)}
        return PhaseTimes(t_induction, t_repression, state, outputs, gene_time)

    def loss(
        self, tensors: dict, generative_outputs: dict, kl_weight: float, n_genes: int
    ) -> torch.Tensor | float:
        """Pull toward the initial ordering (during warm-up) and spread of the clocks."""
        loss = 0.0
        clock = generative_outputs["cell_time"] / self.t_max
        time_prior = tensors.get(REGISTRY_KEYS.TIME_PRIOR_KEY)
        if time_prior is not None and self.time_prior_weight > 0:
            # Pull each cell's clock toward a data-driven initial ordering while the KL warms
            # up; the pull fades out with (1 − kl_weight), leaving the final fit to the ELBO.
            gap = (generative_outputs["cell_time"] - time_prior.squeeze(-1)) / self.t_max
            loss = (
                loss + self.time_prior_weight * (1.0 - kl_weight) * n_genes * gap.square().mean()
            )
        if self.clock_uniform_weight > 0:
            loss = loss + self.clock_uniform_weight * n_genes * uniform_clock_penalty(clock)
        return loss

    def allowed_states(self, generative_outputs: dict, t_switch: torch.Tensor) -> torch.Tensor:
        """Cells × genes × 4: the states on the clock's side of each gene's switch.

        Before the switch a gene can only be in induction or its steady state, after it only
        in repression or the off state.
        """
        before = generative_outputs["time"][..., 0] < t_switch
        return torch.stack((before, before, ~before, ~before), dim=-1)


TimeModel = GeneTime | SharedClock


def time_model(
    time_mode: TimeMode,
    t_max: float,
    *,
    gene_time_spread: float = 0.1,
    time_prior_weight: float = 1.0,
    clock_uniform_weight: float = 30.0,
) -> TimeModel:
    """The time mode named by ``time_mode``, with the options that apply to it.

    Parameters
    ----------
    time_mode
        ``"gene"`` (:class:`GeneTime`) or ``"shared"`` (:class:`SharedClock`).
    t_max
        Length of the time axis.
    gene_time_spread, time_prior_weight, clock_uniform_weight
        Shared clock: see :class:`SharedClock`.
    """
    check_time_mode(time_mode)
    if time_mode == "gene":
        return GeneTime(t_max)
    return SharedClock(
        t_max,
        gene_time_spread=gene_time_spread,
        time_prior_weight=time_prior_weight,
        clock_uniform_weight=clock_uniform_weight,
    )


def uniform_clock_penalty(clock: torch.Tensor) -> torch.Tensor:
    """Squared 2-Wasserstein distance from the clock values to a uniform spread on [0, 1].

    The ``n`` values (all entries of ``clock``, fractions of the time axis) are sorted and
    compared with the midpoints ``(i + 0.5) / n`` of ``n`` equal slices of [0, 1], the optimal
    coupling in one dimension: the penalty is the mean squared gap. It is 0 for evenly spread
    values and grows as they bunch up.
    """
    ordered, _ = torch.sort(clock.reshape(-1))
    n = ordered.shape[0]
    grid = (torch.arange(n, device=ordered.device, dtype=ordered.dtype) + 0.5) / n
    return (ordered - grid).square().mean()
