"""Queries average posterior draws as running sums: memory does not grow with ``n_samples``."""

from __future__ import annotations

import weakref

import numpy as np
import pytest

import revelo


@pytest.fixture(scope="module")
def model(simulated):
    adata = simulated.copy()
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=16)
    model.train(max_epochs=1)  # queries need a trained model; only the bookkeeping is tested
    return model


def _most_draws_alive(model, monkeypatch, n_samples: int) -> int:
    """The most posterior draws whose outputs are still in memory when a new one is made."""
    alive: list[weakref.ref] = []
    most = 0
    original = model.module.posterior_fit

    def counting_fit(*args, **kwargs):
        nonlocal most
        most = max(most, sum(ref() is not None for ref in alive))
        fit = original(*args, **kwargs)
        alive.append(weakref.ref(fit["velocity"]))
        return fit

    monkeypatch.setattr(model.module, "posterior_fit", counting_fit)
    velocity = model.get_velocity(n_samples=n_samples, batch_size=100, return_numpy=True)
    monkeypatch.undo()
    assert velocity.shape == model.adata.shape
    assert np.isfinite(velocity).all()
    return most


def test_query_memory_does_not_grow_with_the_number_of_draws(model, monkeypatch):
    # A running sum keeps at most the first draw (as the sum) while the next one is made; a
    # stack of draws would keep all of the minibatch's earlier draws alive.
    assert _most_draws_alive(model, monkeypatch, n_samples=2) <= 1
    assert _most_draws_alive(model, monkeypatch, n_samples=20) <= 1


def test_each_minibatch_gives_its_freed_memory_back(model, monkeypatch):
    # glibc keeps the blocks a minibatch's draws free in its heap, where they fragment over a
    # long pass; the pass asks for them to be returned after every minibatch.
    import platform

    from revelo import _memory
    from revelo.model import _posterior

    calls = []
    monkeypatch.setattr(_posterior, "release_free_memory", lambda: calls.append(1))
    model.get_velocity(n_samples=2, batch_size=70, return_numpy=True)
    assert len(calls) == -(-model.adata.n_obs // 70)
    if platform.libc_ver()[0] == "glibc":
        assert _memory.release_free_memory() is True
