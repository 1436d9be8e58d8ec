"""The model's queries: posterior means per cell and gene, rates, and writing the outputs."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch

from revelo._constants import REGISTRY_KEYS, STATE_NAMES
from revelo._threads import with_thread_limit
from revelo._validation import check_choice, check_trained
from revelo.module import covariates_of

from ._compat import check_latent_dim, check_statistic, query_values
from ._data import query_batches
from ._docs import query_docs
from ._outputs import write_outputs
from ._posterior import observed_abundances

if TYPE_CHECKING:
    from anndata import AnnData


class QueryMixin:
    """Queries of a scvi-tools model whose module is a :class:`~revelo.module.REVELOVAE`.

    Every per-cell query averages :meth:`~revelo.module.REVELOVAE.posterior_fit` over posterior
    draws (:func:`~revelo.model._posterior.posterior_means`), one minibatch at a time, or
    returns every draw. The queries take VeloVI's arguments, in VeloVI's order and with its
    meaning, and return what VeloVI returns (:mod:`revelo.model._compat`).
    """

    state_names = STATE_NAMES

    @query_docs
    @with_thread_limit
    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        give_mean: bool = True,
        mc_samples: int = 5000,
        batch_size: int | None = None,
        return_dist: bool = False,
        dataloader: Iterable[dict[str, torch.Tensor]] | None = None,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior mean (or one draw) of z per cell, cells × ``n_latent``.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        give_mean
            Return the posterior mean instead of a draw.
        mc_samples
            Accepted for scvi-tools' signature and not used: q(z | u, s) is Gaussian, so its
            mean needs no Monte Carlo estimate.
        %(batch_size)s
        return_dist
            Return ``(mean, variance)`` of q(z | u, s) instead.
        dataloader
            Minibatches to encode instead of ``adata``, ``indices`` and ``batch_size``:
            dictionaries of the registered tensors, e.g. from ``model._make_data_loader``.
        """
        if dataloader is None:
            _, _, dataloader = query_batches(self, adata, indices, batch_size)
        else:
            check_trained(self.is_trained_, "get_latent_representation")
        self.module.eval()
        means, variances, draws = [], [], []
        for batch in dataloader:
            out = self.module.inference(
                batch[REGISTRY_KEYS.X_KEY], batch[REGISTRY_KEYS.U_KEY], covariates_of(batch)
            )
            means.append(out["qzm"].cpu())
            variances.append(out["qzv"].cpu())
            draws.append(out["z"].cpu())
        if return_dist:
            return torch.cat(means).numpy(), torch.cat(variances).numpy()
        return torch.cat(means if give_mean else draws).numpy()

    @query_docs
    @with_thread_limit
    @torch.inference_mode()
    def get_branch_weights(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Each cell's weights over the kinetic branches, at the posterior mean of z.

        A cell's transcription rates and switch times mix the branches' by these weights
        (``REVELO(n_branches=...)``; see the model page). Rows sum to 1.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(batch_size)s

        Returns
        -------
        Cells × branches, columns ``branch_0``, ``branch_1``, …, indexed by cell.
        """
        adata, indices, dataloader = query_batches(self, adata, indices, batch_size)
        self.module.eval()
        weights = []
        for batch in dataloader:
            covariates = covariates_of(batch)
            out = self.module.inference(
                batch[REGISTRY_KEYS.X_KEY], batch[REGISTRY_KEYS.U_KEY], covariates
            )
            weights.append(self.module.branch_weights(out["qzm"], covariates).cpu())
        weights = torch.cat(weights).numpy()
        return pd.DataFrame(
            weights,
            index=adata.obs_names[indices],
            columns=[f"branch_{k}" for k in range(weights.shape[1])],
        )

    @query_docs
    @with_thread_limit
    def get_latent_time(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        gene_list: Sequence[str] | None = None,
        time_statistic: Literal["mean", "max"] = "mean",
        n_samples: int = 25,
        n_samples_overall: int | None = None,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool | None = None,
    ) -> np.ndarray | pd.DataFrame:
        """Per-gene latent time of each cell on [0, t_max], cells × genes.

        The time a cell's state implies (induction: t_switch·ρ; induction steady state:
        t_switch; repression: t_switch plus the elapsed repression), weighted by the posterior
        probabilities of these three states and averaged over ``n_samples`` posterior draws.
        The off state, (u, s) = (0, 0), is left out: it is where induction starts and where
        repression ends, so a cell there may be early or late, and the other states'
        responsibilities decide. With ``time_mode="shared"`` every state takes the gene's time
        on the shared clock.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(gene_list)s
        time_statistic
            ``"mean"``: the time weighted by the state probabilities, as above. ``"max"``: the
            time of the most probable of the three timed states, per draw.
        %(n_samples)s
        %(n_samples_overall)s
        %(batch_size)s
        %(return_mean)s
        %(return_numpy)s

        Returns
        -------
        %(returns_draws)s
        """
        key = "time_map" if check_statistic("time_statistic", time_statistic) else "time"
        result = query_values(
            self,
            (key,),
            adata,
            indices,
            gene_list=gene_list,
            n_samples=n_samples,
            batch_size=batch_size,
            return_mean=return_mean,
            return_numpy=return_numpy,
            n_samples_overall=n_samples_overall,
        )
        return result.shaped(result.values[key])

    @query_docs
    @with_thread_limit
    def get_velocity(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        gene_list: Sequence[str] | None = None,
        n_samples: int = 25,
        n_samples_overall: int | None = None,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool | None = None,
        velo_statistic: Literal["mean", "max"] = "mean",
        velo_mode: Literal["spliced", "unspliced"] = "spliced",
        clip: bool = False,
    ) -> np.ndarray | pd.DataFrame:
        """Velocity per cell and gene, the mean over ``n_samples`` posterior draws.

        Spliced velocity is ds/dt = βu − γs, unspliced du/dt = α − βu, both on the fitted
        kinetics and weighted by the posterior state probabilities (zero in steady states), in
        the units of the registered layers per unit of latent time (for the count likelihoods,
        those of the scaled moments; see the ``likelihood`` option). With a batch, velocities
        are on the first batch's scale.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(gene_list)s
        %(n_samples)s
        %(n_samples_overall)s
        %(batch_size)s
        %(return_mean)s
        %(return_numpy)s
        velo_statistic
            ``"mean"``: the velocity weighted by the state probabilities, as above. ``"max"``:
            the velocity of the most probable state, per draw.
        velo_mode
            ``"spliced"`` (ds/dt) or ``"unspliced"`` (du/dt).
        clip
            Raise velocities below minus the cell's observed abundance (spliced for ds/dt,
            unspliced for du/dt, in the velocities' units) to it, so that one unit of time
            cannot take the abundance below 0. Off by default, unlike VeloVI, so that the
            velocities are those that :meth:`add_outputs` writes.

        Returns
        -------
        %(returns_draws)s
        """
        check_choice("velo_mode", velo_mode, ("spliced", "unspliced"))
        key = {"spliced": "velocity", "unspliced": "velocity_u"}[velo_mode]
        if check_statistic("velo_statistic", velo_statistic):
            key += "_map"
        result = query_values(
            self,
            (key,),
            adata,
            indices,
            gene_list=gene_list,
            n_samples=n_samples,
            batch_size=batch_size,
            return_mean=return_mean,
            return_numpy=return_numpy,
            n_samples_overall=n_samples_overall,
        )
        velocity = result.values[key]
        if clip:
            spliced, unspliced = observed_abundances(self, result.adata)
            observed = unspliced if velo_mode == "unspliced" else spliced
            velocity = np.maximum(velocity, -observed[result.indices][:, result.genes])
        return result.shaped(velocity)

    @query_docs
    @with_thread_limit
    def get_state_assignment(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        gene_list: Sequence[str] | None = None,
        hard_assignment: bool = False,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool | None = None,
    ) -> tuple[np.ndarray | pd.DataFrame, list[str]]:
        """Posterior probabilities of the four kinetic states per cell and gene.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(gene_list)s
        hard_assignment
            Return the most probable state's name per cell and gene instead of probabilities.
        %(n_samples)s
        %(batch_size)s
        %(return_mean)s
        return_numpy
            Hard assignment: return an array of names instead of a DataFrame of categoricals
            indexed by cells with genes as columns. The probabilities are always an array.

        Returns
        -------
        ``(states, state_names)``, as VeloVI returns them. ``state_names`` lists the four
        states in the order of the probabilities' last axis (``revelo.REVELO.state_names``).
        ``states``: soft, an array cells × genes × 4 (draws × cells × genes × 4 for separate
        draws); hard, the names of the most probable states, a DataFrame cells × genes (an
        array draws × cells × genes for separate draws).
        """
        result = query_values(
            self,
            ("state_probs",),
            adata,
            indices,
            gene_list=gene_list,
            n_samples=n_samples,
            batch_size=batch_size,
            return_mean=return_mean,
            return_numpy=return_numpy,
        )
        probs = result.values["state_probs"]
        names = list(STATE_NAMES)
        if not hard_assignment:
            return probs, names
        hard = np.asarray(names)[probs.argmax(-1)]
        if result.as_array:
            return hard, names
        return result.shaped(hard).astype(pd.CategoricalDtype(names)), names

    @query_docs
    @with_thread_limit
    def get_expression_fit(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        gene_list: Sequence[str] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool | None = None,
        restrict_to_latent_dim: int | None = None,
    ) -> tuple[np.ndarray | pd.DataFrame, np.ndarray | pd.DataFrame]:
        """Fitted ``(spliced, unspliced)`` per cell and gene, in the velocities' units.

        With covariates, each cell's fit includes its batch's (and covariates') factors, so it
        overlays the cell's (scaled) observations.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(gene_list)s
        %(n_samples)s
        %(batch_size)s
        %(return_mean)s
        %(return_numpy)s
        restrict_to_latent_dim
            Decode each draw of z with every dimension but this one (0-based) set to 0, the
            prior mean: the fit that one latent dimension explains.

        Returns
        -------
        ``(spliced, unspliced)``, each shaped as follows. %(returns_draws)s
        """
        check_latent_dim(restrict_to_latent_dim, self.module.n_latent)
        result = query_values(
            self,
            ("fit_s", "fit_u"),
            adata,
            indices,
            gene_list=gene_list,
            n_samples=n_samples,
            batch_size=batch_size,
            return_mean=return_mean,
            return_numpy=return_numpy,
            latent_dim=restrict_to_latent_dim,
        )
        return result.shaped(result.values["fit_s"]), result.shaped(result.values["fit_u"])

    @query_docs
    @with_thread_limit
    def get_gene_likelihood(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        gene_list: Sequence[str] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_mean: bool = True,
        return_numpy: bool | None = None,
    ) -> np.ndarray | pd.DataFrame:
        """Log-likelihood of each cell's observed (u, s) per gene under the fitted model.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(gene_list)s
        %(n_samples)s
        %(batch_size)s
        %(return_mean)s
        %(return_numpy)s

        Returns
        -------
        %(returns_draws)s
        """
        result = query_values(
            self,
            ("log_likelihood",),
            adata,
            indices,
            gene_list=gene_list,
            n_samples=n_samples,
            batch_size=batch_size,
            return_mean=return_mean,
            return_numpy=return_numpy,
        )
        return result.shaped(result.values["log_likelihood"])

    @query_docs
    @with_thread_limit
    def add_outputs(
        self,
        adata: AnnData | None = None,
        *,
        n_samples: int = 25,
        batch_size: int | None = None,
        root_key: str | None = None,
        root_cells: Sequence[str] | Sequence[int] | None = None,
        uncertainty: bool = True,
        extrinsic_uncertainty: bool = False,
    ) -> None:
        """Write the model's results into an AnnData, with scVelo's key names.

        Parameters
        ----------
        adata
            AnnData with the same cells and genes as the model's (and the registered layers);
            defaults to the model's own.
        %(n_samples)s
        batch_size
            Minibatch size of the queries.
        root_key
            Boolean ``obs`` column marking root cells for the shared latent time.
        root_cells
            Names or positions of root cells; the root is inferred when neither is given.
        uncertainty
            Also write the per-cell directional velocity uncertainty, computed from the same
            posterior draws as the velocities (a second pass only when some gene's fit is not
            finite).
        extrinsic_uncertainty
            Also write the extrinsic uncertainty (:meth:`get_extrinsic_uncertainty`), when
            ``adata`` has ``obsm["X_umap"]`` and ``obsp["distances"]``. It builds one velocity
            graph and embedding per draw, ``n_samples`` in all, each about the cost of
            :func:`revelo.tl.velocity_graph`: on the pancreas data (3,696 cells) with the
            default 25 draws that is several times the rest of this call, and a sizeable
            fraction of training, hence off by default.

        Returns
        -------
        Nothing; writes into ``adata``, all or nothing: the arguments are checked before
        anything is computed, and when a step fails ``adata`` is left as it was.

        - ``layers["velocity"]``, ``layers["velocity_u"]``: spliced and unspliced velocity,
          in the units of the registered layers (``Ms``/``Mu`` by default; the scaled moments'
          units for the count likelihoods) per unit of time;
        - ``layers["fit_t"]``: per-gene latent time on [0, t_max];
        - ``layers["fit_s"]``, ``layers["fit_u"]``: fitted spliced and unspliced values;
        - ``var["fit_alpha"]``, ``var["fit_beta"]``, ``var["fit_gamma"]``, ``var["fit_t_"]``,
          ``var["fit_scaling"]``: rates, switch time and unspliced scaling in scVelo's
          convention (observed u = fit_scaling × kinetic u; ``fit_beta`` is the splicing rate
          divided by ``fit_scaling``, as scVelo stores it, so that scVelo's tools and plots
          draw revelo's curve; :meth:`get_rates` gives revelo's own ``beta``);
        - ``var["fit_likelihood"]``: scVelo's goodness of fit in [0, 1], computed as scVelo
          does from ``layers["fit_u"|"fit_s"]`` and the registered layers, which scVelo's
          ``min_likelihood`` filters read; ``var["revelo_log_likelihood"]``: the mean per-cell
          log-likelihood of the gene's (u, s) under the model, which weights
          :func:`revelo.tl.latent_time`;
        - scVelo's other per-gene keys of a dynamical fit, which its tools read (e.g.
          ``scv.tl.rank_dynamical_genes``), with scVelo's meaning (see the model page):
          ``var["fit_variance"]``, the variance of the residuals that ``fit_likelihood``
          scores; ``var["fit_std_u"]``, ``var["fit_std_s"]``, ``var["fit_pval_steady"]``,
          ``var["fit_steady_u"]``, ``var["fit_steady_s"]``, statistics of the registered
          layers computed as scVelo computes them (spread of u and s; p-value of an upper
          mode, the steady state, and where it lies); ``var["fit_u0"]``, ``var["fit_s0"]``:
          0, no basal abundance; ``var["fit_alignment_scaling"]``: 1, one shared time axis;
          ``uns["recover_dynamics"]``: the settings scVelo reads with them;
        - ``var["fit_regime"]``: each gene's kinetic regime, one of
          :data:`revelo.module.REGIMES` (``"full"`` for every gene unless
          ``REVELO(regimes="auto")`` chose another);
        - ``obsm["fit_branch_weights"]``: each cell's weights over the kinetic branches
          (:meth:`get_branch_weights`), with more than one branch; removed otherwise;
        - ``var["velocity_genes"]``: genes used downstream (an existing column is kept,
          restricted to genes with a finite fit);
        - ``obs["latent_time"]``: one shared time per cell on [0, 1]
          (:func:`revelo.tl.latent_time`);
        - ``uns["velocity_params"]``: the settings of this call and the model;
        - removed, because they were computed from earlier velocities:
          ``uns["velocity_graph"]``, ``uns["velocity_graph_neg"]``,
          ``obs["velocity_self_transition"]`` and every ``obsm["velocity_*"]`` (e.g.
          ``obsm["velocity_umap"]``); run :func:`revelo.tl.velocity_graph` and
          :func:`revelo.tl.velocity_embedding` again;
        - with ``uncertainty``: ``obs["directional_variance"]``,
          ``obs["directional_difference"]``, ``obs["directional_cosine_sim_variance"]``,
          ``obs["directional_cosine_sim_difference"]``, ``obs["directional_cosine_sim_mean"]``
          (:meth:`get_directional_uncertainty` on the velocity genes) and, with
          ``extrinsic_uncertainty`` when ``adata`` has ``obsm["X_umap"]`` and
          ``obsp["distances"]``, the same five with the prefix ``extrinsic_``
          (:meth:`get_extrinsic_uncertainty`).
        """
        write_outputs(
            self,
            adata,
            n_samples=n_samples,
            batch_size=batch_size,
            root_key=root_key,
            root_cells=root_cells,
            uncertainty=uncertainty,
            extrinsic_uncertainty=extrinsic_uncertainty,
        )

    @torch.inference_mode()
    def get_rates(self) -> pd.DataFrame:
        """Per-gene ``alpha``, ``beta``, ``gamma``, ``t_switch`` and unspliced ``scaling``.

        Observed unspliced = ``scaling`` × kinetic unspliced; the rates act on kinetic units.
        With kinetic branches, ``alpha`` and ``t_switch`` are those of the training cells'
        mean branch weights; each cell's own are mixed by its :meth:`get_branch_weights`. The
        result is indexed by gene.
        """
        check_trained(self.is_trained_, "get_rates")
        _, beta, gamma = self.module.rates()
        alpha, t_switch = self.module.population_kinetics()
        columns = {
            "alpha": alpha,
            "beta": beta,
            "gamma": gamma,
            "t_switch": t_switch,
            "scaling": self.module.unspliced_scaling(),
        }
        return pd.DataFrame(
            {key: value.cpu().numpy() for key, value in columns.items()},
            index=self.adata.var_names,
        )
