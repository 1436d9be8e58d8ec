"""Where a training step's time goes: forward, backward, and everything outside them.

Run from the repository root::

    OMP_NUM_THREADS=1 python -m benchmarks.step_overhead --data simulated pancreas --epochs 5

For each data set (``simulated``: 1,000 cells × 100 genes from :func:`revelo.datasets.simulate`;
``pancreas``: the 3,696-cell pancreas data in ``revelo.settings.data_dir``) the data are
preprocessed, a REVELO model trains ``--epochs`` epochs without early stopping, and every
training step is split into the module's forward pass (loss included), the backward pass, and
the rest: lightning's hooks and loop, logging and metric aggregation, gradient clipping, the
optimizer update and the minibatch gather. Validation epochs are timed apart. ``--profile``
adds the functions that take the most time outside forward and backward (cProfile, own time).
``--plans revelo scvi`` trains once with revelo's training plan (epoch metrics logged once per
epoch) and once with scvi-tools' :class:`~scvi.train.TrainingPlan` (logged every step), in
alternation, for a comparison under the same load.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import time
import warnings
from typing import Any

import torch
from lightning.pytorch.callbacks import Callback

import revelo


class _StepClock(Callback):
    """Wall time of every training batch and of validation."""

    def __init__(self) -> None:
        self.step = 0.0
        self.n_steps = 0
        self.validation = 0.0
        self._start = 0.0

    def on_train_batch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_train_batch_end(self, *args) -> None:
        self.step += time.perf_counter() - self._start
        self.n_steps += 1

    def on_validation_epoch_start(self, *args) -> None:
        self._start = time.perf_counter()

    def on_validation_epoch_end(self, *args) -> None:
        self.validation += time.perf_counter() - self._start


class _Timed:
    """Accumulates the time spent in a wrapped callable while training steps run."""

    def __init__(self, function) -> None:
        self.function = function
        self.seconds = 0.0
        self.active = True

    def __call__(self, *args, **kwargs):
        if not self.active:
            return self.function(*args, **kwargs)
        start = time.perf_counter()
        try:
            return self.function(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


def _data(name: str):
    if name == "simulated":
        raw = revelo.datasets.simulate(n_obs=1000, n_vars=100, seed=0, noise="normal")
        return revelo.pp.preprocess(raw, n_top_genes=None, normalize=False, compute_umap=False)
    raw = revelo.datasets.pancreas()
    return revelo.pp.preprocess(raw, compute_umap=False)


def profile_steps(
    adata, *, epochs: int, profile: bool, trainer_kwargs: dict, plan: str = "revelo"
) -> dict[str, Any]:
    """Train ``epochs`` epochs and split the training steps' time."""
    from scvi.train import TrainingPlan

    revelo.settings.seed = 0
    revelo.REVELO.setup_anndata(adata)
    model = revelo.REVELO(adata)
    if plan == "scvi":
        model._training_plan_cls = TrainingPlan
    clock = _StepClock()
    forward = _Timed(model.module.forward)
    model.module.forward = forward
    backward = _Timed(torch.autograd.backward)
    original_backward = torch.autograd.backward
    torch.autograd.backward = backward
    profiler = cProfile.Profile() if profile else None

    class _Gate(Callback):
        # forward also runs in validation; count only the training steps' share.
        def on_validation_epoch_start(self, *args):
            forward.active = False

        def on_validation_epoch_end(self, *args):
            forward.active = True

    try:
        if profiler is not None:
            profiler.enable()
        start = time.perf_counter()
        model.train(
            max_epochs=epochs,
            early_stopping=False,
            enable_progress_bar=False,
            callbacks=[clock, _Gate()],
            **trainer_kwargs,
        )
        total = time.perf_counter() - start
        if profiler is not None:
            profiler.disable()
    finally:
        torch.autograd.backward = original_backward
    outside = clock.step - forward.seconds - backward.seconds
    result = {
        "n_obs": adata.n_obs,
        "n_vars": adata.n_vars,
        "epochs": epochs,
        "steps": clock.n_steps,
        "train_seconds": total,
        "ms_per_step": 1e3 * clock.step / clock.n_steps,
        "forward_ms": 1e3 * forward.seconds / clock.n_steps,
        "backward_ms": 1e3 * backward.seconds / clock.n_steps,
        "outside_ms": 1e3 * outside / clock.n_steps,
        "outside_share": outside / clock.step,
        "validation_seconds_per_epoch": clock.validation / epochs,
        "seconds_per_epoch": total / epochs,
    }
    if profiler is not None:
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        result["profile"] = text.getvalue()
    return result


def main() -> None:
    """Profile the requested data sets and print one line each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", nargs="+", default=["simulated", "pancreas"])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--plans", nargs="+", default=["revelo"], choices=["revelo", "scvi"])
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--log-every-n-steps", type=int, default=None, help="lightning's option, for comparison"
    )
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    revelo.settings.verbosity = "warning"
    trainer_kwargs = {}
    if args.log_every_n_steps is not None:
        trainer_kwargs["log_every_n_steps"] = args.log_every_n_steps
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"threads {revelo.settings.n_jobs}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"load before: {load}")
    for name in args.data:
        adata = _data(name)
        for plan in args.plans * args.repeats:
            _report(name, plan, adata, args, trainer_kwargs)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"load after: {load}")


def _report(name: str, plan: str, adata, args: argparse.Namespace, trainer_kwargs: dict) -> None:
    result = profile_steps(
        adata.copy(),
        epochs=args.epochs,
        profile=args.profile,
        trainer_kwargs=trainer_kwargs,
        plan=plan,
    )
    print(
        f"{name} {result['n_obs']}x{result['n_vars']} plan={plan}: {result['steps']} steps, "
        f"{result['ms_per_step']:.1f} ms/step = forward {result['forward_ms']:.1f} + "
        f"backward {result['backward_ms']:.1f} + outside {result['outside_ms']:.1f} "
        f"({100 * result['outside_share']:.0f} %); validation "
        f"{result['validation_seconds_per_epoch']:.2f} s/epoch; "
        f"{result['seconds_per_epoch']:.2f} s/epoch in all",
        flush=True,
    )
    if "profile" in result:
        print(result["profile"])


if __name__ == "__main__":
    main()
