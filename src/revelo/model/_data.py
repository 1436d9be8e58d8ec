"""In-memory minibatching for training and queries.

scvi-tools' ``AnnDataLoader`` indexes the AnnData at every step. revelo's registered data are two
dense cells × genes matrices, so they are converted to tensors once and sliced directly; on a GPU
the tensors stay in device memory for the whole run, so no step copies data from the host.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp
import torch
from lightning.pytorch import LightningDataModule
from scvi import settings


def as_tensor(matrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A dense float tensor from a numpy array or scipy sparse matrix."""
    if sp.issparse(matrix):
        matrix = matrix.toarray()
    return torch.as_tensor(np.asarray(matrix), dtype=dtype)


class TensorBatches:
    """Iterate over dictionaries of row slices of equally long tensors.

    Parameters
    ----------
    tensors
        Name → tensor with cells along the first dimension.
    indices
        Rows to iterate over.
    batch_size
        Rows per batch.
    shuffle
        Draw a new permutation of ``indices`` at every pass (from torch's global generator, which
        ``scvi.settings.seed`` seeds).
    shard
        Under ``torch.distributed`` (DDP training), give every process its own share of the
        rows. Queries leave it off: the process group outlives training, and every process
        must still see all cells.
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        indices: np.ndarray,
        *,
        batch_size: int,
        shuffle: bool = False,
        shard: bool = False,
    ):
        self.tensors = tensors
        device = next(iter(tensors.values())).device
        self.indices = torch.as_tensor(np.asarray(indices), dtype=torch.long, device=device)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shard = shard

    def _distributed(self) -> bool:
        return (
            self.shard and torch.distributed.is_available() and torch.distributed.is_initialized()
        )

    def _rank_indices(self) -> torch.Tensor:
        indices = self.indices
        if self.shuffle:
            order = torch.randperm(len(indices), device="cpu").to(indices.device)
            indices = indices[order]
        if self._distributed():
            # Every process must see the same number of batches: pad by wrapping around.
            world = torch.distributed.get_world_size()
            per_rank = math.ceil(len(indices) / world)
            indices = indices.repeat(2)[: per_rank * world]
            indices = indices[torch.distributed.get_rank() :: world]
        return indices

    def __len__(self) -> int:
        n = len(self.indices)
        if self._distributed():
            n = math.ceil(n / torch.distributed.get_world_size())
        return math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        indices = self._rank_indices()
        for start in range(0, len(indices), self.batch_size):
            batch = indices[start : start + self.batch_size]
            yield {key: value[batch] for key, value in self.tensors.items()}


class TensorDataSplitter(LightningDataModule):
    """Split cells into training and validation sets and serve them from tensors.

    Parameters
    ----------
    tensors
        Name → cells × features tensor (all on one device).
    train_size
        Fraction of cells used for training.
    validation_size
        Fraction used for validation; defaults to the rest.
    batch_size
        Minibatch size.
    """

    def __init__(
        self,
        tensors: dict[str, torch.Tensor],
        *,
        train_size: float = 0.9,
        validation_size: float | None = None,
        batch_size: int = 256,
    ):
        super().__init__()
        n_obs = len(next(iter(tensors.values())))
        if validation_size is None:
            validation_size = 1.0 - train_size
        if not (
            0 < train_size <= 1 and 0 <= validation_size and train_size + validation_size <= 1
        ):
            msg = (
                f"train_size={train_size} and validation_size={validation_size} must be "
                "fractions with train_size > 0 and a sum of at most 1."
            )
            raise ValueError(msg)
        n_train = math.ceil(train_size * n_obs)
        n_val = min(math.floor(validation_size * n_obs), n_obs - n_train)
        rng = np.random.default_rng(settings.seed)
        permutation = rng.permutation(n_obs)
        self.tensors = tensors
        self.batch_size = batch_size
        self.train_idx = np.sort(permutation[:n_train])
        self.val_idx = np.sort(permutation[n_train : n_train + n_val])
        self.test_idx = np.sort(permutation[n_train + n_val :])
        self.n_train, self.n_val = n_train, n_val

    def train_dataloader(self) -> TensorBatches:
        """Shuffled training batches."""
        return TensorBatches(
            self.tensors, self.train_idx, batch_size=self.batch_size, shuffle=True, shard=True
        )

    def val_dataloader(self) -> TensorBatches | list:
        """Validation batches (none when there are no validation cells)."""
        if self.n_val == 0:
            return []
        return TensorBatches(self.tensors, self.val_idx, batch_size=self.batch_size, shard=True)
