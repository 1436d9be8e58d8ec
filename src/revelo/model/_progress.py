"""Training progress with an estimated time left, and a summary when training ends."""

from __future__ import annotations

import logging
import math
import shutil
import sys
import time
import warnings

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback

logger = logging.getLogger(__name__)

# Two of lightning's warnings that a user cannot act on: a deprecation inside lightning itself,
# and a note that small data sets have fewer batches per epoch than its logging interval.
warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated")
warnings.filterwarnings("ignore", message=r"The number of training batches \(\d+\) is smaller")

# Metrics shown in the progress, in this order, when the training plan logs them.
_SHOWN = ("elbo_train", "elbo_validation")


def format_seconds(seconds: float) -> str:
    """``"42 s"``, ``"3 min 05 s"`` or ``"1 h 02 min"``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class TrainingProgress(Callback):
    """Report progress with an estimated time left, then a one-line summary.

    On a terminal, one line is rewritten in place after every epoch (a progress bar); elsewhere
    (a log file, a pipe, a notebook) a line is written every tenth of ``max_epochs`` and at
    least once a minute. The time left is an upper bound: early stopping may end sooner. The
    summary gives the epochs run, why training stopped, the time taken and the final losses.

    Messages go through the ``revelo`` logger at level ``INFO``, so
    ``revelo.settings.verbosity = "warning"`` silences them. ``train(enable_progress_bar=False)``
    leaves out the progress but keeps the summary. This callback replaces scvi-tools' progress
    bar, which in a notebook without ipywidgets only warns.

    Parameters
    ----------
    lines
        Number of progress lines over ``max_epochs`` when not on a terminal.
    min_interval
        Seconds after which a progress line is written off schedule when not on a terminal.
    """

    def __init__(self, *, lines: int = 10, min_interval: float = 60.0) -> None:
        super().__init__()
        self.lines = lines
        self.min_interval = min_interval
        self.show_progress = True
        self.on_terminal = False
        self._start = 0.0
        self._first_epoch = 0
        self._last_line = 0.0
        self._bar_width = 0

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """Take over from the trainer's progress bar, if it has one."""
        bar = trainer.progress_bar_callback
        self.show_progress = bar is not None and logger.isEnabledFor(logging.INFO)
        if bar is not None and hasattr(bar, "disable"):
            bar.disable()
        self.on_terminal = _is_terminal()

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Start the clock (a resumed run counts from its first new epoch)."""
        self._start = self._last_line = time.perf_counter()
        self._first_epoch = trainer.current_epoch

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """Write the progress of the epoch just finished when it is due."""
        if not self.show_progress:
            return
        epoch = trainer.current_epoch + 1
        now = time.perf_counter()
        line = self.progress_line(trainer, epoch, now - self._start)
        if self.on_terminal:
            # One line that fits the terminal, or rewriting it in place would fail.
            line = line[: shutil.get_terminal_size().columns - 1]
            self._bar_width = max(self._bar_width, len(line))
            sys.stderr.write("\r" + line.ljust(self._bar_width))
            sys.stderr.flush()
            return
        every = max(1, math.ceil(trainer.max_epochs / self.lines))
        due = epoch % every == 0 or epoch == trainer.max_epochs or epoch == self._first_epoch + 1
        if due or now - self._last_line >= self.min_interval:
            logger.info(line)
            self._last_line = now

    def progress_line(self, trainer: pl.Trainer, epoch: int, elapsed: float) -> str:
        """``epoch  40/400 [####---] 42 s elapsed, at most 6 min 18 s left  elbo_train 1234``."""
        total = trainer.max_epochs
        done = epoch - self._first_epoch
        left = elapsed / max(done, 1) * (total - epoch)
        filled = round(20 * epoch / max(total, 1))
        width = len(str(total))
        parts = [f"epoch {epoch:>{width}}/{total} [{'#' * filled}{'-' * (20 - filled)}]"]
        parts.append(f"{format_seconds(elapsed)} elapsed")
        if epoch < total:
            parts[-1] += f", at most {format_seconds(left)} left"
        # The time comes before the losses, which a narrow terminal cuts off first.
        parts += [f"{name} {value:.4g}" for name, value in _metrics(trainer).items()]
        return "  ".join(parts)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """End the progress bar and write the summary."""
        self._end_bar()
        n_genes = getattr(getattr(pl_module, "module", None), "n_genes", None)
        logger.info(self.summary(trainer, time.perf_counter() - self._start, n_genes=n_genes))
        # The summary says why training stopped; scvi-tools' early stopping would print it
        # again, unconditionally, when the trainer tears down.
        for callback in trainer.callbacks:
            if getattr(callback, "early_stopping_reason", None) is not None:
                callback.early_stopping_reason = None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        """Leave the terminal on a new line when training fails."""
        self._end_bar()

    def _end_bar(self) -> None:
        if self.show_progress and self.on_terminal and self._bar_width:
            sys.stderr.write("\n")
            sys.stderr.flush()
            self._bar_width = 0

    def summary(self, trainer: pl.Trainer, elapsed: float, *, n_genes: int | None = None) -> str:
        """One line: genes, epochs, why training stopped, time and final losses."""
        epochs = trainer.current_epoch
        stopper = trainer.early_stopping_callback
        if epochs >= trainer.max_epochs:
            reason = f"all {trainer.max_epochs} epochs"
        elif stopper is not None and stopper.stopped_epoch > 0:
            reason = (
                f"early stopping after epoch {epochs} of {trainer.max_epochs}: the validation "
                "ELBO stopped improving"
            )
        else:
            reason = f"stopped after epoch {epochs} of {trainer.max_epochs}"
        metrics = ", ".join(f"{name} {value:.4g}" for name, value in _metrics(trainer).items())
        genes = "" if n_genes is None else f"{n_genes} genes, "
        line = f"Training done in {format_seconds(elapsed)}: {genes}{reason}"
        return f"{line}; final {metrics}." if metrics else f"{line}."


def _metrics(trainer: pl.Trainer) -> dict[str, float]:
    values = trainer.callback_metrics
    return {name: float(values[name]) for name in _SHOWN if name in values}


def _is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False
