"""Training assembly: the data module, the training plan's options and their defaults.

:meth:`revelo.REVELO.train` checks its options, builds these pieces and hands them to
scvi-tools' :meth:`~scvi.model.base.UnsupervisedTrainingMixin.train`.
"""

from __future__ import annotations

import torch

from revelo._constants import REGISTRY_KEYS

from ._data import TensorDataSplitter
from ._evidence import kl_loss_kwargs

# Fraction of free GPU memory the registered data may take to be kept on the device.
_DEVICE_DATA_FRACTION = 0.25

#: Minibatch sizes on a CPU and on a GPU when none is given.
CPU_BATCH_SIZE, GPU_BATCH_SIZE = 256, 1024


def default_max_epochs(n_cells: int) -> int:
    """Passes through the data: 400 000 / n_cells, between 100 and 500."""
    return int(min(500, max(100, round(400 * 1000 / max(n_cells, 1)))))


def fits_on_device(tensors: dict[str, torch.Tensor], device: torch.device) -> bool:
    """Whether ``tensors`` take less than a quarter of the free memory of a CUDA ``device``."""
    needed = sum(t.numel() * t.element_size() for t in tensors.values())
    free, _ = torch.cuda.mem_get_info(device)
    return needed < _DEVICE_DATA_FRACTION * free


def training_data(
    tensors: dict[str, torch.Tensor],
    *,
    time_prior: torch.Tensor | None,
    device: torch.device,
    data_on_device: bool | None,
    distributed: bool,
    train_size: float,
    validation_size: float | None,
    batch_size: int,
) -> TensorDataSplitter:
    """The training and validation minibatches, on ``device`` when they fit there.

    Parameters
    ----------
    tensors
        The registered tensors (:func:`~revelo.model._data.registered_tensors`).
    time_prior
        Each cell's initial position on the time axis (shared clock only), or ``None``.
    device
        The device the model trains on.
    data_on_device
        Keep the data on ``device`` for the whole run; by default on a GPU when they fit.
    distributed
        Several processes train (each moves its own minibatches).
    train_size, validation_size, batch_size
        As in :meth:`revelo.REVELO.train`.
    """
    if time_prior is not None:
        tensors = {**tensors, REGISTRY_KEYS.TIME_PRIOR_KEY: time_prior.unsqueeze(-1)}
    if data_on_device is None:
        data_on_device = device.type == "cuda" and fits_on_device(tensors, device)
    if data_on_device and not distributed:
        tensors = {key: value.to(device) for key, value in tensors.items()}
    return TensorDataSplitter(
        tensors, train_size=train_size, validation_size=validation_size, batch_size=batch_size
    )


def plan_options(
    covariate_parameters: list[torch.nn.Parameter],
    *,
    lr: float,
    weight_decay: float,
    n_epochs_kl_warmup: int,
    kl_weight: float,
    free_bits: float,
    plan_kwargs: dict | None,
) -> dict:
    """Options of scvi-tools' :class:`~scvi.train.TrainingPlan` for revelo's module.

    AdamW; the covariate factors are exempt from weight decay, which would shrink them toward
    1 and leave part of the batch effect to the kinetics. ``plan_kwargs`` override the rest.
    """
    plan = {
        "lr": lr,
        "weight_decay": weight_decay,
        "optimizer": "AdamW",
        "n_epochs_kl_warmup": n_epochs_kl_warmup,
    }
    if covariate_parameters:
        plan["optimizer"] = "Custom"
        plan["optimizer_creator"] = adamw_without_decay_on(
            covariate_parameters, lr=lr, weight_decay=weight_decay
        )
    plan.update(kl_loss_kwargs(kl_weight, free_bits))
    plan.update(plan_kwargs or {})
    return plan


def adamw_without_decay_on(exempt: list[torch.nn.Parameter], *, lr: float, weight_decay: float):
    """An optimizer creator for scvi-tools' training plan.

    AdamW with scvi-tools' ``eps``, and no weight decay on the ``exempt`` parameters.
    """
    exempt_ids = {id(parameter) for parameter in exempt}

    def create(params) -> torch.optim.Optimizer:
        params = list(params)
        groups = [
            {"params": [p for p in params if id(p) not in exempt_ids]},
            {"params": [p for p in params if id(p) in exempt_ids], "weight_decay": 0.0},
        ]
        return torch.optim.AdamW(
            [group for group in groups if group["params"]],
            lr=lr,
            weight_decay=weight_decay,
            eps=0.01,
        )

    return create
