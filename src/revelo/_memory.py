"""Giving freed memory back to the operating system during long posterior passes."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


@functools.cache
def _malloc_trim():
    """The C library's ``malloc_trim`` (glibc), or ``None`` where it has none (macOS, musl)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        return ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None


def release_free_memory() -> bool:
    """Return the C heap's free memory to the operating system; whether it could be asked.

    A pass over many minibatches allocates and frees tensors of a few to tens of megabytes per
    draw. glibc keeps freed blocks of that size in its heap, where they fragment, so the
    resident memory of a long pass grows well beyond what it holds. ``malloc_trim(0)`` after
    each minibatch hands the free pages back; it does not touch live memory.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True
