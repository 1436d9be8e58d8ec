"""What :meth:`revelo.REVELO.train` leaves behind when training diverges or is interrupted.

The model never ends a run with NaN velocities and ``is_trained_ = True``: after every run the
velocities of the first cells are checked, and a run whose velocities became NaN or infinite
(even with a finite loss, e.g. after a NaN validation ELBO stopped it) falls back to the last
weights whose velocities were finite and raises :class:`NonFiniteLossError`. A Ctrl+C keeps the
weights of the moment, if their velocities are finite, and raises ``KeyboardInterrupt`` with
how to resume, instead of lightning's ``SystemExit``.
"""

from __future__ import annotations

import functools
import signal
import threading
from typing import TYPE_CHECKING

from ._callbacks import InterruptRecorder, NonFiniteLossError, StopOnNonFiniteLoss, outputs_finite

if TYPE_CHECKING:
    from collections.abc import Callable

_ADVICE = (
    "Lower the learning rate (e.g. `lr=1e-3`), keep gradient clipping on, and check the "
    "registered layers for extreme values."
)


def guarded_training(train: Callable) -> Callable:
    """Wrap a model's ``train`` so that divergence and Ctrl+C leave the model consistent.

    ``is_trained_`` is ``True`` afterwards only when the model holds weights from training (this
    run's or an earlier one's) whose velocities are finite.
    """

    @functools.wraps(train)
    def wrapper(self, *args, **kwargs):
        callbacks = list(kwargs.get("callbacks") or [])
        guard = _find_or_add(callbacks, StopOnNonFiniteLoss)
        recorder = _find_or_add(callbacks, InterruptRecorder)
        kwargs["callbacks"] = callbacks
        was_trained = bool(self.is_trained_)
        sigint = signal.getsignal(signal.SIGINT)
        try:
            result = train(self, *args, **kwargs)
        except NonFiniteLossError:
            _settle(self, guard, was_trained)
            raise
        except SystemExit:
            if recorder.interrupted_epoch is None:
                raise
            msg = _after_interrupt(self, guard, was_trained, recorder.interrupted_epoch)
            raise KeyboardInterrupt(msg) from None
        finally:
            _restore_sigint(sigint)
        tensors = guard.tensors
        if tensors is not None and not outputs_finite(self.module, tensors):
            epoch = self.trainer.current_epoch if getattr(self, "trainer", None) else "?"
            guard.restore(self.module)
            _settle(self, guard, was_trained)
            state = "" if self.is_trained_ else "; the model counts as untrained"
            msg = (
                f"Training diverged: by epoch {epoch} the model's velocities were NaN or "
                "infinite although the training loss stayed finite (a NaN validation ELBO "
                f"ends the run early). The model keeps {guard.kept()}, the last whose "
                f"velocities were finite{state}. {_ADVICE}"
            )
            raise NonFiniteLossError(msg)
        return result

    return wrapper


def _find_or_add(callbacks: list, kind: type):
    found = next((c for c in callbacks if isinstance(c, kind)), None)
    if found is None:
        found = kind()
        callbacks.append(found)
    return found


def _settle(model, guard: StopOnNonFiniteLoss, was_trained: bool) -> None:
    """Trained when the restored weights come from training (this run or an earlier one)."""
    model.is_trained_ = guard.snapshot is not None and (
        guard.snapshot_epoch is not None or was_trained
    )
    model.module.eval()


def _after_interrupt(model, guard: StopOnNonFiniteLoss, was_trained: bool, epoch: int) -> str:
    """Keep the current weights if usable, else the last good ones; say how to resume."""
    tensors = guard.tensors
    if tensors is None or outputs_finite(model.module, tensors):
        model.is_trained_ = True
        model.module.eval()
        kept = "the weights it had when interrupted; it can be queried and saved"
    else:
        guard.restore(model.module)
        _settle(model, guard, was_trained)
        kept = f"{guard.kept()}, the last whose velocities were finite"
    return (
        f"Training was interrupted in epoch {epoch}. The model keeps {kept}. To continue, "
        "resume from a checkpoint with `model.train(max_epochs=..., ckpt_path="
        "'<checkpoint_dir>/last.ckpt')` if the run wrote them (`enable_checkpointing=True, "
        "checkpoint_dir=...`); otherwise `model.train(...)` starts a new run from the current "
        "weights (with a new optimizer and KL warm-up)."
    )


def _restore_sigint(handler) -> None:
    # Lightning ignores Ctrl+C from its first interrupt on; give the session its handler back.
    if handler is not None and threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
