"""Lightning callbacks that keep a training run's work safe and report its progress.

``StopOnNonFiniteLoss`` stops at the first NaN or infinite training loss and puts the last
finite weights back; ``ResumableCheckpoint`` writes lightning checkpoints that ``ckpt_path``
can resume from, random-number state included; ``TrainingProgress`` (in ``_progress.py``)
reports progress with the time left and a summary.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from scvi.train import SaveCheckpoint

from ._progress import TrainingProgress


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite.

    The model keeps the weights of the last epoch that ended with finite values.
    """


class StopOnNonFiniteLoss(Callback):
    """Stop at a NaN or infinite training loss and restore the last finite weights.

    A copy of the module's ``state_dict`` is taken when training starts and at the end of every
    epoch whose weights are all finite; a non-finite loss in any training step loads that copy
    back and raises :class:`NonFiniteLossError`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: dict[str, torch.Tensor] | None = None
        self.snapshot_epoch: int | None = None

    def _take_snapshot(self, pl_module: pl.LightningModule, epoch: int | None) -> None:
        state = pl_module.module.state_dict()
        if all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point()):
            self.snapshot = {key: value.detach().clone() for key, value in state.items()}
            self.snapshot_epoch = epoch

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the starting weights (initial or resumed)."""
        self._take_snapshot(pl_module, None)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the weights of an epoch that ended finite."""
        self._take_snapshot(pl_module, trainer.current_epoch)

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        """Restore and raise at the first non-finite loss."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None or bool(torch.isfinite(torch.as_tensor(loss)).all()):
            return
        if self.snapshot is not None:
            pl_module.module.load_state_dict(self.snapshot)
        kept = (
            "the weights from before training"
            if self.snapshot_epoch is None
            else f"the weights from the end of epoch {self.snapshot_epoch}"
        )
        msg = (
            f"The training loss became {float(torch.as_tensor(loss).float().sum())} in epoch "
            f"{trainer.current_epoch} (step {batch_idx}); training stopped and the model keeps "
            f"{kept}, the last finite ones. Lower the learning rate (e.g. `lr=1e-3`), keep "
            "gradient clipping on, and check the registered layers for extreme values."
        )
        raise NonFiniteLossError(msg)


class ResumableCheckpoint(SaveCheckpoint):
    """Lightning checkpoints that ``train(ckpt_path=...)`` resumes from.

    scvi-tools' :class:`~scvi.train.SaveCheckpoint` replaces lightning's ``.ckpt`` files with
    model directories, which hold no optimizer or epoch state, and scvi-tools' trainer adds one
    whenever checkpointing is on and none is present. Subclassing it stops that while every
    saving method is lightning's own. ``last.ckpt`` in ``dirpath`` is rewritten after every
    epoch, next to ``epoch=<n>.ckpt`` of the latest epoch.

    Parameters
    ----------
    dirpath
        Folder for the checkpoints.
    """

    def __init__(self, dirpath: str | Path) -> None:
        ModelCheckpoint.__init__(
            self, dirpath=str(dirpath), filename="{epoch}", save_last=True, save_top_k=1
        )
        self.load_best_on_end = False
        self.check_nan_gradients = False
        self.loss_is_nan = False

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict) -> None:
        """Nothing beyond lightning's checkpoint."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Nothing to load: the model keeps its final weights."""

    def _remove_checkpoint(self, trainer: pl.Trainer, filepath: str) -> None:
        ModelCheckpoint._remove_checkpoint(self, trainer, filepath)

    def _update_best_and_save(self, current, trainer, monitor_candidates) -> None:
        ModelCheckpoint._update_best_and_save(self, current, trainer, monitor_candidates)


class RandomStateInCheckpoint(Callback):
    """Store torch's random-number state in every checkpoint and restore it on resume.

    Lightning does not, so without it a resumed run would shuffle and sample differently from
    an uninterrupted one. It is added to every run, since the run that resumes need not write
    checkpoints itself.
    """

    def on_save_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict) -> None:
        """Store the random-number state."""
        checkpoint["revelo_rng_state"] = _rng_state()

    def on_load_checkpoint(self, trainer: pl.Trainer, pl_module, checkpoint: dict) -> None:
        """Restore the random-number state."""
        if "revelo_rng_state" in checkpoint:
            _set_rng_state(checkpoint["revelo_rng_state"])


def training_callbacks(
    callbacks: list[Callback] | None,
    *,
    enable_checkpointing: bool,
    checkpoint_dir: str | Path | None,
) -> list[Callback]:
    """The user's callbacks plus revelo's: progress, the non-finite-loss guard and checkpoints.

    Parameters
    ----------
    callbacks
        Callbacks passed to ``train``.
    enable_checkpointing
        Add a :class:`ResumableCheckpoint`.
    checkpoint_dir
        Its folder; required with ``enable_checkpointing``.

    Returns
    -------
    A new list; the user's list is not modified.
    """
    out = list(callbacks or [])
    for kind in (StopOnNonFiniteLoss, RandomStateInCheckpoint, TrainingProgress):
        if not any(isinstance(c, kind) for c in out):
            out.append(kind())
    if enable_checkpointing:
        if checkpoint_dir is None:
            msg = (
                "enable_checkpointing=True needs a folder for the checkpoints: pass "
                "checkpoint_dir='...'; resume later with ckpt_path='<checkpoint_dir>/last.ckpt'."
            )
            raise ValueError(msg)
        out.append(ResumableCheckpoint(checkpoint_dir))
    elif checkpoint_dir is not None:
        msg = "checkpoint_dir is only used with enable_checkpointing=True; pass both."
        raise ValueError(msg)
    return out


def _rng_state() -> dict[str, torch.Tensor | list[torch.Tensor]]:
    # Only torch draws during training (shuffling, dropout, posterior samples); tensors keep
    # the checkpoint loadable with torch's weights_only unpickler.
    state: dict[str, torch.Tensor | list[torch.Tensor]] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
