"""REVELOVAE: the variational kinetic model, pure torch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scvi.module._constants import MODULE_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from revelo._constants import REGISTRY_KEYS, Likelihood, TimeMode

from ._anchoring import AnchoringMixin
from ._components import (
    GaussianEncoder,
    KineticStateDecoder,
    kl_standard_normal,
    reparameterize,
    state_log_softmax,
    state_logsumexp,
    state_softmax,
    state_softmax_logsumexp,
)
from ._covariates import CovariateMixin, covariates_of
from ._evidence import free_bits_kl
from ._kinetics import switch_trajectory
from ._legacy import upgrade_state_dict
from ._observation import observation_model, softplus_inverse
from ._regimes import FULL, repression_from_start, state_logit_offset
from ._time import time_model
from ._velovi import VeloVINamesMixin


def _gene_parameter(init: np.ndarray | None, default: float, n_genes: int) -> nn.Parameter:
    """A per-gene parameter on the softplus scale, from a positive initial value."""
    value = np.full(n_genes, default, dtype=np.float32) if init is None else init
    return nn.Parameter(softplus_inverse(value))


class REVELOVAE(AnchoringMixin, CovariateMixin, VeloVINamesMixin, BaseModuleClass):
    """Variational autoencoder whose decoder is the splicing ODE.

    The encoder maps a cell's (spliced, unspliced) profile to q(z) = N(μ, σ²). The decoder maps
    z to each gene's position on a one-switch trajectory (induction, then repression) and to
    probabilities of four kinetic states; the closed-form ODE solution with per-gene α, β, γ and
    switch time turns that into expected (u, s) per state. The likelihood is a per-gene mixture
    over the four states of the observation model's distributions (:func:`observation_model`);
    where the decoder places the cell on each gene's trajectory is the time mode's
    (:func:`time_model`).

    Parameters
    ----------
    n_genes
        Number of genes.
    n_hidden
        Units per hidden layer of encoder and decoder.
    n_latent
        Latent dimension.
    n_layers
        Hidden layers of encoder and decoder.
    dropout_rate
        Encoder dropout.
    t_max
        Length of the time axis; induction and repression share [0, t_max].
    alpha_init, beta_init, gamma_init
        Initial per-gene rates (positive); defaults when ``None``.
    switch_time_init
        Initial per-gene switch time in (0, t_max).
    switch_unspliced, switch_spliced
        Per-gene (u, s) that the switch point is pulled toward during KL warm-up, usually an
        upper quantile of the data; no pull when ``None``.
    switch_penalty
        Weight of that pull; it fades out with the KL warm-up, as ``(1 − kl_weight)``.
    steady_scale_factor, noise_init
        Gaussian likelihood: see :class:`GaussianObservation`.
    time_mode
        ``"gene"``: each gene places the cell freely on its own trajectory (:class:`GeneTime`,
        VeloVI's). ``"shared"``: one clock per cell, which each gene may run ahead of or
        behind (:class:`SharedClock`); a gene's state then follows the clock's side of its
        switch in :meth:`posterior_fit`.
    gene_time_spread, time_prior_weight, clock_uniform_weight
        Shared clock: see :class:`SharedClock`.
    learn_unspliced_scaling
        Learn the per-gene factor from kinetic to observed unspliced (otherwise fixed at 1).
    steady_state_ratio, residual_scale
        Per-gene slope γ′ of the steady-state line u = γ′s of the data and the spread of the
        residual u − γ′s; together they define the state anchoring (none when ``None``).
    state_prior_weight
        Weight of the state anchoring (:meth:`state_anchoring`) during KL warm-up; it fades
        out as ``(1 − kl_weight)``.
    state_prior_margin
        Only entries more than this many residual spreads off the steady-state line are
        anchored (a smooth step); 0 anchors every entry.
    likelihood
        ``"gaussian"`` on scaled moments (VeloVI's), or ``"poisson"`` / ``"nb"`` (negative
        binomial with a learned per-gene inverse dispersion for each layer) on raw counts
        (:func:`observation_model`).
    count_scale, library_median
        Count likelihoods: see :class:`PoissonObservation`.
    n_batch
        Number of batches (1: none). The encoder and decoder are conditioned on the batch,
        and every batch but the first scales each gene's expected u and s by learned factors.
    n_cats_per_cov
        Categories of each further categorical covariate, handled like the batch.
    n_continuous_cov
        Number of continuous covariates: concatenated to the encoder's input and to z, and
        acting log-linearly on each gene's expected u and s.
    continuous_center, continuous_scale
        Training mean and standard deviation of the continuous covariates, used to
        standardise them.
    batch_log_scale_init
        Starting log-factors of batches 2, 3, … relative to the first, ``(n_batch − 1) × 2 ×
        n_genes`` (rows u, s); zeros when ``None``.
    n_branches
        Number of kinetic branches. With more than one, the decoder also gives each cell
        weights over the branches (a softmax), each branch has per-gene offsets of log α and
        of the switch time's logit, and a cell's α and switch time are mixed from them
        (:meth:`branch_kinetics`); β, γ and the unspliced scaling stay per gene.
    """

    def __init__(
        self,
        n_genes: int,
        *,
        n_hidden: int = 256,
        n_latent: int = 10,
        n_layers: int = 1,
        dropout_rate: float = 0.1,
        t_max: float = 20.0,
        alpha_init: np.ndarray | None = None,
        beta_init: np.ndarray | None = None,
        gamma_init: np.ndarray | None = None,
        switch_time_init: np.ndarray | None = None,
        switch_unspliced: np.ndarray | None = None,
        switch_spliced: np.ndarray | None = None,
        switch_penalty: float = 0.2,
        steady_scale_factor: float = 0.1,
        time_mode: TimeMode = "gene",
        gene_time_spread: float = 0.1,
        noise_init: float = 0.1,
        time_prior_weight: float = 1.0,
        clock_uniform_weight: float = 30.0,
        learn_unspliced_scaling: bool = True,
        steady_state_ratio: np.ndarray | None = None,
        residual_scale: np.ndarray | None = None,
        state_prior_weight: float = 1.0,
        state_prior_margin: float = 1.5,
        likelihood: Likelihood = "gaussian",
        count_scale: np.ndarray | None = None,
        library_median: np.ndarray | None = None,
        n_batch: int = 1,
        n_cats_per_cov: list[int] | None = None,
        n_continuous_cov: int = 0,
        continuous_center: np.ndarray | None = None,
        continuous_scale: np.ndarray | None = None,
        batch_log_scale_init: np.ndarray | None = None,
        n_branches: int = 1,
    ):
        super().__init__()
        self.n_branches = n_branches
        self.likelihood = likelihood
        self.time_mode = time_mode
        self.n_genes = n_genes
        self.n_latent = n_latent
        self.t_max = float(t_max)
        self.time = time_model(
            time_mode,
            self.t_max,
            gene_time_spread=gene_time_spread,
            time_prior_weight=time_prior_weight,
            clock_uniform_weight=clock_uniform_weight,
        )
        self.observation = observation_model(
            likelihood,
            n_genes,
            noise_init=noise_init,
            steady_scale_factor=steady_scale_factor,
            count_scale=count_scale,
            library_median=library_median,
            n_batch=n_batch,
        )

        self.alpha_raw = _gene_parameter(alpha_init, 1.0, n_genes)
        self.beta_raw = _gene_parameter(beta_init, 1.0, n_genes)
        self.gamma_raw = _gene_parameter(gamma_init, 0.5, n_genes)
        start = np.full(n_genes, 0.35 * t_max) if switch_time_init is None else switch_time_init
        t_switch = np.clip(start, 0.02 * t_max, 0.98 * t_max).astype(np.float32)
        self.switch_raw = nn.Parameter(torch.logit(torch.from_numpy(t_switch / self.t_max)))
        # Observed unspliced = scaling × kinetic unspliced: u and s are scaled separately per
        # gene in preprocessing, which would otherwise break the shared β of the two equations.
        self.unspliced_scaling_raw = _gene_parameter(None, 1.0, n_genes)
        self.unspliced_scaling_raw.requires_grad_(learn_unspliced_scaling)
        # Each gene's kinetic regime (codes of revelo.module.REGIMES); all full switches until
        # the data select others (set_regimes).
        self.register_buffer("regime", torch.zeros(n_genes, dtype=torch.long))
        if n_branches > 1:
            # Per branch and gene: log-factor of α and shift of the switch time's logit.
            self.branch_log_alpha = nn.Parameter(torch.zeros(n_branches, n_genes))
            self.branch_switch_shift = nn.Parameter(torch.zeros(n_branches, n_genes))
            # The cells' mean weights over the branches, set after training; its kinetics are
            # the per-gene ones reported (population_kinetics).
            self.register_buffer("branch_mean", torch.full((n_branches,), 1.0 / n_branches))

        self._init_anchoring(
            switch_unspliced=switch_unspliced,
            switch_spliced=switch_spliced,
            switch_penalty=switch_penalty,
            steady_state_ratio=steady_state_ratio,
            residual_scale=residual_scale,
            state_prior_weight=state_prior_weight,
            state_prior_margin=state_prior_margin,
        )

        self._init_covariates(
            n_genes,
            n_batch=n_batch,
            n_cats_per_cov=n_cats_per_cov,
            n_continuous_cov=n_continuous_cov,
            continuous_center=continuous_center,
            continuous_scale=continuous_scale,
            batch_log_scale_init=batch_log_scale_init,
        )
        n_cat_list = [n_batch, *self.n_cats_per_cov]

        self.encoder = GaussianEncoder(
            2 * n_genes,
            n_latent,
            n_hidden=n_hidden,
            n_layers=n_layers,
            dropout_rate=dropout_rate,
            n_cat_list=n_cat_list,
            n_continuous=n_continuous_cov,
        )
        self.decoder = KineticStateDecoder(
            n_latent,
            n_genes,
            n_hidden=n_hidden,
            n_layers=n_layers,
            n_cat_list=n_cat_list,
            n_continuous=n_continuous_cov,
            gene_heads=self.time.gene_heads,
            cell_heads=self.time.cell_heads,
            n_branches=n_branches,
        )

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # Models saved before the observation and time components had their own modules.
        upgrade_state_dict(self, state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def set_regimes(self, regime: np.ndarray | torch.Tensor) -> None:
        """Set each gene's kinetic regime (codes of :data:`revelo.module.REGIMES`)."""
        regime = torch.as_tensor(regime, dtype=torch.long, device=self.regime.device)
        if regime.shape != self.regime.shape or (regime < 0).any() or (regime > 3).any():
            msg = (
                f"regime must hold one code in 0..3 per gene ({self.n_genes}), got shape "
                f"{tuple(regime.shape)}; see revelo.module.REGIMES."
            )
            raise ValueError(msg)
        self.regime.copy_(regime)

    # ------------------------------------------------------------------ parameters
    def rates(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-gene ``(alpha, beta, gamma)``, all positive."""
        return F.softplus(self.alpha_raw), F.softplus(self.beta_raw), F.softplus(self.gamma_raw)

    def switch_time(self) -> torch.Tensor:
        """Per-gene switch time from induction to repression, in (0, t_max)."""
        return self.t_max * torch.sigmoid(self.switch_raw)

    def branch_offsets(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Branches × genes offsets of log α and of the switch time's logit, centred.

        Centred over the branches, so that :meth:`rates` and :meth:`switch_time` give each
        gene's geometric-mean α and its switch time at the mean logit of the branches.
        """
        log_alpha = self.branch_log_alpha - self.branch_log_alpha.mean(0)
        shift = self.branch_switch_shift - self.branch_switch_shift.mean(0)
        return log_alpha, shift

    def branch_kinetics(self, branch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each cell's per-gene α and switch time, from its branch weights (cells × branches).

        With weights ``w`` and the centred offsets ``a`` and ``c`` of :meth:`branch_offsets`,
        a cell's α is ``α · exp(w · a)`` and its switch time ``t_max · sigmoid(logit + w · c)``.
        """
        log_alpha, shift = self.branch_offsets()
        alpha = F.softplus(self.alpha_raw) * torch.exp(branch @ log_alpha)
        t_switch = self.t_max * torch.sigmoid(self.switch_raw + branch @ shift)
        return alpha, t_switch

    def population_kinetics(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-gene α and switch time at the cells' mean branch weights (``branch_mean``).

        With one branch, :meth:`rates`' α and :meth:`switch_time`.
        """
        if self.n_branches == 1:
            return F.softplus(self.alpha_raw), self.switch_time()
        alpha, t_switch = self.branch_kinetics(self.branch_mean.unsqueeze(0))
        return alpha[0], t_switch[0]

    def branch_weights(self, z: torch.Tensor, covariates: dict | None = None) -> torch.Tensor:
        """Cells × branches weights the decoder gives each ``z`` (all 1 with one branch)."""
        if self.n_branches == 1:
            return torch.ones(*z.shape[:-1], 1, device=z.device)
        heads, _ = self.decoder(
            self._with_continuous(z, covariates), *self._categories(covariates)
        )
        return heads["branch"]

    def unspliced_scaling(self) -> torch.Tensor:
        """Per-gene factor from kinetic unspliced to observed unspliced."""
        return F.softplus(self.unspliced_scaling_raw)

    @property
    def count_scale(self) -> torch.Tensor:
        """Per-gene factors (rows s, u) from kinetic units to counts (count likelihoods)."""
        return self.observation.count_scale

    @property
    def library_median(self) -> torch.Tensor:
        """Median library per batch (rows) of spliced and unspliced (count likelihoods)."""
        return self.observation.library_median

    @property
    def log_theta(self) -> nn.Parameter:
        """Log inverse dispersion of u and s (rows) per gene (negative binomial)."""
        return self.observation.log_theta

    def scaled_observation(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        covariates: dict | None = None,
        log_scale: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Observed (s, u) in the kinetic model's units.

        Counts are divided by size factor and ``count_scale``; everything by the covariate
        factors ``exp(log_scale)`` when given.
        """
        spliced, unspliced = self._normalised(spliced, unspliced, covariates, log_scale)
        return self.observation.kinetic_units(spliced, unspliced)

    def _normalised(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        covariates: dict | None,
        log_scale: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Counts divided by their size factors, and everything by ``exp(log_scale)``."""
        spliced, unspliced = self.observation.normalise(spliced, unspliced, covariates)
        if log_scale is not None:
            spliced = spliced * torch.exp(-log_scale[..., 1, :])
            unspliced = unspliced * torch.exp(-log_scale[..., 0, :])
        return spliced, unspliced

    # ------------------------------------------------------------------ scvi-tools contract
    def _get_inference_input(self, tensors: dict[str, torch.Tensor]) -> dict:
        return {
            "spliced": tensors[REGISTRY_KEYS.X_KEY],
            "unspliced": tensors[REGISTRY_KEYS.U_KEY],
            "covariates": covariates_of(tensors),
        }

    def _get_generative_input(
        self, tensors: dict[str, torch.Tensor], inference_outputs: dict[str, torch.Tensor]
    ) -> dict:
        return {"z": inference_outputs[MODULE_KEYS.Z_KEY], "covariates": covariates_of(tensors)}

    @auto_move_data
    def inference(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        covariates: dict | None = None,
        n_samples: int = 1,
    ) -> dict[str, torch.Tensor]:
        """Encode (spliced, unspliced) and covariates into q(z); draw z by reparameterization.

        Count likelihoods encode ``log1p`` of the size-normalised counts. With covariates,
        the input is first divided by the cell's learned covariate factors (held fixed here):
        a one-hot batch entering the first layer can only shift it, not undo per-gene factors,
        and cells of different batches at the same state should get the same z.
        """
        log_scale = self.log_covariate_scale(covariates)
        if log_scale is not None:
            log_scale = log_scale.detach()
        spliced, unspliced = self._normalised(spliced, unspliced, covariates, log_scale)
        spliced, unspliced = self.observation.encoder_input(spliced, unspliced)
        x = self._with_continuous(torch.cat((spliced, unspliced), dim=-1), covariates)
        mean, log_var = self.encoder(x, *self._categories(covariates))
        if n_samples > 1:
            mean = mean.expand(n_samples, *mean.shape)
            log_var = log_var.expand(n_samples, *log_var.shape)
        z = reparameterize(mean, log_var)
        return {
            MODULE_KEYS.Z_KEY: z,
            MODULE_KEYS.QZM_KEY: mean,
            MODULE_KEYS.QZV_KEY: torch.exp(log_var),
            "qz_log_var": log_var,
        }

    @auto_move_data
    def generative(self, z: torch.Tensor, covariates: dict | None = None) -> dict:
        """Decode z (and the covariates) into per-state expected (u, s), times and velocities.

        Expected abundances and velocities are in the kinetic units, which are those of the
        reference batch; ``log_covariate_scale`` (cells × 2 × genes, or ``None``) holds the
        per-cell log-factors to the cell's own batch and covariates.
        """
        decoder_input = self._with_continuous(z, covariates)
        heads, state_logits = self.decoder(decoder_input, *self._categories(covariates))
        alpha, beta, gamma = self.rates()
        t_switch = self.switch_time()
        branch = heads.pop("branch", None)
        if branch is not None:
            alpha, t_switch = self.branch_kinetics(branch)
        scaling = self.unspliced_scaling()
        times = self.time.phase_times(heads, t_switch)
        path = switch_trajectory(alpha, beta, gamma, t_switch, times.induction, times.repression)
        ones = torch.ones_like(times.induction)
        zeros = torch.zeros_like(times.induction)
        state_logits = state_logits + state_logit_offset(self.regime)
        repressed, state_time = repression_from_start(
            self.regime, path.repression, times, alpha, beta, gamma
        )

        def states(induced, steady, repressed):
            # States last in shape, first in memory: the state sums and softmax vectorise.
            return torch.stack((induced, steady, repressed, zeros)).movedim(0, -1)

        return {
            **times.outputs,
            "state_logits": state_logits,
            "mean_u": scaling.unsqueeze(-1)
            * states(path.induction.u, alpha / beta * ones, repressed.u),
            "mean_s": states(path.induction.s, alpha / gamma * ones, repressed.s),
            "time": state_time,
            "velocity_u": scaling.unsqueeze(-1)
            * states(path.induction.velocity_u, zeros, repressed.velocity_u),
            "velocity_s": states(path.induction.velocity_s, zeros, repressed.velocity_s),
            "t_switch": t_switch,
            **({} if branch is None else {"branch": branch}),
            "u_switch": scaling * path.u_switch,
            "s_switch": path.s_switch,
            "log_covariate_scale": self.log_covariate_scale(covariates),
        }

    def state_log_joint(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        generative_outputs: dict,
        covariates: dict | None = None,
    ) -> torch.Tensor:
        """Log p(state) + log p(u, s | state) per cell, gene and state."""
        mean_u, mean_s = generative_outputs["mean_u"], generative_outputs["mean_s"]
        log_scale = generative_outputs.get("log_covariate_scale")
        if log_scale is not None:
            mean_u = mean_u * torch.exp(log_scale[..., 0, :]).unsqueeze(-1)
            mean_s = mean_s * torch.exp(log_scale[..., 1, :]).unsqueeze(-1)
        log_lik = self.observation.log_prob(spliced, unspliced, mean_s, mean_u, covariates)
        return state_log_softmax(generative_outputs["state_logits"]) + log_lik

    def loss(
        self,
        tensors: dict[str, torch.Tensor],
        inference_outputs: dict[str, torch.Tensor],
        generative_outputs: dict[str, torch.Tensor],
        kl_weight: float = 1.0,
        n_obs: int = 1,
        kl_scale: float = 1.0,
        free_bits: float = 0.0,
    ) -> LossOutput:
        """Negative ELBO: state-mixture reconstruction, KL to N(0, I), switch anchoring.

        The KL enters the objective with weight ``kl_weight × kl_scale`` (warm-up × β) and each
        latent dimension's batch-mean KL floored at ``free_bits`` nats (free bits); ``kl_local``
        is reported unweighted and unfloored.
        """
        spliced, unspliced = tensors[REGISTRY_KEYS.X_KEY], tensors[REGISTRY_KEYS.U_KEY]
        covariates = covariates_of(tensors)
        log_joint = self.state_log_joint(spliced, unspliced, generative_outputs, covariates)
        reconstruction = -state_logsumexp(log_joint).sum(-1)
        mean, log_var = inference_outputs[MODULE_KEYS.QZM_KEY], inference_outputs["qz_log_var"]
        kl_z = kl_standard_normal(mean, log_var)
        kl_objective = free_bits_kl(mean, log_var, free_bits)
        loss = torch.mean(reconstruction) + kl_weight * kl_scale * kl_objective
        loss = loss + self.time.loss(tensors, generative_outputs, kl_weight, self.n_genes)
        loss = loss + self.anchoring_loss(
            spliced, unspliced, generative_outputs, covariates, kl_weight
        )
        return LossOutput(loss=loss, reconstruction_loss=reconstruction, kl_local=kl_z)

    @auto_move_data
    def posterior_fit(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        use_mean: bool = False,
        covariates: dict | None = None,
        z: torch.Tensor | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-cell, per-gene fit for one posterior draw of z (or its mean; or ``z`` if given).

        State probabilities are the posterior responsibilities given the observed (u, s), and
        every returned quantity but the time is their weighted mean over the four states. The
        off state (0, 0) is both where induction starts and where repression ends, so it says
        nothing of a cell's time: ``time`` is the mean over the other three states, with their
        responsibilities renormalised. With the shared clock, a gene whose time is before its
        switch can only be in induction or its steady state and one after it only in repression
        or the off state, the responsibilities renormalised over those two; ``log_likelihood``
        stays that of the whole mixture.
        Velocities are in the kinetic units (the reference batch's); ``fit_u`` and ``fit_s``
        include the cell's covariate factors, so they overlay the cell's (scaled) observations.

        Returns
        -------
        Dictionary with ``state_probs`` (cells × genes × 4) and cells × genes tensors ``time``,
        ``fit_u``, ``fit_s``, ``velocity``, ``velocity_u``, ``log_likelihood``.
        """
        if z is None:
            inference = self.inference(spliced, unspliced, covariates)
            z = inference[MODULE_KEYS.QZM_KEY] if use_mean else inference[MODULE_KEYS.Z_KEY]
        generative = self.generative(z, covariates)
        log_joint = self.state_log_joint(spliced, unspliced, generative, covariates)
        probs, log_lik = state_softmax_logsumexp(log_joint)
        allowed = self.time.allowed_states(generative, generative["t_switch"])
        if allowed is not None:
            # The clock decides the side of each gene's switch; the data the state within it.
            # Genes of the other regimes have their states set by the regime alone.
            allowed = allowed | (self.regime != FULL).unsqueeze(-1)
            log_joint = log_joint.masked_fill(~allowed, float("-inf"))
            probs = state_softmax(log_joint)
        timed = state_softmax(log_joint[..., :3])

        def expected(key: str) -> torch.Tensor:
            return (probs * generative[key]).sum(-1)

        fit_u, fit_s = expected("mean_u"), expected("mean_s")
        log_scale = generative["log_covariate_scale"]
        if log_scale is not None:
            fit_u = fit_u * torch.exp(log_scale[..., 0, :])
            fit_s = fit_s * torch.exp(log_scale[..., 1, :])
        return {
            "state_probs": probs,
            "time": (timed * generative["time"][..., :3]).sum(-1),
            "fit_u": fit_u,
            "fit_s": fit_s,
            "velocity": expected("velocity_s"),
            "velocity_u": expected("velocity_u"),
            "log_likelihood": log_lik,
        }

    def sample(self, *args, **kwargs):
        """Sampling new cells is not part of this model."""
        raise NotImplementedError("REVELOVAE does not generate new cells.")
