"""Thread pools held to ``revelo.settings.n_jobs`` around revelo's calls.

torch, numba and the BLAS/OpenMP libraries each keep a pool of worker threads. They can undo
each other's limits: numba's OpenMP threading layer sets the OpenMP thread count of the process
to its own (every CPU) when it launches a parallel loop, and torch's intra-op pool, which reads
the same OpenMP setting, grows with it even when ``OMP_NUM_THREADS=1``. On a shared machine
that oversubscribes the cores and can make training ten times slower. :func:`limit_threads`
sets every pool to ``n_jobs`` for the duration of a call and afterwards puts back what was
there before, with torch's pool no larger than ``n_jobs``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

F = TypeVar("F", bound=Callable)

#: Environment variable that caps the default number of threads, as it does for OpenMP.
OMP_VARIABLE = "OMP_NUM_THREADS"


def available_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS and Windows have no affinity masks
        return os.cpu_count() or 1


def default_n_jobs() -> int:
    """The CPUs this process may use, capped by ``OMP_NUM_THREADS`` when it holds a number."""
    n = available_cpus()
    value = os.environ.get(OMP_VARIABLE, "").split(",")[0].strip()
    if value.isdigit() and int(value) > 0:
        n = min(n, int(value))
    return max(1, n)


def check_n_jobs(value: object) -> int:
    """``value`` as a thread count; raise when it is not a positive integer."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = (
            f"n_jobs={value!r} is not a thread count; pass a positive integer, or None for the "
            f"CPUs this process may use ({default_n_jobs()} here)."
        )
        raise ValueError(msg)
    return value


def _numba():
    try:
        import numba
    except ImportError:  # pragma: no cover - numba comes with scanpy
        return None
    return numba


def numba_threads(n_jobs: int) -> int:
    """``n_jobs`` capped at the threads numba was started with (``NUMBA_NUM_THREADS``).

    numba refuses a larger count, so a library that passes ``n_jobs`` on to
    ``numba.set_num_threads`` (pynndescent does) needs it capped.
    """
    numba = _numba()
    return n_jobs if numba is None else max(1, min(n_jobs, numba.config.NUMBA_NUM_THREADS))


@contextmanager
def limit_threads(n_jobs: int | None = None) -> Iterator[int]:
    """Hold torch's, numba's and the BLAS/OpenMP libraries' pools at ``n_jobs`` threads.

    Parameters
    ----------
    n_jobs
        Number of threads; defaults to ``revelo.settings.n_jobs``.

    Yields
    ------
    The number of threads in use.
    """
    import torch
    from threadpoolctl import threadpool_limits

    if n_jobs is None:
        from revelo._settings import settings

        n_jobs = settings.n_jobs
    numba = _numba()
    torch_before = torch.get_num_threads()
    numba_before = numba.get_num_threads() if numba is not None else None
    if numba is not None:
        numba.set_num_threads(numba_threads(n_jobs))
    try:
        with threadpool_limits(limits=n_jobs):
            torch.set_num_threads(n_jobs)
            yield n_jobs
    finally:
        if numba is not None:
            numba.set_num_threads(numba_before)
        # Last, because numba's and threadpoolctl's OpenMP calls also move torch's pool.
        torch.set_num_threads(min(torch_before, n_jobs))


def with_thread_limit(function: F) -> F:
    """Run ``function`` under :func:`limit_threads` with ``revelo.settings.n_jobs``."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with limit_threads():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
