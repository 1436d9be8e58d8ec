"""revelo's training plan: scvi-tools' plan with the epoch metrics logged once per epoch.

scvi-tools' :class:`~scvi.train.TrainingPlan` hands the training loss and the ELBO metrics to
lightning's ``log`` in every step, although they are only reported per epoch; each call walks
lightning's result collection and costs about as much as a small model's optimizer update. Here
the step only adds the minibatch to running sums, and the epoch's values are logged once, after
its last step (or the step at which training is stopped), under the same names and with the
same values: ``train_loss`` the minibatch-size weighted mean of the step losses, and
``elbo_train``, ``reconstruction_loss_train``, ``kl_local_train`` and ``kl_global_train`` from
the same metric objects. Per-step logging (``on_step=True``), several processes
(``sync_dist``) and extra metrics of the loss take scvi-tools' own path.
"""

from __future__ import annotations

import torch
from scvi.train import TrainingPlan


class EpochLoggedTrainingPlan(TrainingPlan):
    """:class:`scvi.train.TrainingPlan` that logs its training metrics once per epoch."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._loss_sum: torch.Tensor | None = None
        self._n_cells = 0
        self._pending = False

    def _per_step_logging(self) -> bool:
        return bool(self.on_step) or not self.on_epoch or self.use_sync_dist

    def training_step(self, batch, batch_idx):
        """One optimisation step; the loss and the ELBO terms are summed for the epoch."""
        if self._per_step_logging():
            return super().training_step(batch, batch_idx)
        if "kl_weight" in self.loss_kwargs:
            kl_weight = self.kl_weight
            self.loss_kwargs.update({"kl_weight": kl_weight})
            self.log("kl_weight", kl_weight, on_step=True, on_epoch=False)
        _, _, loss_output = self.forward(batch, loss_kwargs=self.loss_kwargs)
        if loss_output.extra_metrics_keys:
            self._log_step(loss_output, batch)
            return loss_output.loss
        with torch.inference_mode():
            # As lightning weighs a logged value: by the number of cells of the minibatch.
            n_cells = _batch_size(batch)
            weighted = loss_output.loss.detach().float().mean() * n_cells
            self._loss_sum = weighted if self._loss_sum is None else self._loss_sum + weighted
            self._n_cells += n_cells
            self.elbo_train.update(
                reconstruction_loss=loss_output.reconstruction_loss_sum,
                kl_local=loss_output.kl_local_sum,
                kl_global=loss_output.kl_global_sum,
                n_obs_minibatch=loss_output.n_obs_minibatch,
            )
        self._pending = True
        return loss_output.loss

    def _log_step(self, loss_output, batch) -> None:
        """scvi-tools' per-step logging, for losses that carry extra metrics."""
        self.log(
            "train_loss",
            loss_output.loss,
            on_step=self.on_step,
            on_epoch=self.on_epoch,
            prog_bar=True,
            batch_size=_batch_size(batch),
        )
        self.compute_and_log_metrics(loss_output, self.train_metrics, "train")

    def on_train_batch_end(self, outputs, batch, batch_idx) -> None:
        """Log the epoch's sums after its last step, or when training stops early."""
        last = batch_idx + 1 >= self.trainer.num_training_batches
        if self._pending and (last or self.trainer.should_stop):
            self._log_epoch()

    def _log_epoch(self) -> None:
        self.log(
            "train_loss",
            self._loss_sum / self._n_cells,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=1,
        )
        self.log_dict(self.train_metrics, on_step=False, on_epoch=True, batch_size=1)
        self._loss_sum, self._n_cells, self._pending = None, 0, False


def _batch_size(batch: dict[str, torch.Tensor]) -> int:
    """Cells in a minibatch: the length of its first tensor, as lightning infers it."""
    return len(next(iter(batch.values())))
