"""Thread pools stay at ``revelo.settings.n_jobs`` during and after revelo's calls."""

from __future__ import annotations

import os
import subprocess
import sys

import numba
import pytest
import scanpy as sc
import torch
from lightning.pytorch.callbacks import Callback
from threadpoolctl import threadpool_info

import revelo
from revelo._threads import available_cpus, check_n_jobs, default_n_jobs, limit_threads

CPUS = available_cpus()


def _largest_pool() -> int:
    """The largest of torch's pool and every BLAS/OpenMP pool threadpoolctl can see."""
    return max([torch.get_num_threads(), *(info["num_threads"] for info in threadpool_info())])


@pytest.fixture
def one_thread():
    """``n_jobs=1`` and torch at one thread, as with ``OMP_NUM_THREADS=1``; reset afterwards."""
    torch_before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    revelo.settings.n_jobs = 1
    torch.set_num_threads(1)
    yield
    revelo.settings.n_jobs = None
    torch.set_num_threads(torch_before)
    numba.set_num_threads(numba_before)


@pytest.fixture(scope="module")
def raw():
    return revelo.datasets.simulate(n_obs=200, n_vars=12, seed=1, noise="normal", t_max=10.0)


def test_default_is_the_affinity_capped_by_omp_num_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert default_n_jobs() == len(os.sched_getaffinity(0))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert default_n_jobs() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(CPUS + 7))
    assert default_n_jobs() == CPUS
    monkeypatch.setenv("OMP_NUM_THREADS", "not-a-number")
    assert default_n_jobs() == CPUS


def test_setting_sets_torch_and_none_restores_the_default(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    before = torch.get_num_threads()
    try:
        revelo.settings.n_jobs = 3
        assert revelo.settings.n_jobs == 3
        assert torch.get_num_threads() == 3
        revelo.settings.n_jobs = None
        assert revelo.settings.n_jobs == 1
        assert torch.get_num_threads() == 1
    finally:
        revelo.settings.n_jobs = None
        torch.set_num_threads(before)


@pytest.mark.parametrize("value", [0, -2, 1.5, True, "4"])
def test_a_bad_thread_count_names_the_fix(value):
    with pytest.raises(ValueError, match="positive integer"):
        check_n_jobs(value)
    with pytest.raises(ValueError, match="positive integer"):
        revelo.settings.n_jobs = value


_FIRST_NUMBA_LAUNCH = """
import anndata, numpy as np, scanpy as sc, torch
import revelo
raw = revelo.datasets.simulate(n_obs=200, n_vars=12, seed=1, noise="normal", t_max=10.0)
before = torch.get_num_threads()
if {through_revelo}:
    revelo.pp.preprocess(raw, n_top_genes=None, min_shared_counts=5, normalize=False)
else:
    sc.pp.neighbors(anndata.AnnData(np.random.default_rng(0).random((150, 8))), use_rep="X")
print(before, torch.get_num_threads())
"""


def _threads_around_first_numba_launch(through_revelo: bool) -> list[int]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}
    code = _FIRST_NUMBA_LAUNCH.format(through_revelo=through_revelo)
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return [int(n) for n in done.stdout.split()[-2:]]


@pytest.mark.skipif(CPUS < 2, reason="numba's pool cannot outgrow one CPU")
def test_first_numba_launch_grows_torch_unless_revelo_limits_it():
    # The failure guarded against: numba's OpenMP pool, when it starts, sets the OpenMP thread
    # count that torch reads to NUMBA_NUM_THREADS, whatever OMP_NUM_THREADS says.
    assert _threads_around_first_numba_launch(through_revelo=False) == [1, 2]
    assert _threads_around_first_numba_launch(through_revelo=True) == [1, 1]


def test_limit_threads_holds_numba_and_puts_it_back(one_thread):
    numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    with limit_threads() as n:
        assert n == 1
        assert torch.get_num_threads() == 1
        assert numba.get_num_threads() == 1
        assert _largest_pool() == 1
    assert torch.get_num_threads() == 1
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS


def test_preprocess_train_and_outputs_keep_every_pool_at_n_jobs(raw, one_thread, monkeypatch):
    seen = []
    umap = sc.tl.umap

    def recording_umap(*args, **kwargs):
        seen.append(("umap", _largest_pool(), numba.get_num_threads()))
        return umap(*args, **kwargs)

    monkeypatch.setattr(sc.tl, "umap", recording_umap)
    adata = revelo.pp.preprocess(raw, n_top_genes=None, min_shared_counts=5, normalize=False)
    assert torch.get_num_threads() == 1
    assert seen == [("umap", 1, 1)]

    class Recorder(Callback):
        def on_train_batch_start(self, *args):
            seen.append(("train", _largest_pool(), numba.get_num_threads()))

    revelo.settings.seed = 0
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=16)
    model.train(max_epochs=2, enable_progress_bar=False, callbacks=[Recorder()])
    assert torch.get_num_threads() == 1
    assert {entry for entry in seen[1:]} == {("train", 1, 1)}

    model.add_outputs(n_samples=2)
    assert torch.get_num_threads() == 1
    # The extrinsic uncertainty (one velocity graph per draw) only when asked for.
    assert "directional_cosine_sim_mean" in adata.obs
    assert not any(column.startswith("extrinsic_") for column in adata.obs)
    model.add_outputs(n_samples=2, extrinsic_uncertainty=True)
    assert torch.get_num_threads() == 1
    assert "extrinsic_cosine_sim_mean" in adata.obs


@pytest.mark.skipif(CPUS < 2, reason="needs two CPUs to give torch two threads")
def test_a_larger_n_jobs_is_used_inside_and_torch_is_put_back(raw, one_thread):
    revelo.settings.n_jobs = 2
    torch.set_num_threads(1)
    with limit_threads() as n:
        assert n == 2
        assert torch.get_num_threads() == 2
        assert numba.get_num_threads() == 2
    assert torch.get_num_threads() == 1
