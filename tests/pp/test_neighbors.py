from __future__ import annotations

import importlib
import pkgutil

import pytest

from revelo.pp._neighbors import cache_search_kernels


def test_pynndescent_kernels_are_cached_on_disk():
    """Every module-level kernel of pynndescent gets numba's disk cache."""
    pynndescent = pytest.importorskip("pynndescent")
    from numba.core.caching import NullCache
    from numba.core.dispatcher import Dispatcher

    kernels = [
        kernel
        for info in pkgutil.iter_modules(pynndescent.__path__, "pynndescent.")
        for kernel in vars(importlib.import_module(info.name)).values()
        if isinstance(kernel, Dispatcher)
    ]
    cache_search_kernels()
    assert len(kernels) > 100
    assert not [kernel for kernel in kernels if isinstance(kernel._cache, NullCache)]


def test_pynndescent_gets_no_more_threads_than_numba_has(monkeypatch):
    """numba refuses more threads than NUMBA_NUM_THREADS; pynndescent passes n_jobs to it."""
    pynndescent = pytest.importorskip("pynndescent")
    import anndata as ad
    import numba
    import numpy as np

    import revelo
    from revelo.pp import _neighbors

    asked = []

    class Recorder:
        def __init__(self, **kwargs):
            asked.append(kwargs["n_jobs"])
            raise RuntimeError("recorded")

    monkeypatch.setattr(pynndescent, "PyNNDescentTransformer", Recorder)
    monkeypatch.setattr(_neighbors, "_APPROXIMATE_FROM", 10)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 1)
    monkeypatch.setattr(revelo.settings, "_n_jobs", 3)
    adata = ad.AnnData(obsm={"X_pca": np.zeros((20, 2))})
    with pytest.raises(RuntimeError, match="recorded"):
        _neighbors.neighbors(adata, n_neighbors=5, use_rep="X_pca")
    assert asked == [1]
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 8)
    with pytest.raises(RuntimeError, match="recorded"):
        _neighbors.neighbors(adata, n_neighbors=5, use_rep="X_pca")
    assert asked == [1, 3]
