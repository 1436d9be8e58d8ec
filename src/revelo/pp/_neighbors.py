"""The kNN graph of :func:`scanpy.pp.neighbors`, usable with pynndescent ≥ 0.7."""

from __future__ import annotations

import functools
import importlib
import pkgutil
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np
import scanpy as sc
from scipy import sparse

from revelo._settings import settings
from revelo._threads import numba_threads

if TYPE_CHECKING:
    from anndata import AnnData

#: From this many cells on, scanpy searches neighbours with pynndescent instead of brute force.
_APPROXIMATE_FROM = 8192


def neighbors(adata: AnnData, *, n_neighbors: int, use_rep: str, random_state: int = 0) -> None:
    """Run :func:`scanpy.pp.neighbors` with its default search.

    For large data scanpy searches with pynndescent, whose 0.7 release returns a ``csr_array``
    that scanpy 1.11 cannot read (``'csr_array' object has no attribute 'getnnz'``). There the
    same search, with scanpy's own settings, is passed as a transformer whose output is a
    ``csr_matrix``; below that size nothing changes.
    """
    transformer = None
    if adata.n_obs >= _APPROXIMATE_FROM:
        from pynndescent import PyNNDescentTransformer

        cache_search_kernels()

        search = PyNNDescentTransformer(
            n_neighbors=n_neighbors,
            n_trees=min(64, 5 + round(adata.n_obs**0.5 / 20.0)),
            n_iters=max(5, round(np.log2(adata.n_obs))),
            random_state=random_state,
            # pynndescent hands n_jobs to numba, which refuses more than NUMBA_NUM_THREADS
            n_jobs=numba_threads(settings.n_jobs),
        )
        transformer = _CsrMatrixOutput(search)
    with warnings.catch_warnings():
        # numba's notice for the kernels it cannot keep (see cache_search_kernels)
        warnings.filterwarnings("ignore", message="Cannot cache compiled function")
        sc.pp.neighbors(
            adata,
            n_neighbors=n_neighbors,
            use_rep=use_rep,
            random_state=random_state,
            transformer=transformer,
        )


@functools.cache
def cache_search_kernels() -> None:
    """Let numba keep pynndescent's compiled kernels on disk between runs.

    pynndescent compiles most of its kernels without numba's cache, about 25 s in every new
    process on one CPU. Caching is switched on for every module-level kernel of pynndescent
    that lacks it, once per process, before the first compilation; numba stores them beside
    pynndescent (or in its user cache folder). ``nn_descent`` itself cannot be cached (numba:
    it uses dynamic globals) and is compiled in every process.
    """
    import pynndescent
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    for info in pkgutil.iter_modules(pynndescent.__path__, "pynndescent."):
        module = importlib.import_module(info.name)
        for kernel in vars(module).values():
            if isinstance(kernel, Dispatcher) and isinstance(kernel._cache, NullCache):
                kernel.enable_caching()


class _CsrMatrixOutput:
    """A kNN transformer (sklearn's interface) whose graphs come out as ``csr_matrix``."""

    def __init__(self, transformer):
        self.transformer = transformer

    def fit(self, x, y=None) -> _CsrMatrixOutput:
        self.transformer.fit(x, y)
        return self

    def transform(self, x) -> sparse.csr_matrix:
        return sparse.csr_matrix(self.transformer.transform(x))

    def fit_transform(self, x, y=None) -> sparse.csr_matrix:
        return sparse.csr_matrix(self.transformer.fit_transform(x, y))

    def get_params(self, *, deep: bool = True) -> dict[str, Any]:
        return self.transformer.get_params(deep=deep)

    def set_params(self, **params) -> _CsrMatrixOutput:
        self.transformer.set_params(**params)
        return self
