"""Schedules of the learning rate and the reliability loss, as pure functions of the global step.

Being functions of the step alone (not of optimizer state), they continue exactly where an
interrupted chunk stopped, and a resumed run with a new ``optim.lr`` follows the new value.
"""
from __future__ import annotations

import math

from .config import OptimConfig
from .losses import LossConfig

__all__ = ["learning_rate", "reliability_weight"]


def learning_rate(step: int, optim: OptimConfig, total_steps: int) -> float:
    """Linear warm-up from ``lr / warmup_steps`` to ``lr``, then cosine decay to ``lr * min_lr_fraction``.

    Args:
        step: the global step about to be taken (0-based).
        total_steps: the step at which the decay ends (``run.steps``).
    """
    if step < optim.warmup_steps:
        return optim.lr * (step + 1) / optim.warmup_steps
    if optim.decay != "cosine":
        return optim.lr
    span = max(total_steps - optim.warmup_steps, 1)
    progress = min(max(step - optim.warmup_steps, 0) / span, 1.0)
    floor = optim.lr * optim.min_lr_fraction
    return floor + (optim.lr - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def reliability_weight(step: int, loss: LossConfig) -> float:
    """0 during ``reliability_warmup_steps``, then linearly up to 1 over ``reliability_ramp_steps``."""
    if step < loss.reliability_warmup_steps:
        return 0.0
    if loss.reliability_ramp_steps == 0:
        return 1.0
    return min((step - loss.reliability_warmup_steps) / loss.reliability_ramp_steps, 1.0)
