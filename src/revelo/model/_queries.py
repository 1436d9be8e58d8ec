"""The model's queries: posterior means per cell and gene, rates, and writing the outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import numpy as np
import pandas as pd
import torch

from revelo._constants import REGISTRY_KEYS, STATE_NAMES
from revelo._threads import with_thread_limit
from revelo._validation import check_trained
from revelo.module import covariates_of

from ._data import query_batches
from ._docs import query_docs
from ._outputs import write_outputs
from ._posterior import posterior_means

if TYPE_CHECKING:
    from anndata import AnnData


class QueryMixin:
    """Queries of a scvi-tools model whose module is a :class:`~revelo.module.REVELOVAE`.

    Every per-cell query averages :meth:`~revelo.module.REVELOVAE.posterior_fit` over posterior
    draws (:func:`~revelo.model._posterior.posterior_means`), one minibatch at a time.
    """

    state_names = STATE_NAMES

    def _posterior_means(
        self,
        keys: Sequence[str],
        adata: AnnData | None,
        indices: Sequence[int] | None,
        n_samples: int,
        batch_size: int | None,
    ) -> tuple[AnnData, np.ndarray, dict[str, np.ndarray]]:
        adata, indices, batches = query_batches(self, adata, indices, batch_size)
        return adata, indices, posterior_means(self.module, batches, keys, n_samples, self.device)

    @staticmethod
    def _frame(
        values: np.ndarray, adata: AnnData, indices: np.ndarray, return_numpy: bool
    ) -> np.ndarray | pd.DataFrame:
        if return_numpy:
            return values
        return pd.DataFrame(values, index=adata.obs_names[indices], columns=adata.var_names)

    @query_docs
    @with_thread_limit
    @torch.inference_mode()
    def get_latent_representation(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        give_mean: bool = True,
        batch_size: int | None = None,
        return_dist: bool = False,
    ) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Posterior mean (or one draw) of z per cell, cells × ``n_latent``.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        give_mean
            Return the posterior mean instead of a draw.
        %(batch_size)s
        return_dist
            Return ``(mean, variance)`` of q(z | u, s) instead.
        """
        _, _, batches = query_batches(self, adata, indices, batch_size)
        self.module.eval()
        means, variances, draws = [], [], []
        for batch in batches:
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
    def get_latent_time(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_numpy: bool = False,
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
        %(n_samples)s
        %(batch_size)s
        return_numpy
            Return an array instead of a DataFrame indexed by cells with genes as columns.
        """
        adata, indices, out = self._posterior_means(
            ("time",), adata, indices, n_samples, batch_size
        )
        return self._frame(out["time"], adata, indices, return_numpy)

    @query_docs
    @with_thread_limit
    def get_velocity(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        velo_mode: Literal["spliced", "unspliced"] = "spliced",
        batch_size: int | None = None,
        return_numpy: bool = False,
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
        %(n_samples)s
        velo_mode
            ``"spliced"`` (ds/dt) or ``"unspliced"`` (du/dt).
        %(batch_size)s
        return_numpy
            Return an array instead of a DataFrame.
        """
        key = {"spliced": "velocity", "unspliced": "velocity_u"}.get(velo_mode)
        if key is None:
            msg = f"velo_mode must be 'spliced' or 'unspliced', got {velo_mode!r}."
            raise ValueError(msg)
        adata, indices, out = self._posterior_means((key,), adata, indices, n_samples, batch_size)
        return self._frame(out[key], adata, indices, return_numpy)

    @query_docs
    @with_thread_limit
    def get_state_assignment(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        hard_assignment: bool = False,
        n_samples: int = 25,
        batch_size: int | None = None,
    ) -> np.ndarray | pd.DataFrame:
        """Posterior probabilities of the four kinetic states per cell and gene.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        hard_assignment
            Return the most probable state's name per cell and gene (a DataFrame of
            categoricals) instead of probabilities.
        %(n_samples)s
        %(batch_size)s

        Returns
        -------
        Soft: an array cells × genes × 4, the states ordered as ``revelo.REVELO.state_names``.
        Hard: a DataFrame cells × genes of state names.
        """
        adata, indices, out = self._posterior_means(
            ("state_probs",), adata, indices, n_samples, batch_size
        )
        probs = out["state_probs"]
        if not hard_assignment:
            return probs
        names = np.asarray(STATE_NAMES)[probs.argmax(-1)]
        frame = self._frame(names, adata, indices, return_numpy=False)
        return frame.astype(pd.CategoricalDtype(list(STATE_NAMES)))

    @query_docs
    @with_thread_limit
    def get_expression_fit(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_numpy: bool = False,
    ) -> tuple[np.ndarray | pd.DataFrame, np.ndarray | pd.DataFrame]:
        """Fitted ``(spliced, unspliced)`` per cell and gene, in the velocities' units.

        With covariates, each cell's fit includes its batch's (and covariates') factors, so it
        overlays the cell's (scaled) observations.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(n_samples)s
        %(batch_size)s
        return_numpy
            Return arrays instead of DataFrames.
        """
        adata, indices, out = self._posterior_means(
            ("fit_s", "fit_u"), adata, indices, n_samples, batch_size
        )
        return (
            self._frame(out["fit_s"], adata, indices, return_numpy),
            self._frame(out["fit_u"], adata, indices, return_numpy),
        )

    @query_docs
    @with_thread_limit
    def get_gene_likelihood(
        self,
        adata: AnnData | None = None,
        indices: Sequence[int] | None = None,
        n_samples: int = 25,
        batch_size: int | None = None,
        return_numpy: bool = False,
    ) -> np.ndarray | pd.DataFrame:
        """Log-likelihood of each cell's observed (u, s) per gene under the fitted model.

        Parameters
        ----------
        %(adata)s
        %(indices)s
        %(n_samples)s
        %(batch_size)s
        return_numpy
            Return an array instead of a DataFrame.
        """
        adata, indices, out = self._posterior_means(
            ("log_likelihood",), adata, indices, n_samples, batch_size
        )
        return self._frame(out["log_likelihood"], adata, indices, return_numpy)

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
        The result is indexed by gene.
        """
        check_trained(self.is_trained_, "get_rates")
        alpha, beta, gamma = self.module.rates()
        columns = {
            "alpha": alpha,
            "beta": beta,
            "gamma": gamma,
            "t_switch": self.module.switch_time(),
            "scaling": self.module.unspliced_scaling(),
        }
        return pd.DataFrame(
            {key: value.cpu().numpy() for key, value in columns.items()},
            index=self.adata.var_names,
        )
