"""All-or-nothing writing of a model's outputs into an AnnData.

:meth:`revelo.REVELO.add_outputs` checks its arguments before computing anything, drops the
results of earlier calls that the new velocities make stale (the velocity graph and the
embedded arrows), and, when anything fails on the way, puts the AnnData back as it was.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from revelo._validation import check_positive_int, check_trained, root_mask

if TYPE_CHECKING:
    from collections.abc import Callable

    from anndata import AnnData

#: Keys computed from earlier velocities, removed when new ones are written.
STALE_UNS = ("velocity_graph", "velocity_graph_neg")
STALE_OBS = ("velocity_self_transition",)
STALE_OBSM_PREFIX = "velocity_"


def all_or_nothing(write: Callable) -> Callable:
    """Wrap ``write(model, adata, **options)`` so that it checks first and writes all or nothing.

    The wrapped function's options ``n_samples``, ``batch_size``, ``root_key``,
    ``root_cells`` and ``uncertainty`` are checked before any computation.
    """

    @functools.wraps(write)
    def wrapper(model, adata: AnnData | None = None, **options) -> None:
        target = model.adata if adata is None else adata
        _check_options(model, target, options)
        saved = _snapshot(target)
        try:
            remove_stale_outputs(target)
            write(model, adata, **options)
        except BaseException:
            _restore(target, saved)
            raise

    return wrapper


def remove_stale_outputs(adata: AnnData) -> None:
    """Drop what was computed from earlier velocities: the graph, its self-transitions, arrows."""
    for key in STALE_UNS:
        adata.uns.pop(key, None)
    for key in STALE_OBS:
        if key in adata.obs:
            del adata.obs[key]
    for key in [key for key in adata.obsm if key.startswith(STALE_OBSM_PREFIX)]:
        del adata.obsm[key]


def _check_options(model, adata: AnnData, options: dict) -> None:
    check_trained(model.is_trained_, "add_outputs")
    n_samples = options.get("n_samples")
    check_positive_int("n_samples", n_samples)
    if options.get("uncertainty") and n_samples < 2:
        msg = (
            f"n_samples={n_samples} cannot measure the uncertainty, a spread over posterior "
            "draws: pass n_samples=2 or more, or uncertainty=False."
        )
        raise ValueError(msg)
    check_positive_int("batch_size", options.get("batch_size"), none=True)
    root_mask(adata, options.get("root_key"), options.get("root_cells"))


def _snapshot(adata: AnnData) -> dict:
    # Writers assign new arrays and columns rather than changing stored ones in place, so
    # references to the stored objects and copies of the two frames are enough to go back.
    return {
        "layers": dict(adata.layers),
        "obsm": dict(adata.obsm),
        "uns": dict(adata.uns),
        "obs": adata.obs.copy(deep=False),
        "var": adata.var.copy(deep=False),
    }


def _restore(adata: AnnData, saved: dict) -> None:
    for name in ("layers", "obsm"):
        mapping = getattr(adata, name)
        for key in [key for key in mapping if key not in saved[name]]:
            del mapping[key]
        for key, value in saved[name].items():
            mapping[key] = value
    adata.uns.clear()
    adata.uns.update(saved["uns"])
    adata.obs = saved["obs"]
    adata.var = saved["var"]
