"""Each method on its own documented pipeline from raw counts, scored on one shared embedding.

Used by ``python -m benchmarks.run --protocol own``. From the same raw counts:

``revelo``
    :func:`revelo.pp.preprocess` with its defaults (2,000 genes, 30 PCs, 30 neighbours), then
    ``REVELO(adata).train()`` and ``add_outputs``.
``velovi``
    VeloVI's documented pipeline: scVelo's ``pp.filter_and_normalize(min_shared_counts=20)``
    (then ``pp.filter_genes_dispersion(n_top_genes=2000)`` where more genes remain), ``log1p``,
    ``pp.moments(n_pcs=30, n_neighbors=30)``, then the
    ``preprocess_data`` step of the ``velovi`` package (min-max scaling of ``Ms`` and ``Mu`` per
    gene and keeping scVelo's deterministic velocity genes with positive ``r²`` and ``γ``),
    reimplemented in :func:`velovi_preprocess` (the standalone ``velovi`` package is not a
    dependency); then ``VELOVI(adata).train()``.
``scvelo_dynamical``
    scVelo's own: the same filtering, normalisation and ``log1p``,
    ``pp.moments(n_pcs=30, n_neighbors=30)``, ``tl.recover_dynamics`` and
    ``tl.velocity(mode="dynamical")``.
``scvelo_stochastic``, ``scvelo_deterministic``
    The same preprocessing, then ``tl.velocity(mode="stochastic")`` (or ``"deterministic"``).

All are scored on one UMAP and one neighbour graph built once by scanpy's standard recipe
(:func:`shared_embedding`: ``normalize_total``, ``log1p``, 2,000 highly variable genes, PCA with
30 components, 30 neighbours, UMAP with seed 0): for each method an AnnData holds its own
genes, its own ``Ms`` and velocities, and the shared graph and UMAP, and
:func:`revelo.tl.velocity_graph` and :func:`revelo.tl.velocity_embedding` make the same
computation for every method. Latent time (stage Spearman) is each method's own.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from benchmarks._common import MethodResult, measure, run_revelo, run_velovi

if TYPE_CHECKING:
    from anndata import AnnData

#: scVelo's and VeloVI's documented settings.
SCVELO_PREPROCESS = {"min_shared_counts": 20, "n_top_genes": 2000}
MOMENTS = {"n_pcs": 30, "n_neighbors": 30}
#: revelo's documented defaults (those of :func:`revelo.pp.preprocess`).
REVELO_PREPROCESS = {
    "min_shared_counts": 20,
    "n_top_genes": 2000,
    "n_pcs": 30,
    "n_neighbors": 30,
    "random_state": 0,
}


def shared_embedding(raw: AnnData) -> AnnData:
    """Scanpy's standard recipe on the spliced counts: one UMAP and graph to score every method.

    Returns an AnnData without genes' values: ``obs`` (cells and clusters), ``obsm["X_umap"]``,
    ``obsm["X_pca"]`` and ``obsp["distances"]``/``obsp["connectivities"]`` with
    ``uns["neighbors"]``.
    """
    import scanpy as sc
    from anndata import AnnData

    adata = AnnData(
        X=raw.layers["spliced"].astype(np.float32), obs=raw.obs.copy(), var=raw.var[[]].copy()
    )
    sc.pp.normalize_total(adata)
    sc.pp.log1p(adata)
    sc.pp.highly_variable_genes(adata, n_top_genes=2000, subset=True)
    sc.pp.pca(adata, n_comps=30, random_state=0)
    sc.pp.neighbors(adata, n_neighbors=30, n_pcs=30, random_state=0)
    sc.tl.umap(adata, random_state=0)
    shared = AnnData(obs=adata.obs.copy())
    shared.obsm["X_umap"] = adata.obsm["X_umap"]
    shared.obsm["X_pca"] = adata.obsm["X_pca"]
    shared.obsp["distances"] = adata.obsp["distances"]
    shared.obsp["connectivities"] = adata.obsp["connectivities"]
    shared.uns["neighbors"] = adata.uns["neighbors"]
    return shared


def scvelo_preprocess(raw: AnnData) -> AnnData:
    """scVelo's documented preprocessing (also VeloVI's first steps), on a copy."""
    import scanpy as sc
    import scvelo as scv

    scv.settings.verbosity = 0
    adata = raw.copy()
    # scVelo 0.3 no longer takes n_top_genes in filter_and_normalize (nor logs there): its
    # tutorial's steps, one by one
    scv.pp.filter_and_normalize(adata, min_shared_counts=SCVELO_PREPROCESS["min_shared_counts"])
    if adata.n_vars > SCVELO_PREPROCESS["n_top_genes"]:
        scv.pp.filter_genes_dispersion(adata, n_top_genes=SCVELO_PREPROCESS["n_top_genes"])
    sc.pp.log1p(adata)
    scv.pp.moments(adata, **MOMENTS)
    return adata


def velovi_preprocess(adata: AnnData) -> AnnData:
    """The ``velovi.preprocess_data`` step: scale ``Ms``/``Mu`` to [0, 1], keep fitting genes.

    Each gene's ``Ms`` and ``Mu`` are min-max scaled; scVelo's deterministic model then marks
    velocity genes, and genes with ``velocity_r2 > 0``, ``velocity_gamma > 0`` and
    ``velocity_genes`` are kept. Returns a copy of those genes of ``adata`` (its other layers,
    graph and annotations included) with the scaled ``Ms``/``Mu``; ``adata`` is not changed.
    The fit runs on an AnnData holding only the scaled moments, so no copy of every gene's
    other layers is made.
    """
    import scvelo as scv
    from anndata import AnnData

    scaled = {}
    for key in ("Ms", "Mu"):
        values = np.asarray(adata.layers[key], dtype=np.float64)
        low, high = values.min(0), values.max(0)
        scaled[key] = ((values - low) / np.where(high > low, high - low, 1.0)).astype(np.float32)
    probe = AnnData(obs=adata.obs[[]].copy(), var=adata.var[[]].copy(), layers=scaled)
    scv.tl.velocity(probe, mode="deterministic")
    var = probe.var
    keep = (var["velocity_r2"] > 0) & (var["velocity_gamma"] > 0) & var["velocity_genes"]
    keep = keep.to_numpy(dtype=bool)
    out = adata[:, keep].copy()
    for key, values in scaled.items():
        out.layers[key] = values[:, keep]
    return out


def run_scvelo_own(adata: AnnData, mode: str) -> MethodResult:
    """scVelo's dynamical, stochastic or deterministic model on its own preprocessed data."""
    import scvelo as scv

    import revelo

    scv.settings.verbosity = 0
    work = adata.copy()
    with measure() as total:
        with measure() as train:
            if mode == "dynamical":
                scv.tl.recover_dynamics(work, n_jobs=1, show_progress_bar=False)
        scv.tl.velocity(work, mode=mode)
    velocity = np.asarray(work.layers["velocity"], dtype=np.float32)
    genes = np.isfinite(velocity).all(0)
    if "velocity_genes" in work.var:
        genes &= work.var["velocity_genes"].to_numpy(dtype=bool)
    fit_t = latent = None
    if mode == "dynamical":
        fit_t = np.asarray(work.layers["fit_t"], dtype=np.float32)
        latent = np.full(work.n_obs, np.nan)
        if np.isfinite(fit_t).all(axis=0).any():
            revelo.tl.latent_time(work, fit_t_key="fit_t")
            latent = work.obs["latent_time"].to_numpy(dtype=np.float64)
    return MethodResult(
        method=f"scvelo_{mode}",
        seed=None,
        velocity=velocity,
        velocity_genes=genes,
        mode=mode,
        fit_t=fit_t,
        latent_time=latent,
        train_seconds=train.seconds if mode == "dynamical" else total.seconds,
        total_seconds=total.seconds,
        peak_rss_delta_mib=total.peak_rss_delta_mib,
        max_rss_mib=total.max_rss_mib,
    )


def run_own(
    raw: AnnData,
    method: str,
    *,
    seed: int,
    max_epochs: int | None = None,
    revelo_model: dict[str, Any] | None = None,
    revelo_train: dict[str, Any] | None = None,
) -> tuple[AnnData, MethodResult, float]:
    """Preprocess ``raw`` the method's own way and run it.

    Returns the method's preprocessed AnnData (its cells, genes and ``Ms``), its result and the
    preprocessing seconds.
    """
    import revelo

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with measure() as prep:
            if method == "revelo":
                adata = revelo.pp.preprocess(raw, **REVELO_PREPROCESS)
            else:
                adata = scvelo_preprocess(raw)
                if method == "velovi":
                    adata = velovi_preprocess(adata)
        if method == "revelo":
            result = run_revelo(
                adata,
                seed=seed,
                max_epochs=max_epochs,
                model_kwargs=revelo_model,
                train_kwargs=revelo_train,
            )
        elif method == "velovi":
            result = run_velovi(adata, seed=seed, max_epochs=max_epochs)
        elif method in ("scvelo_dynamical", "scvelo_stochastic", "scvelo_deterministic"):
            result = run_scvelo_own(adata, method.removeprefix("scvelo_"))
        else:
            msg = f"No own pipeline for {method!r}; choose revelo, velovi or a scVelo mode."
            raise ValueError(msg)
    return adata, result, prep.seconds


def scoring_data(
    shared: AnnData, adata: AnnData, result: MethodResult
) -> tuple[AnnData, MethodResult]:
    """The method's genes, ``Ms`` and velocities on the shared cells, graph and UMAP."""
    from anndata import AnnData

    cells = shared.obs_names.intersection(adata.obs_names)
    if len(cells) < shared.n_obs:
        msg = f"{result.method}: its pipeline kept {len(cells)} of {shared.n_obs} cells."
        warnings.warn(msg, stacklevel=2)
    rows = adata.obs_names.get_indexer(cells)
    keep = shared.obs_names.get_indexer(cells)
    out = AnnData(obs=shared.obs.iloc[keep].copy(), var=adata.var[[]].copy())
    out.obsm["X_umap"] = shared.obsm["X_umap"][keep]
    out.obsp["distances"] = shared.obsp["distances"][keep][:, keep]
    out.obsp["connectivities"] = shared.obsp["connectivities"][keep][:, keep]
    out.uns["neighbors"] = dict(shared.uns["neighbors"])
    out.layers["Ms"] = np.asarray(adata.layers["Ms"], dtype=np.float32)[rows]
    sliced = MethodResult(**{**result.__dict__})
    sliced.velocity = result.velocity[rows]
    if result.fit_t is not None:
        sliced.fit_t = result.fit_t[rows]
    if result.latent_time is not None:
        sliced.latent_time = result.latent_time[rows]
    return out, sliced
