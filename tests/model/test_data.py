"""In-memory minibatches: sharding under DDP, no copies on the device, device-memory check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import revelo
from revelo._constants import REGISTRY_KEYS
from revelo.model import _data, _model, _training
from revelo.model._data import TensorBatches, TensorDataSplitter


@pytest.fixture
def fake_process_group(monkeypatch):
    """Pretend to be one rank of a two-process group (what DDP sets up)."""
    rank = {"value": 0}
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_world_size", lambda: 2)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank["value"])
    return rank


def _rows(batches: TensorBatches) -> list[int]:
    return [int(row) for batch in batches for row in batch["x"][:, 0]]


def test_training_batches_are_split_across_ranks(fake_process_group):
    tensors = {"x": torch.arange(11.0).unsqueeze(-1)}
    shares = []
    for rank in (0, 1):
        fake_process_group["value"] = rank
        torch.manual_seed(0)  # every rank draws the same permutation
        batches = TensorBatches(tensors, np.arange(11), batch_size=4, shuffle=True, shard=True)
        assert len(batches) == 2  # ceil(11 / 2) = 6 rows per rank
        shares.append(_rows(batches))
    assert len(shares[0]) == len(shares[1]) == 6
    # 12 slots for 11 rows: one row is repeated to even out the shares, none is left out.
    assert set(shares[0]) | set(shares[1]) == set(range(11))


def test_queries_see_every_cell_after_distributed_training(fake_process_group):
    fake_process_group["value"] = 1
    tensors = {"x": torch.arange(11.0).unsqueeze(-1)}
    assert _rows(TensorBatches(tensors, np.arange(11), batch_size=4)) == list(range(11))


def test_splitter_shards_training_and_validation(fake_process_group):
    splitter = TensorDataSplitter(
        {"x": torch.arange(20.0).unsqueeze(-1)}, train_size=0.5, batch_size=3
    )
    assert splitter.train_dataloader().shard
    assert splitter.val_dataloader().shard
    assert len(_rows(splitter.val_dataloader())) == 5


def test_data_on_device_slices_the_registered_tensors_in_place(simulated, monkeypatch):
    """``data_on_device=True`` runs the GPU code path on the CPU: nothing is copied per step.

    The registered tensors reach the splitter as they are (``.to(device)`` of a tensor already
    there is the tensor itself), every minibatch is one gather on that device, and lightning
    hands the module the very tensors the batches yielded.
    """
    adata = simulated.copy()
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata, n_hidden=16)

    registered, splitters, yielded, seen = [], [], set(), []
    original_tensors = _data.registered_tensors
    original_iter = TensorBatches.__iter__
    original_input = model.module._get_inference_input

    def record_tensors(*args, **kwargs):
        registered.append(original_tensors(*args, **kwargs))
        return registered[-1]

    class RecordingSplitter(TensorDataSplitter):
        def __init__(self, tensors, **kwargs):
            super().__init__(tensors, **kwargs)
            splitters.append(self)

    def record_batches(self):
        device = next(iter(self.tensors.values())).device
        for batch in original_iter(self):
            assert all(value.device == device for value in batch.values())
            yielded.add(batch[REGISTRY_KEYS.X_KEY].data_ptr())
            yield batch

    def record_input(tensors, *args, **kwargs):
        seen.append(tensors[REGISTRY_KEYS.X_KEY].data_ptr())
        return original_input(tensors, *args, **kwargs)

    monkeypatch.setattr(_model, "registered_tensors", record_tensors)
    monkeypatch.setattr(_training, "TensorDataSplitter", RecordingSplitter)
    monkeypatch.setattr(TensorBatches, "__iter__", record_batches)
    monkeypatch.setattr(model.module, "_get_inference_input", record_input)
    model.train(
        max_epochs=2,
        accelerator="cpu",
        data_on_device=True,
        batch_size=128,
        enable_progress_bar=False,
    )

    (splitter,) = splitters
    for key in (REGISTRY_KEYS.X_KEY, REGISTRY_KEYS.U_KEY):
        assert splitter.tensors[key] is registered[0][key]
    assert seen and set(seen) <= yielded


def test_data_goes_to_the_device_when_it_takes_under_a_quarter_of_free_memory(monkeypatch):
    tensors = {"x": torch.zeros(250), "u": torch.zeros(250)}  # 2,000 bytes in all
    free = {"bytes": 0}
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free["bytes"], 10**9))
    device = torch.device("cuda", 0)
    free["bytes"] = 8_001
    assert _training.fits_on_device(tensors, device)
    free["bytes"] = 8_000
    assert not _training.fits_on_device(tensors, device)
