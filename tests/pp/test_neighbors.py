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
