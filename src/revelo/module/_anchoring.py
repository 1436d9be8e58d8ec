"""Warm-up anchors: pulls toward start values read off the data, fading out with the KL warm-up.

Two pulls keep the early fit away from solutions whose time runs backwards: the switch point
toward an upper quantile of each gene's (u, s), and the decoder's states toward the side of the
steady-state line u = γ′s that each cell lies on. Both are weighted by ``(1 − kl_weight)``, so
the final fit is the ELBO's alone.
"""

from __future__ import annotations

import numpy as np
import torch

from ._components import state_log_softmax


class AnchoringMixin:
    """The warm-up anchors of :class:`~revelo.module.REVELOVAE` (an :class:`torch.nn.Module`).

    It calls :meth:`_init_anchoring` in its constructor; the buffers are its own attributes.
    """

    def _init_anchoring(
        self,
        *,
        switch_unspliced: np.ndarray | None = None,
        switch_spliced: np.ndarray | None = None,
        switch_penalty: float = 0.2,
        steady_state_ratio: np.ndarray | None = None,
        residual_scale: np.ndarray | None = None,
        state_prior_weight: float = 1.0,
        state_prior_margin: float = 1.5,
    ) -> None:
        self.switch_penalty = switch_penalty
        self.state_prior_weight = state_prior_weight
        self.state_prior_margin = state_prior_margin
        buffers = (
            ("switch_u", switch_unspliced),
            ("switch_s", switch_spliced),
            ("steady_state_ratio", steady_state_ratio),
            ("residual_scale", residual_scale),
        )
        for name, value in buffers:
            tensor = None if value is None else torch.as_tensor(value, dtype=torch.float32)
            self.register_buffer(name, tensor)

    def state_anchoring(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        generative_outputs: dict,
        covariates: dict | None = None,
    ) -> torch.Tensor:
        """Log-probability of the side of the steady-state line each cell lies on, per gene.

        Above the line u = γ′s a gene is being induced, below it repressed. With ``r`` the
        residual u − γ′s in units of its spread and ``p = sigmoid(3 r)``, the term is
        ``p · log P(induction side) + (1 − p) · log P(repression side)`` under the decoder's
        state probabilities, times a smooth step that is 0 for ``|r|`` below
        ``state_prior_margin``: the line is fitted through the extreme cells, and where genes
        switch before reaching steady state it runs steeper than the true one, so the side of
        a cell close to it says little. Cells × genes.
        """
        log_scale = generative_outputs["log_covariate_scale"]
        observed_s, observed_u = self.scaled_observation(
            spliced, unspliced, covariates, None if log_scale is None else log_scale.detach()
        )
        residual = (observed_u - self.steady_state_ratio * observed_s) / self.residual_scale
        p_induction = torch.sigmoid(3.0 * residual)
        log_probs = state_log_softmax(generative_outputs["state_logits"])
        side = p_induction * torch.logsumexp(log_probs[..., :2], dim=-1) + (
            1 - p_induction
        ) * torch.logsumexp(log_probs[..., 2:], dim=-1)
        if self.state_prior_margin > 0:
            side = side * torch.sigmoid(8.0 * (residual.abs() - self.state_prior_margin))
        # Only a full switch has both sides: a gene whose cells all lie on one branch keeps
        # the states its regime opens.
        return side * (self.regime == 0)

    def anchoring_loss(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        generative_outputs: dict,
        covariates: dict | None,
        kl_weight: float,
    ) -> torch.Tensor | float:
        """Both anchors, weighted and faded by ``(1 − kl_weight)``; 0 when none applies."""
        loss = 0.0
        if self.steady_state_ratio is not None and self.state_prior_weight > 0:
            # While the KL warms up, pull the decoder's states toward the side of the
            # steady-state line that each cell lies on, so no gene settles into a fit whose
            # time runs backwards.
            side = self.state_anchoring(spliced, unspliced, generative_outputs, covariates)
            loss = loss - self.state_prior_weight * (1.0 - kl_weight) * side.sum(-1).mean()
        if self.switch_u is not None and self.switch_penalty > 0:
            anchor = (generative_outputs["u_switch"] - self.switch_u).square() + (
                generative_outputs["s_switch"] - self.switch_s
            ).square()
            # Per-cell switch points (branches): the pull is on their mean over the cells.
            anchor = anchor.mean(0).sum() if anchor.dim() > 1 else anchor.sum()
            loss = loss + self.switch_penalty * (1.0 - kl_weight) * anchor
        return loss
