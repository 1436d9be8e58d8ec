"""Shared benchmark helpers: threads, time and memory, the method runners, metrics and output.

Every method runs on its own copy of one preprocessed AnnData (same cells, genes, ``Ms``/``Mu``
and neighbour graph) and returns a :class:`MethodResult`; :func:`add_result` stores it under
per-method keys (``layers[f"velocity_{name}"]`` …) so that :func:`evaluate` scores all methods
with the same revelo tools.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import json
import os
import platform
import resource
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

    from anndata import AnnData

METHODS = ("revelo", "velovi", "scvelo_stochastic", "scvelo_dynamical")
#: Methods whose result does not depend on the seed; they run once, whatever ``--seeds`` says.
DETERMINISTIC = frozenset({"scvelo_stochastic", "scvelo_dynamical"})
#: VeloVI tutorial convention: per-gene times are stretched so that each gene ends at 20.
VELOVI_TIME_SPAN = 20.0
N_POSTERIOR_SAMPLES = 25

# ---------------------------------------------------------------------------- environment


def limit_threads(n_threads: int = 1) -> dict[str, Any]:
    """Limit torch and the BLAS/OpenMP pools to ``n_threads``; return what is in effect."""
    torch.set_num_threads(n_threads)
    with contextlib.suppress(RuntimeError):  # only possible before torch's first parallel op
        torch.set_num_interop_threads(n_threads)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_limits

        threadpool_limits(n_threads)
    return thread_report()


def thread_report() -> dict[str, Any]:
    """Thread settings in effect, for the JSON output."""
    report: dict[str, Any] = {
        "torch_num_threads": torch.get_num_threads(),
        "torch_num_interop_threads": torch.get_num_interop_threads(),
        "cpu_count": os.cpu_count(),
    }
    for name in (
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_NUM_THREADS",
        "NUMBA_NUM_THREADS",
    ):
        report[name] = os.environ.get(name)
    with contextlib.suppress(ImportError):
        from threadpoolctl import threadpool_info

        report["blas_threads"] = sorted({pool["num_threads"] for pool in threadpool_info()})
    return report


def environment() -> dict[str, Any]:
    """Versions, machine and threads."""
    packages = ("revelo", "scvi-tools", "scvelo", "torch", "numpy", "scipy", "anndata", "scanpy")
    versions = {}
    for name in packages:
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "versions": versions,
        "threads": thread_report(),
        "device": "cpu",
    }


def _rss_bytes() -> int:
    """Resident memory of this process now."""
    try:
        import psutil

        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _max_rss_mib() -> float:
    """Peak resident memory of this process over its whole life (``getrusage``)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


@dataclass
class Measurement:
    """Wall time and memory of one measured block."""

    seconds: float = float("nan")
    #: Highest resident memory seen during the block minus the resident memory at its start.
    peak_rss_delta_mib: float = float("nan")
    #: ``getrusage`` peak of the whole process when the block ended.
    max_rss_mib: float = float("nan")


@contextlib.contextmanager
def measure(interval: float = 0.02) -> Iterator[Measurement]:
    """Time a block and sample its resident memory every ``interval`` seconds.

    Sampling RSS from a thread sees native allocations (torch, numpy) that ``tracemalloc``
    misses, and unlike ``tracemalloc`` it does not slow the measured code down.
    """
    result = Measurement()
    start_rss = _rss_bytes()
    peak = [start_rss]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval):
            peak[0] = max(peak[0], _rss_bytes())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    try:
        yield result
    finally:
        result.seconds = time.perf_counter() - start
        stop.set()
        sampler.join()
        peak[0] = max(peak[0], _rss_bytes())
        result.peak_rss_delta_mib = (peak[0] - start_rss) / 2**20
        result.max_rss_mib = _max_rss_mib()


# ---------------------------------------------------------------------------- methods


def load_average() -> list[float]:
    """1-, 5- and 15-minute load averages, the numbers ``uptime`` prints."""
    return [round(value, 2) for value in os.getloadavg()]


class Stages:
    """Run a benchmark's stages one by one, each with its time, memory, load and torch threads.

    torch's thread count is set to ``threads`` before every stage, so that a library that
    enlarges the pool (numba's OpenMP layer can) does not change the next stage;
    ``torch_threads_after`` shows whether the stage itself did. ``after_stage`` is called after
    every stage (to write the results so far).
    """

    def __init__(self, threads: int, after_stage: Callable[[], None] | None = None) -> None:
        self.threads = threads
        self.after_stage = after_stage
        self.rows: dict[str, dict[str, Any]] = {}

    def run(
        self, name: str, function, *args, tolerate: tuple[type[Exception], ...] = (), **kwargs
    ):
        """Run one stage; an exception of a ``tolerate`` type is recorded, not raised.

        Such a stage's row has ``"error"`` (the exception's type and message) and it returns
        ``None``; e.g. scVelo's velocity graph refuses a neighbour graph in which some cell has
        no neighbour at a positive distance.
        """
        torch.set_num_threads(self.threads)
        before = load_average()
        error = None
        with measure() as cost:
            try:
                result = function(*args, **kwargs)
            except tolerate as exc:
                result, error = None, f"{type(exc).__name__}: {exc}"
        after = load_average()
        self.rows[name] = {
            "seconds": cost.seconds,
            "peak_rss_delta_mib": cost.peak_rss_delta_mib,
            "max_rss_mib": cost.max_rss_mib,
            "load_before": before,
            "load_after": after,
            "torch_threads_after": torch.get_num_threads(),
        }
        if error is not None:
            self.rows[name]["error"] = error
            print(f"  {name} failed: {error}", flush=True)
        print(
            f"  {name:18s} {cost.seconds:9.1f} s  ΔRSS {cost.peak_rss_delta_mib:7.0f} MiB  "
            f"load {before[0]:.2f} -> {after[0]:.2f}",
            flush=True,
        )
        if self.after_stage is not None:
            self.after_stage()
        return result

    def seconds(self, *names: str) -> float | None:
        """Sum of the stages' seconds; ``None`` when one of them did not run or failed."""
        if not all(name in self.rows and "error" not in self.rows[name] for name in names):
            return None
        return sum(self.rows[name]["seconds"] for name in names)


@dataclass
class MethodResult:
    """What one method produced on one data set, and what it cost."""

    method: str
    seed: int | None
    velocity: np.ndarray
    velocity_genes: np.ndarray
    #: ``"stochastic"`` makes the velocity graph use scVelo's square-root transform.
    mode: str
    fit_t: np.ndarray | None = None
    latent_time: np.ndarray | None = None
    train_seconds: float = float("nan")
    total_seconds: float = float("nan")
    epochs: int | None = None
    peak_rss_delta_mib: float = float("nan")
    max_rss_mib: float = float("nan")
    extra: dict[str, Any] = field(default_factory=dict)
    #: Other shared times per cell, by name (scored as ``latent_time_spearman_{name}``).
    extra_times: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def seconds_per_epoch(self) -> float:
        """Training time per epoch (NaN for methods without epochs)."""
        return self.train_seconds / self.epochs if self.epochs else float("nan")

    def costs(self) -> dict[str, Any]:
        """Time and memory as a JSON-ready dict."""
        return {
            "train_seconds": self.train_seconds,
            "total_seconds": self.total_seconds,
            "epochs": self.epochs,
            "seconds_per_epoch": self.seconds_per_epoch,
            "peak_rss_delta_mib": self.peak_rss_delta_mib,
            "max_rss_mib": self.max_rss_mib,
            **self.extra,
        }


def _epochs_run(model) -> int | None:
    history = getattr(model, "history", None) or {}
    for key in ("elbo_train", "train_loss_epoch"):
        if key in history:
            return len(history[key])
    return None


def model_accepts(model_cls, name: str) -> bool:
    parameters = set(inspect.signature(model_cls.__init__).parameters)
    module_cls = getattr(model_cls, "_module_cls", None)
    if module_cls is not None:
        parameters |= set(inspect.signature(module_cls.__init__).parameters)
    return name in parameters


def run_revelo(
    adata: AnnData,
    *,
    seed: int,
    max_epochs: int | None = None,
    likelihood: str | None = None,
    model_kwargs: dict[str, Any] | None = None,
    train_kwargs: dict[str, Any] | None = None,
) -> MethodResult:
    """Train REVELO (with its defaults unless told otherwise) and read its outputs.

    The Gaussian likelihood (the default) reads ``Ms``/``Mu``; ``"poisson"`` and ``"nb"`` read
    the raw ``spliced``/``unspliced`` counts of the same cells and genes. On a simulation,
    where library size follows time rather than sequencing depth, every size factor is 1.
    ``model_kwargs`` go to ``REVELO(...)`` and ``train_kwargs`` to ``model.train(...)``, to
    measure a variant of the model.
    """
    import revelo

    if likelihood is not None and not model_accepts(revelo.REVELO, "likelihood"):
        msg = f"This revelo version has no `likelihood` option (asked for {likelihood!r})."
        raise ValueError(msg)
    counts = likelihood not in (None, "gaussian")
    work = adata.copy()
    revelo.settings.seed = seed
    model_kwargs = dict(model_kwargs or {})
    if likelihood is not None:
        model_kwargs["likelihood"] = likelihood
    setup: dict[str, Any] = {}
    if counts:
        setup = {"spliced_layer": "spliced_counts", "unspliced_layer": "unspliced_counts"}
        if "simulation" in work.uns:
            work.obs["size_factor"] = 1.0
            setup["size_factor_key"] = "size_factor"
    with measure() as total:
        revelo.REVELO.setup_anndata(work, **setup)
        model = revelo.REVELO(work, **model_kwargs)
        with measure() as train:
            model.train(
                max_epochs=max_epochs,
                accelerator="cpu",
                enable_progress_bar=False,
                **(train_kwargs or {}),
            )
        model.add_outputs(work, n_samples=N_POSTERIOR_SAMPLES)
    genes = work.var["velocity_genes"].to_numpy(dtype=bool)
    return MethodResult(
        method=f"revelo_{likelihood}" if counts else "revelo",
        seed=seed,
        velocity=np.asarray(work.layers["velocity"], dtype=np.float32),
        velocity_genes=genes,
        mode="revelo",
        fit_t=np.asarray(work.layers["fit_t"], dtype=np.float32),
        latent_time=work.obs["latent_time"].to_numpy(dtype=np.float64),
        train_seconds=train.seconds,
        total_seconds=total.seconds,
        epochs=_epochs_run(model),
        peak_rss_delta_mib=total.peak_rss_delta_mib,
        max_rss_mib=total.max_rss_mib,
        extra={"likelihood": likelihood or "gaussian"},
    )


def run_velovi(adata: AnnData, *, seed: int, max_epochs: int | None = None) -> MethodResult:
    """Train ``scvi.external.VELOVI`` with its defaults on ``Ms``/``Mu``.

    Outputs follow the convention of the VeloVI tutorial: every gene's times are stretched to
    end at 20 and its velocity divided by the same factor, so velocities are per unit of that
    time. VeloVI has no shared time of its own; :func:`revelo.tl.latent_time` aggregates its
    per-gene times exactly as it does revelo's.
    """
    import scvi

    import revelo

    work = adata.copy()
    scvi.settings.seed = seed
    with measure() as total:
        scvi.external.VELOVI.setup_anndata(work, spliced_layer="Ms", unspliced_layer="Mu")
        model = scvi.external.VELOVI(work)
        with measure() as train:
            model.train(
                max_epochs=500 if max_epochs is None else max_epochs,
                accelerator="cpu",
                enable_progress_bar=False,
            )
        gene_time = model.get_latent_time(n_samples=N_POSTERIOR_SAMPLES, return_numpy=True)
        velocity = model.get_velocity(
            n_samples=N_POSTERIOR_SAMPLES, velo_statistic="mean", return_numpy=True
        )
    stretch = VELOVI_TIME_SPAN / np.maximum(gene_time.max(axis=0), 1e-12)
    work.layers["fit_t"] = gene_time * stretch
    revelo.tl.latent_time(work, fit_t_key="fit_t")
    return MethodResult(
        method="velovi",
        seed=seed,
        velocity=np.asarray(velocity / stretch, dtype=np.float32),
        velocity_genes=np.ones(work.n_vars, dtype=bool),
        mode="velovi",
        fit_t=np.asarray(work.layers["fit_t"], dtype=np.float32),
        latent_time=work.obs["latent_time"].to_numpy(dtype=np.float64),
        train_seconds=train.seconds,
        total_seconds=total.seconds,
        epochs=_epochs_run(model),
        peak_rss_delta_mib=total.peak_rss_delta_mib,
        max_rss_mib=total.max_rss_mib,
    )


def _scvelo_copy(adata: AnnData) -> AnnData:
    """A copy for scVelo, without revelo's steady-state gene selection.

    scVelo's stochastic model takes second moments from the per-cell ``spliced``/``unspliced``
    layers; :func:`revelo.pp.preprocess` stores them in the (scaled) units of ``Ms``/``Mu``
    already (their neighbour mean is exactly ``Ms``), so they agree with the moments.
    """
    work = adata.copy()
    # scVelo chooses its own velocity genes; drop revelo's steady-state columns
    work.var = work.var.drop(
        columns=["velocity_genes", "velocity_gamma", "velocity_r2"], errors="ignore"
    )
    work.uns.pop("velocity_params", None)
    return work


def _scvelo_velocity_genes(adata: AnnData) -> np.ndarray:
    """scVelo's velocity genes; it drops the column when every gene qualifies."""
    if "velocity_genes" not in adata.var:
        return np.ones(adata.n_vars, dtype=bool)
    return adata.var["velocity_genes"].to_numpy(dtype=bool)


def run_scvelo_stochastic(adata: AnnData, *, seed: int | None = None, **_) -> MethodResult:
    """scVelo's stochastic model on the same ``Ms``/``Mu`` (min-max scaled per gene)."""
    import scvelo as scv

    scv.settings.verbosity = 0
    work = _scvelo_copy(adata)
    with measure() as total:
        scv.tl.velocity(work, mode="stochastic")
    return MethodResult(
        method="scvelo_stochastic",
        seed=None,
        velocity=np.asarray(work.layers["velocity"], dtype=np.float32),
        velocity_genes=_scvelo_velocity_genes(work),
        mode="stochastic",
        train_seconds=total.seconds,
        total_seconds=total.seconds,
        peak_rss_delta_mib=total.peak_rss_delta_mib,
        max_rss_mib=total.max_rss_mib,
    )


def run_scvelo_dynamical(
    adata: AnnData, *, seed: int | None = None, scvelo_latent_time: bool = False, **_
) -> MethodResult:
    """scVelo's dynamical model (``recover_dynamics`` on one job) on the same ``Ms``/``Mu``.

    Its shared time comes from :func:`revelo.tl.latent_time` on its ``fit_t`` (weighted by its
    ``fit_likelihood``), like the other methods'. With ``scvelo_latent_time``, scVelo's own
    ``tl.velocity_graph`` + ``tl.latent_time`` also run, after the timed part, and their result
    goes to ``extra_times["scvelo"]``.
    """
    import scvelo as scv

    import revelo

    scv.settings.verbosity = 0
    work = _scvelo_copy(adata)
    with measure() as total:
        with measure() as train:
            scv.tl.recover_dynamics(work, n_jobs=1, show_progress_bar=False)
        scv.tl.velocity(work, mode="dynamical")
    fit_t = np.asarray(work.layers["fit_t"], dtype=np.float32)
    velocity = np.asarray(work.layers["velocity"], dtype=np.float32)
    genes = _scvelo_velocity_genes(work) & np.isfinite(velocity).all(0)
    latent = np.full(work.n_obs, np.nan)
    if np.isfinite(fit_t).all(axis=0).any():
        revelo.tl.latent_time(work, fit_t_key="fit_t")
        latent = work.obs["latent_time"].to_numpy(dtype=np.float64)
    extra_times = {}
    if scvelo_latent_time:
        scv.tl.velocity_graph(work, n_jobs=1, show_progress_bar=False)
        scv.tl.latent_time(work)
        extra_times["scvelo"] = work.obs["latent_time"].to_numpy(dtype=np.float64)
    return MethodResult(
        method="scvelo_dynamical",
        seed=None,
        velocity=velocity,
        velocity_genes=genes,
        mode="dynamical",
        fit_t=fit_t,
        latent_time=latent,
        train_seconds=train.seconds,
        total_seconds=total.seconds,
        peak_rss_delta_mib=total.peak_rss_delta_mib,
        max_rss_mib=total.max_rss_mib,
        extra={"n_fitted_genes": int(np.isfinite(velocity).all(0).sum())},
        extra_times=extra_times,
    )


RUNNERS: dict[str, Callable[..., MethodResult]] = {
    "revelo": run_revelo,
    "revelo_poisson": functools.partial(run_revelo, likelihood="poisson"),
    "revelo_nb": functools.partial(run_revelo, likelihood="nb"),
    "velovi": run_velovi,
    "scvelo_stochastic": run_scvelo_stochastic,
    "scvelo_dynamical": run_scvelo_dynamical,
}


def run_method(
    adata: AnnData,
    method: str,
    *,
    seed: int,
    max_epochs: int | None = None,
    likelihood: str | None = None,
    scvelo_latent_time: bool = False,
    revelo_model: dict[str, Any] | None = None,
    revelo_train: dict[str, Any] | None = None,
) -> MethodResult:
    """Run ``method`` on a copy of ``adata``; the options go to the methods that have them.

    ``revelo_model`` and ``revelo_train`` are keyword arguments for ``REVELO(...)`` and
    ``REVELO.train(...)`` in every revelo method.
    """
    if method not in RUNNERS:
        msg = f"Unknown method {method!r}; choose from {list(RUNNERS)}."
        raise ValueError(msg)
    kwargs: dict[str, Any] = {"seed": seed}
    if method.startswith("revelo") or method == "velovi":
        kwargs["max_epochs"] = max_epochs
    if method == "revelo":
        kwargs["likelihood"] = likelihood
    if method.startswith("revelo"):
        kwargs["model_kwargs"] = revelo_model
        kwargs["train_kwargs"] = revelo_train
    if method == "scvelo_dynamical":
        kwargs["scvelo_latent_time"] = scvelo_latent_time
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return RUNNERS[method](adata, **kwargs)


# ---------------------------------------------------------------------------- metrics


def add_result(adata: AnnData, result: MethodResult) -> str:
    """Store ``result`` in ``adata`` under per-method keys; return its velocity key.

    Writes ``layers[vkey]``, ``var[f"{vkey}_genes"]`` (the method's own velocity genes, minus
    genes with non-finite velocity), ``uns[f"{vkey}_params"]`` and, when the method has times,
    ``layers[f"fit_t_{method}"]`` and ``obs[f"latent_time_{method}"]``.
    """
    vkey = f"velocity_{result.method}"
    adata.layers[vkey] = result.velocity
    genes = result.velocity_genes & np.isfinite(result.velocity).all(axis=0)
    adata.var[f"{vkey}_genes"] = genes
    adata.uns[f"{vkey}_params"] = {"mode": result.mode}
    if result.fit_t is not None:
        adata.layers[f"fit_t_{result.method}"] = result.fit_t
    if result.latent_time is not None:
        adata.obs[f"latent_time_{result.method}"] = result.latent_time
    for name, times in result.extra_times.items():
        adata.obs[f"latent_time_{result.method}_{name}"] = times
    return vkey


def evaluate(
    adata: AnnData,
    method: str,
    *,
    cluster_key: str | None = None,
    edges: Sequence[tuple[str, str]] = (),
    basis: str | None = "umap",
    true_key: str | None = None,
    graph: bool = True,
) -> dict[str, Any]:
    """Score one method's stored velocities with revelo's metrics.

    With ``graph``, computes the velocity graph and, with ``basis``, the embedded velocities;
    then CBDir (gene space on ``Ms`` and in the embedding; per edge and mean), ICCoh and
    velocity consistency. Against the truth ``layers[true_key]``: sign agreement, cosine and
    the Spearman correlations of shared and per-gene times with ``obs["true_t"]``.
    """

    vkey = f"velocity_{method}"
    out: dict[str, Any] = {"n_velocity_genes": int(adata.var[f"{vkey}_genes"].sum())}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if graph:
            out.update(_graph_metrics(adata, vkey, cluster_key, edges, basis))
    if true_key is not None:
        out.update(_truth_metrics(adata, method, vkey, true_key))
    elif cluster_key is not None and edges:
        out.update(_stage_metrics(adata, method, cluster_key, edges))
    return {key: _finite(value) for key, value in out.items()}


def edge_stages(edges: Sequence[tuple[str, str]]) -> dict[str, int]:
    """Each cluster's stage along the known transitions.

    0 for a cluster that no edge enters, otherwise one more than the latest of the clusters
    with an edge into it (pancreas: Ductal 0, Ngn3 low EP 1, Ngn3 high EP 2, Pre-endocrine 3,
    the four endocrine types 4).
    """
    stages = {cluster: 0 for edge in edges for cluster in edge}
    for _ in range(len(stages)):  # a longest path visits each cluster at most once
        for source, target in edges:
            stages[target] = max(stages[target], stages[source] + 1)
    return stages


def _stage_metrics(
    adata: AnnData, method: str, cluster_key: str, edges: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """Spearman correlation of the method's shared time with the clusters' stages.

    Without a true time, the known transitions still order the clusters (:func:`edge_stages`);
    the stage stands in for the true time of :func:`revelo.tl.latent_time_accuracy` (written to
    ``obs["stage"]``), which leaves out cells of clusters outside the edges.
    """
    import revelo

    column = f"latent_time_{method}"
    if column not in adata.obs:
        return {}
    stages = edge_stages(edges)
    adata.obs["stage"] = adata.obs[cluster_key].astype(str).map(stages).astype(np.float64)
    times = revelo.tl.latent_time_accuracy(adata, time_key=column, true_key="stage")
    return {"stage_time_spearman": times["spearman"]}


def _graph_metrics(
    adata: AnnData,
    vkey: str,
    cluster_key: str | None,
    edges: Sequence[tuple[str, str]],
    basis: str | None,
) -> dict[str, Any]:
    import revelo

    out: dict[str, Any] = {}
    revelo.tl.velocity_graph(adata, vkey=vkey, device="cpu")
    spaces: dict[str, str | None] = {"gene": None}
    if basis is not None and f"X_{basis}" in adata.obsm:
        revelo.tl.velocity_embedding(adata, basis=basis, vkey=vkey)
        spaces[basis] = basis
    for space, space_basis in spaces.items():
        if cluster_key is not None and edges:
            cbdir = revelo.tl.cross_boundary_correctness(
                adata, cluster_key=cluster_key, edges=edges, basis=space_basis, vkey=vkey
            )
            out[f"cbdir_{space}"] = cbdir.mean
            out[f"cbdir_{space}_edges"] = {
                f"{source} → {target}": _finite(value)
                for (source, target), value in cbdir.scores.items()
            }
        if cluster_key is not None:
            coherence = revelo.tl.in_cluster_coherence(
                adata, cluster_key=cluster_key, basis=space_basis, vkey=vkey
            )
            out[f"iccoh_{space}"] = coherence.mean
        consistency = revelo.tl.velocity_consistency(adata, vkey=vkey, basis=space_basis)
        out[f"consistency_{space}"] = consistency.mean
    return out


def _truth_metrics(adata: AnnData, method: str, vkey: str, true_key: str) -> dict[str, Any]:
    import revelo

    accuracy = revelo.tl.velocity_accuracy(adata, vkey=vkey, true_key=true_key)
    out: dict[str, Any] = {
        "sign_agreement": accuracy["sign_agreement"],
        "velocity_cosine": accuracy["cosine"],
    }
    if "true_t" not in adata.obs:
        return out
    for column in adata.obs.columns:
        if column != f"latent_time_{method}" and not column.startswith(f"latent_time_{method}_"):
            continue
        times = revelo.tl.latent_time_accuracy(
            adata, time_key=column, true_key="true_t", gene_time_key=f"fit_t_{method}"
        )
        suffix = column.removeprefix(f"latent_time_{method}")
        out[f"latent_time_spearman{suffix}"] = times["spearman"]
        if not suffix:
            out["median_gene_time_spearman"] = times["median_gene_spearman"]
    return out


def _finite(value):
    """NaN and infinities become ``None`` so the JSON stays valid."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, float | np.floating):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


# ---------------------------------------------------------------------------- summaries


def spread(values: Sequence[float | None]) -> dict[str, Any]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value) of the finite values."""
    finite = np.asarray([v for v in values if v is not None], dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    if finite.size == 0:
        return {"mean": None, "std": None, "n": 0}
    std = float(finite.std(ddof=1)) if finite.size > 1 else 0.0
    return {"mean": float(finite.mean()), "std": std, "n": int(finite.size)}


def summarize(runs: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, dict]:
    """Per method, :func:`spread` of every numeric key over the method's runs."""
    out: dict[str, dict] = {}
    for method in dict.fromkeys(run["method"] for run in runs):
        mine = [run for run in runs if run["method"] == method]
        out[method] = {key: spread([run.get(key) for run in mine]) for key in keys}
        edge_keys = [key for key in mine[0] if key.endswith("_edges")]
        for key in edge_keys:
            edges = mine[0][key]
            out[method][key] = {
                edge: spread([run[key].get(edge) for run in mine]) for edge in edges
            }
    return out


def time_ratios(
    runs: Sequence[dict[str, Any]], group: Sequence[str] = ("dataset", "seed")
) -> dict[str, Any]:
    """revelo's cost over VeloVI's, each revelo run matched to the VeloVI run of its ``group``."""
    by_group: dict[Any, dict[str, dict]] = {}
    for run in runs:
        by_group.setdefault(tuple(run.get(key) for key in group), {})[run["method"]] = run
    out = {}
    for key in ("train_seconds", "seconds_per_epoch", "total_seconds"):
        ratios = [
            pair["revelo"][key] / pair["velovi"][key]
            for pair in by_group.values()
            if {"revelo", "velovi"} <= set(pair)
            and pair["revelo"].get(key)
            and pair["velovi"].get(key)
        ]
        out[key] = spread(ratios)
    return out


def format_table(
    summary: dict[str, dict], columns: Sequence[tuple[str, str]], *, markdown: bool = False
) -> str:
    """Methods as rows, ``(key, header)`` columns as "mean ± std"."""
    headers = ["method", *(header for _, header in columns)]
    rows = []
    for method, stats in summary.items():
        cells = [method]
        for key, _ in columns:
            entry = stats.get(key, {})
            mean, std, n = entry.get("mean"), entry.get("std"), entry.get("n", 0)
            if mean is None:
                cells.append("–")
            elif n > 1:
                cells.append(f"{_fmt(mean)} ± {_fmt(std)}")
            else:
                cells.append(_fmt(mean))
        rows.append(cells)
    if markdown:
        lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths)) for row in rows]
    return "\n".join(lines)


def _fmt(value: float) -> str:
    if float(value).is_integer():
        return f"{value:.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3f}"


def write_json(path: str | os.PathLike, payload: dict[str, Any]) -> Path:
    """Write ``payload`` as indented JSON (NaN written as ``null``), creating the folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(payload), indent=2, allow_nan=False) + "\n")
    return path


def _jsonable(value):
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, Path):
        return str(value)
    return _finite(value)
