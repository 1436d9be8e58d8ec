"""Options for training on several processes with lightning's DDP strategies."""

from __future__ import annotations

from lightning.pytorch.strategies import Strategy

# Lightning's DDP launchers (process script, spawn, fork, notebook) by their strategy names.
_DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def ddp_strategy(strategy: str | Strategy | None) -> str | Strategy | None:
    """Let DDP tolerate parameters that a step does not use.

    The decoder holds heads for both time modes (one clock per cell, or a time per gene) and a
    step uses only one of them; plain DDP stops at the first step whose loss leaves a parameter
    without a gradient. A DDP strategy given by its bare name gets its
    ``*_find_unused_parameters_true`` variant; anything else (a strategy object, or a name that
    already says what to do) is returned as it is.
    """
    if isinstance(strategy, str) and strategy in _DDP_STRATEGIES:
        return f"{strategy}_find_unused_parameters_true"
    return strategy
