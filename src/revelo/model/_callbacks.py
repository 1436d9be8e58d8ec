"""Lightning callbacks that keep a training run's work safe and report its progress.

``StopOnNonFiniteLoss`` stops at the first NaN or infinite training loss and puts the last
finite weights back (the last whose velocities are finite too); ``InterruptRecorder`` notes a
Ctrl+C; ``ResumableCheckpoint`` writes lightning checkpoints that ``ckpt_path``
can resume from, random-number state included; ``TrainingProgress`` (in ``_progress.py``)
reports progress with the time left and a summary.
"""

from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from scvi.train import SaveCheckpoint

from revelo._constants import REGISTRY_KEYS
from revelo.module import covariates_of

from ._progress import TrainingProgress


class NonFiniteLossError(RuntimeError):
    """Training stopped because the loss became NaN or infinite.

    The model keeps the weights of the last epoch that ended with finite values.
    """


class StopOnNonFiniteLoss(Callback):
    """Stop at a NaN or infinite training loss and restore the last finite weights.

    A copy of the module's ``state_dict`` is taken when training starts and at the end of every
    epoch whose parameters and velocities are all finite; a non-finite loss in any training
    step loads that copy back and raises :class:`NonFiniteLossError`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.snapshot: dict[str, torch.Tensor] | None = None
        self.snapshot_epoch: int | None = None
        # The training data, whose first cells' velocities are checked.
        self.tensors: dict[str, torch.Tensor] | None = None

    def _take_snapshot(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, epoch: int | None
    ) -> None:
        # Parameters only: buffers may hold NaN by design (e.g. "not known yet" markers).
        if not all(torch.isfinite(p).all() for p in pl_module.module.parameters()):
            return
        state = pl_module.module.state_dict()
        # Finite weights can still give NaN velocities (e.g. rates driven to 0).
        if self.tensors is not None and not outputs_finite(pl_module.module, self.tensors):
            return
        self.snapshot = {key: value.detach().clone() for key, value in state.items()}
        self.snapshot_epoch = epoch

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the starting weights (initial or resumed)."""
        self.tensors = getattr(getattr(trainer, "datamodule", None), "tensors", None)
        self._take_snapshot(trainer, pl_module, None)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Keep the weights of an epoch that ended with finite weights and velocities."""
        self._take_snapshot(trainer, pl_module, trainer.current_epoch)

    def restore(self, pl_module_or_module) -> None:
        """Load the last snapshot back into the module (if there is one)."""
        module = getattr(pl_module_or_module, "module", pl_module_or_module)
        if self.snapshot is not None:
            module.load_state_dict(self.snapshot)

    def kept(self) -> str:
        """Which weights :meth:`restore` puts back, in words."""
        if self.snapshot_epoch is None:
            return "the weights from before training"
        return f"the weights from the end of epoch {self.snapshot_epoch}"

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch, batch_idx: int
    ) -> None:
        """Restore and raise at the first non-finite loss."""
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if loss is None or bool(torch.isfinite(torch.as_tensor(loss)).all()):
            return
        self.restore(pl_module)
        kept = self.kept()
        msg = (
            f"The training loss became {float(torch.as_tensor(loss).float().sum())} in epoch "
            f"{trainer.current_epoch} (step {batch_idx}); training stopped and the model keeps "
            f"{kept}, the last finite ones. Lower the learning rate (e.g. `lr=1e-3`), keep "
            "gradient clipping on, and check the registered layers for extreme values."
        )
        raise NonFiniteLossError(msg)


class InterruptRecorder(Callback):
    """Remember the epoch in which training was interrupted (Ctrl+C).

    Lightning turns a ``KeyboardInterrupt`` during training into ``SystemExit(1)``;
    :meth:`revelo.REVELO.train` reads ``interrupted_epoch`` to tell it from other exits.
    """

    def __init__(self) -> None:
        super().__init__()
        self.interrupted_epoch: int | None = None

    def on_exception(self, trainer: pl.Trainer, pl_module, exception: BaseException) -> None:
        """Record a keyboard interrupt."""
        if isinstance(exception, KeyboardInterrupt):
            self.interrupted_epoch = trainer.current_epoch


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
    kinds = (StopOnNonFiniteLoss, RandomStateInCheckpoint, InterruptRecorder, TrainingProgress)
    for kind in kinds:
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


def outputs_finite(module, tensors: dict[str, torch.Tensor], n_cells: int = 256) -> bool:
    """Whether ``module`` gives finite velocities and fits for the first cells, gene by gene.

    The posterior mean of z is decoded for up to ``n_cells`` cells, without dropout, without
    gradients and without drawing from torch's random-number generator, so checking does not
    change the run. A diverged run typically drives some gene's rates to 0 and leaves that
    gene NaN in every cell; a gene non-finite in half of the cells or more fails the check,
    a stray non-finite entry does not.
    """
    probe = {key: value[:n_cells] for key, value in tensors.items()}
    device = next(module.parameters()).device
    was_training = module.training
    module.eval()
    forked = [device.index or 0] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=forked), torch.inference_mode():
            fit = module.posterior_fit(
                probe[REGISTRY_KEYS.X_KEY].to(device),
                probe[REGISTRY_KEYS.U_KEY].to(device),
                use_mean=True,
                covariates=covariates_of(probe, device),
            )
    finally:
        module.train(was_training)
    return all(
        bool((torch.isfinite(fit[key]).float().mean(0) > 0.5).all())
        for key in ("velocity", "velocity_u", "fit_s", "fit_u")
    )


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
