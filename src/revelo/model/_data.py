"""In-memory minibatching for training and queries.

scvi-tools' ``AnnDataLoader`` indexes the AnnData at every step. revelo's registered data are two
dense cells × genes matrices, so they are converted to tensors once and sliced directly; on a GPU
the tensors stay in device memory for the whole run, so no step copies data from the host.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from lightning.pytorch import LightningDataModule
from scvi import settings
from scvi.data.fields import (
    BaseAnnDataField,
    CategoricalJointObsField,
    CategoricalObsField,
    LayerField,
    NumericalJointObsField,
    NumericalObsField,
)

from revelo._constants import REGISTRY_KEYS
from revelo._utils import to_dense
from revelo._validation import (
    check_indices,
    check_positive_int,
    check_query_anndata,
    check_trained,
    split_sizes,
)

if TYPE_CHECKING:
    from anndata import AnnData
    from scvi.data import AnnDataManager
    from scvi.model.base import BaseModelClass

# Registered fields that hold category codes rather than values.
_INDEX_KEYS = (REGISTRY_KEYS.BATCH_KEY, REGISTRY_KEYS.CAT_COVS_KEY)

#: Cells per minibatch of a query when none is given.
QUERY_BATCH_SIZE = 1024


def as_tensor(matrix, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """A dense float tensor from a numpy array or scipy sparse matrix."""
    return torch.as_tensor(to_dense(matrix), dtype=dtype)


def anndata_fields(
    spliced_layer: str,
    unspliced_layer: str,
    *,
    batch_key: str | None,
    categorical_covariate_keys: list[str] | None,
    continuous_covariate_keys: list[str] | None,
    size_factor_key: str | None,
) -> list[BaseAnnDataField]:
    """The scvi-tools fields of :meth:`revelo.REVELO.setup_anndata`."""
    fields = [
        LayerField(REGISTRY_KEYS.X_KEY, spliced_layer, is_count_data=False),
        LayerField(REGISTRY_KEYS.U_KEY, unspliced_layer, is_count_data=False),
    ]
    if batch_key is not None:
        fields.append(CategoricalObsField(REGISTRY_KEYS.BATCH_KEY, batch_key))
    if categorical_covariate_keys:
        fields.append(
            CategoricalJointObsField(REGISTRY_KEYS.CAT_COVS_KEY, categorical_covariate_keys)
        )
    if continuous_covariate_keys:
        fields.append(
            NumericalJointObsField(REGISTRY_KEYS.CONT_COVS_KEY, continuous_covariate_keys)
        )
    if size_factor_key is not None:
        fields.append(NumericalObsField(REGISTRY_KEYS.SIZE_FACTOR_KEY, size_factor_key))
    return fields


def registered_array(manager: AnnDataManager, key: str) -> np.ndarray:
    """A registered field of ``manager``'s AnnData as a dense float32 array."""
    return to_dense(manager.get_from_registry(key), np.float32)


def registered_tensors(manager: AnnDataManager) -> dict[str, torch.Tensor]:
    """Every registered field as a tensor: the two layers, covariates, size factors.

    Category codes are ``long``, everything else ``float32``; each tensor has cells along its
    first dimension and at least two dimensions.
    """
    tensors = {}
    for key in manager.data_registry:
        dtype = torch.long if key in _INDEX_KEYS else torch.float32
        data = registered_array(manager, key)
        tensors[key] = as_tensor(data.reshape(len(data), -1), dtype=dtype)
    return tensors


def batch_codes(manager: AnnDataManager) -> np.ndarray:
    """Each cell's batch code (all 0 without a registered batch)."""
    if REGISTRY_KEYS.BATCH_KEY not in manager.data_registry:
        return np.zeros(manager.adata.n_obs, dtype=int)
    return registered_array(manager, REGISTRY_KEYS.BATCH_KEY).ravel().astype(int)


def model_genes(model: BaseModelClass) -> list[str]:
    """The genes ``model`` was built on, in order."""
    genes = getattr(model, "_model_genes", None)
    return list(model.adata.var_names) if genes is None else genes


def registered_layers(model: BaseModelClass) -> dict[str, str]:
    """``spliced_layer`` and ``unspliced_layer`` as ``model``'s AnnData was registered with."""
    setup_args = model.adata_manager.registry["setup_args"]
    return {key: setup_args[key] for key in ("spliced_layer", "unspliced_layer")}


def query_batches(
    model: BaseModelClass,
    adata: AnnData | None,
    indices: Sequence[int] | None,
    batch_size: int | None,
    *,
    require_trained: bool = True,
) -> tuple[AnnData, np.ndarray, TensorBatches]:
    """Validate ``adata`` for ``model`` and iterate over the minibatches of ``indices``.

    Every query validates here: the model is trained (unless ``require_trained`` is off, for
    queries that compare a model with its untrained self), ``adata`` has the model's genes in
    order and finite registered layers, ``indices`` are positions in it or a boolean mask over
    its cells, and ``batch_size`` is positive.

    Returns
    -------
    ``(adata, indices, batches)``: the AnnData (the model's by default), the cells' positions
    and the minibatches of their registered tensors.
    """
    if require_trained:
        check_trained(model.is_trained_, "This query")
    check_positive_int("batch_size", batch_size, none=True)
    check_query_anndata(
        model.adata if adata is None else adata, model_genes(model), **registered_layers(model)
    )
    adata = model._validate_anndata(adata)
    indices = check_indices(indices, adata.n_obs)
    manager = model.get_anndata_manager(adata, required=True)
    batches = TensorBatches(
        registered_tensors(manager), indices, batch_size=batch_size or QUERY_BATCH_SIZE
    )
    return adata, indices, batches


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
        n_train, n_val = split_sizes(n_obs, train_size, validation_size)
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

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The split, which lightning stores in every checkpoint."""
        return {
            name: torch.as_tensor(getattr(self, name), dtype=torch.long)
            for name in ("train_idx", "val_idx", "test_idx")
        }

    def load_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Take the split stored in a checkpoint, so a resumed run validates on the same cells.

        Raises
        ------
        ValueError
            When the stored split is for another number of cells.
        """
        split = {name: np.asarray(value, dtype=np.int64) for name, value in state_dict.items()}
        n_obs = len(next(iter(self.tensors.values())))
        if sum(len(part) for part in split.values()) != n_obs:
            msg = (
                f"The checkpoint's train/validation split covers "
                f"{sum(len(part) for part in split.values())} cells but the model has {n_obs}; "
                "resume on the AnnData the checkpoint was written with."
            )
            raise ValueError(msg)
        self.train_idx, self.val_idx = split["train_idx"], split["val_idx"]
        self.test_idx = split.get("test_idx", np.array([], dtype=np.int64))
        self.n_train, self.n_val = len(self.train_idx), len(self.val_idx)
