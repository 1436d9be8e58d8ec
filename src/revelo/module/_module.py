"""REVELOVAE: the variational kinetic model, pure torch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scvi.module._constants import MODULE_KEYS
from scvi.module.base import BaseModuleClass, LossOutput, auto_move_data
from torch import nn

from revelo._constants import REGISTRY_KEYS, check_likelihood

from ._components import (
    GaussianEncoder,
    KineticStateDecoder,
    kl_standard_normal,
    nb_log_prob,
    normal_log_prob,
    poisson_log_prob,
    reparameterize,
)
from ._evidence import free_bits_kl
from ._kinetics import induction, repression

#: Floor added to the kinetic abundances of count likelihoods (in the scaled units, where a
#: gene's range is about 1), so the repression steady state u = s = 0 can still emit a count.
_COUNT_FLOOR = 1e-2

_COVARIATE_KEYS = (
    REGISTRY_KEYS.BATCH_KEY,
    REGISTRY_KEYS.CAT_COVS_KEY,
    REGISTRY_KEYS.CONT_COVS_KEY,
    REGISTRY_KEYS.SIZE_FACTOR_KEY,
)


def _softplus_inverse(x: np.ndarray | float) -> torch.Tensor:
    x = torch.as_tensor(np.asarray(x, dtype=np.float32))
    return torch.where(x > 20, x, torch.log(torch.expm1(x.clamp_min(1e-6))))


def _gene_parameter(init: np.ndarray | None, default: float, n_genes: int) -> nn.Parameter:
    """A per-gene parameter on the softplus scale, from a positive initial value."""
    value = np.full(n_genes, default, dtype=np.float32) if init is None else init
    return nn.Parameter(_softplus_inverse(value))


class REVELOVAE(BaseModuleClass):
    """Variational autoencoder whose decoder is the splicing ODE.

    The encoder maps a cell's (spliced, unspliced) profile to q(z) = N(μ, σ²). The decoder maps
    z to each gene's position on a one-switch trajectory (induction, then repression) and to
    probabilities of four kinetic states; the closed-form ODE solution with per-gene α, β, γ and
    switch time turns that into expected (u, s) per state. The likelihood is a per-gene mixture
    over the four states of Gaussians on the scaled moments.

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
    steady_scale_factor
        Noise scale of the repression steady state (u = s = 0) relative to the other states
        (Gaussian likelihood).
    time_mode
        ``"gene"``: each gene places the cell freely on its own trajectory (VeloVI's).
        ``"shared"``: one clock per cell, which each gene may run ahead of or behind by at most
        ``gene_time_spread × t_max``; a gene's state then follows the clock's side of its
        switch in :meth:`posterior_fit` (induction or its steady state before the switch,
        repression or the off state after it).
    gene_time_spread
        Shared clock: the largest deviation of a gene's time from the cell's clock, as a
        fraction of ``t_max``.
    noise_init
        Initial noise scale of u and s (Gaussian likelihood).
    time_prior_weight
        Shared clock: weight of the pull toward the registered initial ordering of the cells;
        it fades out with the KL warm-up, as ``(1 − kl_weight)``.
    clock_uniform_weight
        Shared clock: weight (per gene) of the squared 2-Wasserstein distance between each
        minibatch's clock values and a uniform spread over ``[0, t_max]``. Without it the clocks
        of all cells collapse into a short stretch of the axis, where each gene's deviation
        does the work of the clock.
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
        binomial with a learned per-gene inverse dispersion for each layer) on raw counts. The
        expected count of a cell is its size factor × ``count_scale`` × the kinetic abundance.
    count_scale
        Count likelihoods: per-gene factors (rows: spliced, unspliced) from the kinetic units
        to counts of a cell with size factor 1. The kinetics, and so the velocities, live in
        the counts divided by these, the units of the scaled moments when they are
        ``var["Ms_scale"]`` and ``var["Mu_scale"]``.
    library_median
        Count likelihoods: median library size per batch (rows) of spliced and unspliced
        (columns). A cell's size factor is its library over its batch's median.
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
        time_mode: str = "gene",
        gene_time_spread: float = 0.1,
        noise_init: float = 0.1,
        time_prior_weight: float = 1.0,
        clock_uniform_weight: float = 30.0,
        learn_unspliced_scaling: bool = True,
        steady_state_ratio: np.ndarray | None = None,
        residual_scale: np.ndarray | None = None,
        state_prior_weight: float = 1.0,
        state_prior_margin: float = 1.5,
        likelihood: str = "gaussian",
        count_scale: np.ndarray | None = None,
        library_median: np.ndarray | None = None,
        n_batch: int = 1,
        n_cats_per_cov: list[int] | None = None,
        n_continuous_cov: int = 0,
        continuous_center: np.ndarray | None = None,
        continuous_scale: np.ndarray | None = None,
        batch_log_scale_init: np.ndarray | None = None,
    ):
        super().__init__()
        check_likelihood(likelihood)
        self.likelihood = likelihood
        self.n_genes = n_genes
        self.n_latent = n_latent
        self.t_max = float(t_max)
        self.switch_penalty = switch_penalty
        self.steady_scale_factor = steady_scale_factor
        self.time_mode = time_mode
        self.gene_time_spread = gene_time_spread
        self.time_prior_weight = time_prior_weight
        self.clock_uniform_weight = clock_uniform_weight

        self.alpha_raw = _gene_parameter(alpha_init, 1.0, n_genes)
        self.beta_raw = _gene_parameter(beta_init, 1.0, n_genes)
        self.gamma_raw = _gene_parameter(gamma_init, 0.5, n_genes)
        t_switch = (
            np.full(n_genes, 0.35 * t_max, dtype=np.float32)
            if switch_time_init is None
            else np.clip(switch_time_init, 0.02 * t_max, 0.98 * t_max).astype(np.float32)
        )
        self.switch_raw = nn.Parameter(torch.logit(torch.from_numpy(t_switch / self.t_max)))
        # Observed unspliced = scaling × kinetic unspliced: u and s are scaled separately per
        # gene in preprocessing, which would otherwise break the shared β of the two equations.
        self.unspliced_scaling_raw = _gene_parameter(None, 1.0, n_genes)
        self.unspliced_scaling_raw.requires_grad_(learn_unspliced_scaling)
        # Noise scales of u and s (rows), per gene, on the softplus scale.
        self.noise_raw = nn.Parameter(
            torch.full((2, n_genes), float(_softplus_inverse(noise_init)))
        )

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

        if likelihood != "gaussian":
            ones = np.ones((2, n_genes), dtype=np.float32)
            self.register_buffer(
                "count_scale",
                torch.as_tensor(ones if count_scale is None else count_scale, dtype=torch.float32),
            )
            median = np.ones((n_batch, 2)) if library_median is None else library_median
            self.register_buffer("library_median", torch.as_tensor(median, dtype=torch.float32))
        if likelihood == "nb":
            # Inverse dispersion θ of u and s (rows) per gene, on the log scale.
            self.log_theta = nn.Parameter(torch.full((2, n_genes), float(np.log(10.0))))

        # Covariates: the first batch and the first category of each covariate are the
        # reference, so their factors are fixed at 1 and the rates keep their meaning.
        self.n_batch = n_batch
        self.n_cats_per_cov = list(n_cats_per_cov or [])
        self.n_continuous_cov = n_continuous_cov
        self.batch_log_scale = None
        if n_batch > 1:
            start = (
                np.zeros((n_batch - 1, 2, n_genes))
                if batch_log_scale_init is None
                else batch_log_scale_init
            )
            start = torch.tensor(start, dtype=torch.float32)  # a copy: training moves it
            self.batch_log_scale = nn.Parameter(start)
            self.register_buffer("batch_log_scale_mean", start.mean(-1, keepdim=True))
        self.cat_log_scale = nn.ParameterList(
            nn.Parameter(torch.zeros(max(n - 1, 0), 2, n_genes)) for n in self.n_cats_per_cov
        )
        if n_continuous_cov > 0:
            self.cont_log_scale = nn.Parameter(torch.zeros(n_continuous_cov, 2, n_genes))
            center = np.zeros(n_continuous_cov) if continuous_center is None else continuous_center
            scale = np.ones(n_continuous_cov) if continuous_scale is None else continuous_scale
            self.register_buffer("cont_center", torch.as_tensor(center, dtype=torch.float32))
            self.register_buffer(
                "cont_scale", torch.as_tensor(np.maximum(scale, 1e-8), dtype=torch.float32)
            )
        else:
            self.cont_log_scale = None
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
        )

    # ------------------------------------------------------------------ parameters
    def rates(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-gene ``(alpha, beta, gamma)``, all positive."""
        return F.softplus(self.alpha_raw), F.softplus(self.beta_raw), F.softplus(self.gamma_raw)

    def switch_time(self) -> torch.Tensor:
        """Per-gene switch time from induction to repression, in (0, t_max)."""
        return self.t_max * torch.sigmoid(self.switch_raw)

    def unspliced_scaling(self) -> torch.Tensor:
        """Per-gene factor from kinetic unspliced to observed unspliced."""
        return F.softplus(self.unspliced_scaling_raw)

    def noise_scale(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-gene noise scales of unspliced and spliced."""
        scale = F.softplus(self.noise_raw) + 1e-4
        return scale[0], scale[1]

    # ------------------------------------------------------------------ covariates
    def covariate_parameters(self) -> list[nn.Parameter]:
        """The per-gene covariate log-factors (batch, categorical, continuous)."""
        tables = [self.batch_log_scale, *self.cat_log_scale, self.cont_log_scale]
        return [table for table in tables if table is not None]

    def _categories(self, covariates: dict | None) -> list[torch.Tensor | None]:
        """Batch index and further categorical covariates, one ``cells × 1`` tensor each."""
        covariates = covariates or {}
        batch = covariates.get(REGISTRY_KEYS.BATCH_KEY)
        cats = covariates.get(REGISTRY_KEYS.CAT_COVS_KEY)
        if (self.n_batch > 1 and batch is None) or (self.n_cats_per_cov and cats is None):
            msg = (
                "This model is conditioned on a batch or categorical covariates; pass them "
                "(the registered tensors) as `covariates`."
            )
            raise ValueError(msg)
        columns = [] if cats is None else list(torch.split(cats.long(), 1, dim=-1))
        return [None if batch is None else batch.long(), *columns]

    def _continuous(self, covariates: dict | None) -> torch.Tensor | None:
        if self.n_continuous_cov == 0:
            return None
        cont = (covariates or {}).get(REGISTRY_KEYS.CONT_COVS_KEY)
        if cont is None:
            msg = "This model has continuous covariates; pass them as `covariates`."
            raise ValueError(msg)
        return (cont - self.cont_center) / self.cont_scale

    def log_covariate_scale(self, covariates: dict | None) -> torch.Tensor | None:
        """Per-cell log-factors that the covariates apply to the expected abundances.

        Returns cells × 2 × genes (rows u, s), or ``None`` for a model without covariates.
        """
        terms = []
        categories = self._categories(covariates)
        tables = [self.batch_log_scale, *self.cat_log_scale]
        for table, index in zip(tables, categories):
            if table is None or table.shape[0] == 0:
                continue
            if table is self.batch_log_scale:
                # Each batch's mean log-factor over genes stays at its data-driven start: an
                # overall scale would otherwise trade off against where the batch's cells sit
                # in time. The factors of single genes are free.
                table = table - table.mean(-1, keepdim=True) + self.batch_log_scale_mean
            full = torch.cat((torch.zeros_like(table[:1]), table))
            terms.append(full[index.squeeze(-1)])
        cont = self._continuous(covariates)
        if cont is not None:
            terms.append(torch.einsum("nc,cog->nog", cont, self.cont_log_scale))
        if not terms:
            return None
        return torch.stack(terms).sum(0)

    def size_factors(
        self, spliced: torch.Tensor, unspliced: torch.Tensor, covariates: dict | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-cell size factors of spliced and unspliced counts (count likelihoods).

        A registered size factor is used for both layers; otherwise each layer's library over
        the model's genes divided by the median library of the cell's batch.
        """
        covariates = covariates or {}
        given = covariates.get(REGISTRY_KEYS.SIZE_FACTOR_KEY)
        if given is not None:
            factor = given.squeeze(-1).clamp_min(1e-8)
            return factor, factor
        library = torch.stack((spliced.sum(-1), unspliced.sum(-1)), dim=-1)
        batch = covariates.get(REGISTRY_KEYS.BATCH_KEY)
        median = (
            self.library_median[0]
            if batch is None
            else self.library_median[batch.long().squeeze(-1)]
        )
        factor = (library / median).clamp_min(1e-3)
        return factor[..., 0], factor[..., 1]

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
        if self.likelihood != "gaussian":
            spliced, unspliced = spliced / self.count_scale[0], unspliced / self.count_scale[1]
        return spliced, unspliced

    def _normalised(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        covariates: dict | None,
        log_scale: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Counts divided by their size factors, and everything by ``exp(log_scale)``."""
        if self.likelihood != "gaussian":
            size_s, size_u = self.size_factors(spliced, unspliced, covariates)
            spliced = spliced / size_s.unsqueeze(-1)
            unspliced = unspliced / size_u.unsqueeze(-1)
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
        if self.likelihood != "gaussian":
            spliced, unspliced = torch.log1p(spliced), torch.log1p(unspliced)
        x = torch.cat((spliced, unspliced), dim=-1)
        cont = self._continuous(covariates)
        if cont is not None:
            x = torch.cat((x, cont), dim=-1)
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
        decoder_input = z
        cont = self._continuous(covariates)
        if cont is not None:
            decoder_input = torch.cat((z, cont.expand(*z.shape[:-1], cont.shape[-1])), dim=-1)
        rho, tau, state_logits, cell_time = self.decoder(
            decoder_input, *self._categories(covariates)
        )
        alpha, beta, gamma = self.rates()
        t_switch = self.switch_time()
        scaling = self.unspliced_scaling()

        if self.time_mode == "shared":
            # One clock per cell; each gene may deviate from it by a bounded amount.
            deviation = self.gene_time_spread * self.t_max * (2 * rho - 1)
            gene_time = (self.t_max * cell_time + deviation).clamp(0.0, self.t_max)
            t_induction = torch.minimum(gene_time, t_switch)
            t_repression = (gene_time - t_switch).clamp_min(0.0)
        else:
            gene_time = None
            t_induction = t_switch * rho
            t_repression = (self.t_max - t_switch) * tau
        u_induction, s_induction = induction(alpha, beta, gamma, t_induction)
        u_switch, s_switch = induction(alpha, beta, gamma, t_switch)
        u_repression, s_repression = repression(u_switch, s_switch, beta, gamma, t_repression)

        ones = torch.ones_like(rho)
        zeros = torch.zeros_like(rho)
        mean_u = scaling.unsqueeze(-1) * torch.stack(
            (u_induction, alpha / beta * ones, u_repression, zeros), dim=-1
        )
        mean_s = torch.stack((s_induction, alpha / gamma * ones, s_repression, zeros), dim=-1)
        # Time on the axis [0, t_max] that each state places the cell at. The off state
        # (0, 0) is where induction starts at t = 0; repression only tends to it. The
        # read-out (posterior_fit) leaves it out: a cell there may be early or late.
        if gene_time is not None:
            time = gene_time.unsqueeze(-1).expand(*gene_time.shape, 4)
        else:
            time = torch.stack(
                (t_induction, t_switch * ones, t_switch + t_repression, zeros), dim=-1
            )
        velocity_u = scaling.unsqueeze(-1) * torch.stack(
            (alpha - beta * u_induction, zeros, -beta * u_repression, zeros), dim=-1
        )
        velocity_s = torch.stack(
            (
                beta * u_induction - gamma * s_induction,
                zeros,
                beta * u_repression - gamma * s_repression,
                zeros,
            ),
            dim=-1,
        )
        return {
            "rho": rho,
            "tau": tau,
            "cell_time": self.t_max * cell_time.squeeze(-1),
            "state_logits": state_logits,
            "mean_u": mean_u,
            "mean_s": mean_s,
            "time": time,
            "velocity_u": velocity_u,
            "velocity_s": velocity_s,
            "u_switch": scaling * u_switch,
            "s_switch": s_switch,
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
        if self.likelihood == "gaussian":
            scale_u, scale_s = self.noise_scale()
            factor = torch.ones(4, device=scale_u.device)
            factor[3] = self.steady_scale_factor
            log_lik = normal_log_prob(
                unspliced.unsqueeze(-1), mean_u, scale_u.unsqueeze(-1) * factor
            ) + normal_log_prob(spliced.unsqueeze(-1), mean_s, scale_s.unsqueeze(-1) * factor)
        else:
            size_s, size_u = self.size_factors(spliced, unspliced, covariates)
            rate_u = (size_u.unsqueeze(-1) * self.count_scale[1]).unsqueeze(-1) * (
                mean_u + _COUNT_FLOOR
            )
            rate_s = (size_s.unsqueeze(-1) * self.count_scale[0]).unsqueeze(-1) * (
                mean_s + _COUNT_FLOOR
            )
            if self.likelihood == "poisson":
                log_lik = poisson_log_prob(unspliced.unsqueeze(-1), rate_u) + poisson_log_prob(
                    spliced.unsqueeze(-1), rate_s
                )
            else:
                theta = torch.exp(self.log_theta).unsqueeze(-1)
                log_lik = nb_log_prob(unspliced.unsqueeze(-1), rate_u, theta[0]) + nb_log_prob(
                    spliced.unsqueeze(-1), rate_s, theta[1]
                )
        return F.log_softmax(generative_outputs["state_logits"], dim=-1) + log_lik

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
        log_probs = F.log_softmax(generative_outputs["state_logits"], dim=-1)
        side = p_induction * torch.logsumexp(log_probs[..., :2], dim=-1) + (
            1 - p_induction
        ) * torch.logsumexp(log_probs[..., 2:], dim=-1)
        if self.state_prior_margin > 0:
            side = side * torch.sigmoid(8.0 * (residual.abs() - self.state_prior_margin))
        return side

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
        reconstruction = -torch.logsumexp(log_joint, dim=-1).sum(-1)
        kl_z = kl_standard_normal(
            inference_outputs[MODULE_KEYS.QZM_KEY], inference_outputs["qz_log_var"]
        )
        kl_objective = free_bits_kl(
            inference_outputs[MODULE_KEYS.QZM_KEY], inference_outputs["qz_log_var"], free_bits
        )
        loss = torch.mean(reconstruction) + kl_weight * kl_scale * kl_objective
        time_prior = tensors.get(REGISTRY_KEYS.TIME_PRIOR_KEY)
        if time_prior is not None and self.time_mode == "shared" and self.time_prior_weight > 0:
            # Pull each cell's clock toward a data-driven initial ordering while the KL warms
            # up; the pull fades out with (1 − kl_weight), leaving the final fit to the ELBO.
            gap = (generative_outputs["cell_time"] - time_prior.squeeze(-1)) / self.t_max
            loss = (
                loss
                + self.time_prior_weight * (1.0 - kl_weight) * self.n_genes * gap.square().mean()
            )
        if self.time_mode == "shared" and self.clock_uniform_weight > 0:
            # Keep the cells' clocks spread over the whole axis.
            clock = generative_outputs["cell_time"] / self.t_max
            loss = loss + self.clock_uniform_weight * self.n_genes * uniform_clock_penalty(clock)
        if self.steady_state_ratio is not None and self.state_prior_weight > 0:
            # While the KL warms up, pull the decoder's states toward the side of the
            # steady-state line that each cell lies on, so no gene settles into a fit whose
            # time runs backwards.
            side = self.state_anchoring(spliced, unspliced, generative_outputs, covariates)
            loss = loss - self.state_prior_weight * (1.0 - kl_weight) * side.sum(-1).mean()
        if self.switch_u is not None and self.switch_penalty > 0:
            anchor = (generative_outputs["u_switch"] - self.switch_u).square().sum() + (
                generative_outputs["s_switch"] - self.switch_s
            ).square().sum()
            loss = loss + self.switch_penalty * (1.0 - kl_weight) * anchor
        return LossOutput(loss=loss, reconstruction_loss=reconstruction, kl_local=kl_z)

    @auto_move_data
    def posterior_fit(
        self,
        spliced: torch.Tensor,
        unspliced: torch.Tensor,
        use_mean: bool = False,
        covariates: dict | None = None,
    ) -> dict[str, torch.Tensor]:
        """Per-cell, per-gene fit for one posterior draw of z (or its mean).

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
        inference = self.inference(spliced, unspliced, covariates)
        z = inference[MODULE_KEYS.QZM_KEY] if use_mean else inference[MODULE_KEYS.Z_KEY]
        generative = self.generative(z, covariates)
        log_joint = self.state_log_joint(spliced, unspliced, generative, covariates)
        log_lik = torch.logsumexp(log_joint, dim=-1)
        if self.time_mode == "shared":
            # The clock decides the side of each gene's switch; the data the state within it.
            before = generative["time"][..., 0] < self.switch_time()
            side = torch.stack((before, before, ~before, ~before), dim=-1)
            log_joint = log_joint.masked_fill(~side, float("-inf"))
        probs = torch.softmax(log_joint, dim=-1)
        timed = torch.softmax(log_joint[..., :3], dim=-1)

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


def covariates_of(
    tensors: dict[str, torch.Tensor], device: torch.device | str | None = None
) -> dict[str, torch.Tensor]:
    """The covariate tensors (batch, categorical, continuous, size factor) of a minibatch.

    Moved to ``device`` when one is given.
    """
    return {
        key: tensors[key] if device is None else tensors[key].to(device)
        for key in _COVARIATE_KEYS
        if key in tensors
    }
