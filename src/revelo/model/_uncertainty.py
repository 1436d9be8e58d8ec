"""Velocity uncertainty from posterior draws: directional, extrinsic and permutation scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch
from anndata import AnnData
from scipy.stats import ttest_ind

from revelo._constants import EXPRESSION_KEYS
from revelo._threads import limit_threads, with_thread_limit
from revelo._validation import check_neighbors, check_positive_int, gene_mask

from ._compat import permuted_anndata, thread_count
from ._data import TensorBatches, query_batches
from ._docs import query_docs
from ._posterior import observed_abundances, posterior_stacks

if TYPE_CHECKING:
    from scipy import sparse

# Floats in one minibatch's stack of posterior draws when no batch size is given (16 MiB);
# the statistics take a few float64 copies of it.
_DRAW_ELEMENTS = 2**22
_STATISTICS = (
    "variance",
    "difference",
    "cosine_sim_variance",
    "cosine_sim_difference",
    "cosine_sim_mean",
)


def _cosine_statistics(samples: torch.Tensor, *, center: bool = True) -> dict[str, torch.Tensor]:
    """How far the directions of posterior draws spread around their mean direction.

    Each draw is compared with the mean of the draws by its cosine similarity and the angle
    between them. A draw identical to the mean (e.g. a cell with zero velocity in every draw)
    has cosine 1; a zero draw against a non-zero mean, or the reverse, has cosine 0.

    Parameters
    ----------
    samples
        Draws, ``n_samples × n_cells × n_dims``.
    center
        Subtract each vector's mean over its dimensions first, as the velocity graph does with
        gene-space velocities (not wanted for embedding arrows).

    Returns
    -------
    Per-cell tensors: ``variance`` and ``difference`` (95th minus 5th percentile) of the angles
    in radians, and ``cosine_sim_variance``, ``cosine_sim_difference`` and ``cosine_sim_mean``
    of the cosine similarities; and ``cosine``, the cosine similarities, draws × cells.
    """
    # float64: angles of nearly parallel draws come from cosines close to 1
    samples = samples.double()
    if center:
        samples = samples - samples.mean(-1, keepdim=True)
    mean = samples.mean(0)
    dot = (samples * mean).sum(-1)
    norm = torch.linalg.vector_norm(samples, dim=-1) * torch.linalg.vector_norm(mean, dim=-1)
    identical = (samples == mean).all(-1).double()
    cosine = torch.where(norm > 0, dot / norm.where(norm > 0, 1.0), identical).clamp(-1, 1)
    angle = torch.arccos(cosine)
    levels = torch.tensor([0.05, 0.95], dtype=cosine.dtype, device=cosine.device)
    angle_range = torch.quantile(angle, levels, dim=0)
    cosine_range = torch.quantile(cosine, levels, dim=0)
    return {
        "variance": angle.var(0, unbiased=False),
        "difference": angle_range[1] - angle_range[0],
        "cosine_sim_variance": cosine.var(0, unbiased=False),
        "cosine_sim_difference": cosine_range[1] - cosine_range[0],
        "cosine_sim_mean": cosine.mean(0),
        "cosine": cosine,
    }


def _permute_within_groups(values: torch.Tensor, codes: np.ndarray) -> torch.Tensor:
    """A copy of ``values`` (cells × genes) with each gene's values shuffled among each group.

    Every gene gets its own permutation, drawn from torch's global generator; cells with a
    negative code (no group) keep their values.
    """
    permuted = values.clone()
    for code in np.unique(codes[codes >= 0]):
        rows = torch.from_numpy(np.flatnonzero(codes == code)).to(values.device)
        order = torch.rand(len(rows), values.shape[1], device=values.device).argsort(0)
        permuted[rows] = values[rows].gather(0, order)
    return permuted


def _check_n_samples(n_samples: int) -> None:
    check_positive_int("n_samples", n_samples)
    if n_samples < 2:
        msg = f"n_samples must be at least 2 to measure a spread over draws, got {n_samples}."
        raise ValueError(msg)


class UncertaintyMixin:
    """Uncertainty of the velocity estimates of a model with ``module.posterior_fit``.

    Intrinsic (directional) uncertainty is the spread of a cell's velocity direction over
    posterior draws of its latent state; extrinsic uncertainty is the spread of the arrow that
    each draw produces in an embedding, through the velocity graph of its neighbourhood;
    permutation scores say per gene and cell type how much worse the model explains the data
    once the coupling of unspliced and spliced abundances is destroyed.

    Mixed into a scvi-tools model whose ``module`` is a :class:`~revelo.module.REVELOVAE`,
    such as :class:`~revelo.REVELO`; it uses only the model's public members and the
    posterior-draw helpers of :mod:`revelo.model._posterior`.
    """

    @query_docs
    @with_thread_limit
    @torch.inference_mode()
    def get_directional_uncertainty(
        self,
        adata: AnnData | None = None,
        n_samples: int = 50,
        gene_list: Sequence[str] | None = None,
        n_jobs: int = -1,
        *,
        indices: Sequence[int] | None = None,
        batch_size: int | None = None,
    ) -> tuple[pd.DataFrame, np.ndarray]:
        """Intrinsic uncertainty: how much a cell's velocity direction varies over the posterior.

        For each cell, ``n_samples`` velocities (ds/dt, one per posterior draw of z) are centred
        over genes, as in :func:`revelo.tl.velocity_graph`, and compared with their mean by
        cosine similarity and angle. The draws of one minibatch of cells are held at a time
        (``batch_size × n_genes × n_samples`` floats) on the model's device.

        Parameters
        ----------
        %(adata)s
        n_samples
            Posterior draws per cell (at least 2).
        gene_list
            Genes whose velocities enter the cosines; all by default.
        n_jobs
            Threads for the computation: ``-1`` (the default) uses ``revelo.settings.n_jobs``
            (every CPU this process may use unless set lower), ``-2`` one fewer, and so on,
            as joblib counts them in VeloVI.
        %(indices)s
        batch_size
            Cells per minibatch; by default as many as keep the draws near 16 MiB.

        Returns
        -------
        ``(frame, cosine_similarities)``, as VeloVI returns them. ``cosine_similarities`` is an
        array cells × ``n_samples``: each draw's cosine similarity to the cell's mean velocity.
        ``frame`` is a DataFrame indexed by cells with columns

        - ``directional_variance``: variance of the angles (radians) between the draws and
          their mean;
        - ``directional_difference``: 95th minus 5th percentile of those angles;
        - ``directional_cosine_sim_variance``: variance of the cosine similarities between the
          draws and their mean;
        - ``directional_cosine_sim_difference``: 95th minus 5th percentile of those cosines;
        - ``directional_cosine_sim_mean``: their mean (1 when all draws point the same way).

        Large variances and differences and a small mean mean an uncertain direction.
        """
        _check_n_samples(n_samples)
        threads = thread_count(n_jobs)
        batch_size = batch_size or _draw_batch_size(n_samples, self.summary_stats.n_vars)
        adata, indices, batches = query_batches(self, adata, indices, batch_size)
        genes = gene_mask(adata.var_names, gene_list, name="gene_list")
        genes = torch.from_numpy(genes).to(self.device)
        with limit_threads(threads):
            parts = [
                _cosine_statistics(draws[..., genes])
                for draws in posterior_stacks(
                    self.module, batches, "velocity", n_samples, self.device
                )
            ]
        frame = pd.DataFrame(
            {
                f"directional_{name}": torch.cat([part[name] for part in parts]).cpu().numpy()
                for name in _STATISTICS
            },
            index=adata.obs_names[indices],
        )
        cosines = torch.cat([part["cosine"] for part in parts], dim=1).T
        return frame, cosines.cpu().numpy()

    @with_thread_limit
    def get_extrinsic_uncertainty(
        self,
        adata: AnnData | None = None,
        *,
        n_samples: int = 25,
        basis: str = "umap",
        gene_list: Sequence[str] | None = None,
        batch_size: int | None = None,
    ) -> pd.DataFrame:
        """Extrinsic uncertainty: how much a cell's velocity arrow in an embedding varies.

        Each of ``n_samples`` posterior draws of all cells' velocities goes through
        :func:`revelo.tl.velocity_graph` and :func:`revelo.tl.velocity_embedding` (on the
        registered spliced layer, the stored neighbour graph and ``obsm[f"X_{basis}"]``), and
        every cell's arrows are compared with their mean by cosine similarity and angle. The
        uncertainty thus includes that of the neighbouring cells' states. ``adata`` is not
        modified: the graphs are built on a lightweight AnnData that shares its neighbours and
        embedding.

        Parameters
        ----------
        adata
            AnnData with the same genes as the model's, a neighbour graph
            (``obsp["distances"]``) and ``obsm[f"X_{basis}"]``; defaults to the model's.
        n_samples
            Posterior draws, one velocity graph each (at least 2).
        basis
            Embedding of the arrows.
        gene_list
            Genes of the velocity graph; defaults to ``var["velocity_genes"]`` when present,
            else all genes.
        batch_size
            Cells per minibatch when drawing velocities.

        Returns
        -------
        DataFrame indexed by cells with columns ``extrinsic_variance``,
        ``extrinsic_difference``, ``extrinsic_cosine_sim_variance``,
        ``extrinsic_cosine_sim_difference`` and ``extrinsic_cosine_sim_mean``: the statistics
        of :meth:`get_directional_uncertainty`, for the embedded arrows (not centred).
        """
        from revelo.tl import velocity_embedding, velocity_graph

        _check_n_samples(n_samples)
        adata, _, batches = query_batches(self, adata, None, batch_size)
        if f"X_{basis}" not in adata.obsm:
            msg = (
                f"adata.obsm has no 'X_{basis}': compute the embedding first, "
                f"e.g. scanpy.tl.{basis}(adata)."
            )
            raise KeyError(msg)
        distances = check_neighbors(adata)
        if gene_list is None and "velocity_genes" in adata.var:
            genes = adata.var["velocity_genes"].to_numpy(dtype=bool)
        else:
            genes = gene_mask(adata.var_names, gene_list, name="gene_list")
        proxy = _proxy_anndata(
            adata,
            genes,
            observed_abundances(self, adata)[0],
            distances,
            basis,
        )
        arrows = []
        for _ in range(n_samples):
            draws = posterior_stacks(self.module, batches, "velocity", 1, self.device)
            velocity = torch.cat([stack[0] for stack in draws])
            proxy.layers["velocity"] = velocity.cpu().numpy()[:, genes]
            velocity_graph(proxy)
            velocity_embedding(proxy, basis=basis, autoscale=False)
            arrows.append(proxy.obsm[f"velocity_{basis}"])
        statistics = _cosine_statistics(torch.from_numpy(np.stack(arrows)), center=False)
        return pd.DataFrame(
            {f"extrinsic_{name}": statistics[name].numpy() for name in _STATISTICS},
            index=adata.obs_names,
        )

    @query_docs
    @with_thread_limit
    @torch.inference_mode()
    def get_permutation_scores(
        self,
        labels_key: str,
        adata: AnnData | None = None,
        *,
        n_samples: int = 10,
        batch_size: int | None = None,
    ) -> tuple[pd.DataFrame, AnnData]:
        """Per gene and cell type, how much worse the fit gets when u and s are decoupled.

        Within each cell type, every gene's spliced values and, independently, its unspliced
        values are shuffled among the type's cells (torch's global generator), which keeps
        both marginal distributions but destroys their coupling. The per-cell log-likelihood
        of the gene (averaged over ``n_samples`` posterior draws) on the original data is
        compared with that on the shuffled data by Welch's t-test. Genes whose dynamics the
        model captures in a type score high; genes whose (u, s) carry no kinetic signal there
        score near 0. The statistic grows with the square root of the type's size, so compare
        scores within a type rather than across types of very different sizes. ``adata`` is
        not modified; the shuffled data come back as a copy of it.

        Parameters
        ----------
        labels_key
            Column of ``adata.obs`` with the cell types.
        %(adata)s
        n_samples
            Posterior draws averaged per cell.
        batch_size
            Cells per minibatch.

        Returns
        -------
        ``(scores, permuted_adata)``, as VeloVI returns them. ``scores``: a DataFrame genes ×
        cell types of Welch t-statistics (original minus shuffled log-likelihood); NaN for
        types with fewer than two cells. ``permuted_adata``: a copy of ``adata`` whose
        registered layers hold the shuffled values that were scored (as the model reads them,
        in float32, cast back to each layer's dtype), not registered with the model yet.
        """
        adata, _, checked = query_batches(self, adata, None, batch_size)
        if labels_key not in adata.obs:
            msg = f"adata.obs has no {labels_key!r} column with cell types."
            raise KeyError(msg)
        labels = pd.Categorical(adata.obs[labels_key]).remove_unused_categories()
        codes = np.asarray(labels.codes)
        batch_size = batch_size or _draw_batch_size(n_samples, self.summary_stats.n_vars)
        tensors = checked.tensors
        permuted = {
            key: _permute_within_groups(value, codes) if key in EXPRESSION_KEYS else value
            for key, value in tensors.items()
        }
        cells = np.arange(adata.n_obs)

        def mean_log_likelihood(data: dict[str, torch.Tensor]) -> np.ndarray:
            batches = TensorBatches(data, cells, batch_size=batch_size)
            draws = posterior_stacks(
                self.module, batches, "log_likelihood", n_samples, self.device
            )
            return torch.cat([part.mean(0) for part in draws]).double().cpu().numpy()

        original = mean_log_likelihood(tensors)
        shuffled = mean_log_likelihood(permuted)
        scores = np.full((adata.n_vars, len(labels.categories)), np.nan)
        for code in range(len(labels.categories)):
            in_type = codes == code
            if in_type.sum() < 2:
                continue
            # genes constant in a type give 0/0: NaN, without a warning per gene
            with np.errstate(divide="ignore", invalid="ignore"):
                result = ttest_ind(original[in_type], shuffled[in_type], axis=0, equal_var=False)
            scores[:, code] = result.statistic
        frame = pd.DataFrame(
            scores, index=adata.var_names, columns=pd.Index(labels.categories, name=labels_key)
        )
        return frame, permuted_anndata(self, adata, permuted)


def _draw_batch_size(n_samples: int, n_genes: int) -> int:
    """Cells per minibatch whose stack of draws holds about ``_DRAW_ELEMENTS`` floats."""
    return max(1, _DRAW_ELEMENTS // (n_samples * n_genes))


def _proxy_anndata(
    adata: AnnData,
    genes: np.ndarray,
    states: np.ndarray,
    distances: sparse.csr_matrix,
    basis: str,
) -> AnnData:
    """An AnnData with only what the velocity graph and embedding read, sharing ``adata``'s."""
    proxy = AnnData(
        obs=pd.DataFrame(index=adata.obs_names), var=pd.DataFrame(index=adata.var_names[genes])
    )
    proxy.layers["Ms"] = states[:, genes]
    proxy.obsp["distances"] = distances
    proxy.obsm[f"X_{basis}"] = adata.obsm[f"X_{basis}"]
    return proxy
