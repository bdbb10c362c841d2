"""Choosing among checkpoints on the held-out validation pairs, with how sure the choice is.

A chunk's in-run validation uses a few dozen pairs, enough to follow the curve but not to tell two
checkpoints 0.01 apart. Here every checkpoint is scored on the same (as many as asked) pairs, so
their difference is measured pair by pair, which is far less noisy than either figure alone.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..evaluation.metrics import bootstrap_interval
from .trainer import Trainer

__all__ = ["CheckpointScore", "compare_checkpoints", "scores_table"]


@dataclass(frozen=True)
class CheckpointScore:
    """Validation of one checkpoint; ``difference`` is its mean MMA@3 minus the first checkpoint's, pair by pair."""

    path: Path
    step: int
    mma3: float
    mma3_interval: tuple[float, float]
    keypoints: float
    difference: float
    difference_interval: tuple[float, float]


def compare_checkpoints(trainer: Trainer, paths: Sequence[Path]) -> list[CheckpointScore]:
    """Scores each checkpoint's weights (the trainer's architecture) on the trainer's validation pairs.

    Raises:
        ValueError: a checkpoint holds another architecture (all are read and checked before any is scored).
        CheckpointError: a checkpoint cannot be read.
    """
    checkpoints = [trainer.read_checkpoint(path) for path in paths]
    scores: list[CheckpointScore] = []
    first: np.ndarray | None = None
    for path, checkpoint in zip(paths, checkpoints):
        trainer.model.load_state_dict(checkpoint.state_dict)
        accuracies, counts = (np.asarray(values, float) for values in trainer.validation_accuracies())
        first = accuracies if first is None else first
        difference = accuracies - first
        scores.append(CheckpointScore(Path(path), int(checkpoint.meta.get("step", -1)), float(accuracies.mean()),
                                      bootstrap_interval(accuracies, np.mean), float(counts.mean()),
                                      float(difference.mean()), bootstrap_interval(difference, np.mean)))
    return scores


def scores_table(scores: Sequence[CheckpointScore]) -> str:
    """Markdown table of :func:`compare_checkpoints`' scores."""
    lines = ["| checkpoint | step | MMA@3 (95% interval) | keypoints per image "
             "| minus the first, pair by pair (95% interval) |", "|---|---|---|---|---|"]
    for score in scores:
        lines.append(f"| {score.path} | {score.step} | {score.mma3:.3f} ({score.mma3_interval[0]:.3f}-"
                     f"{score.mma3_interval[1]:.3f}) | {score.keypoints:.0f} | {score.difference:+.3f} "
                     f"({score.difference_interval[0]:+.3f} to {score.difference_interval[1]:+.3f}) |")
    return "\n".join(lines) + "\n"
