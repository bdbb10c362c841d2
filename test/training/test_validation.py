"""Choosing among checkpoints on the same validation pairs, with a stand-in trainer (fast; the real one is in
test_trainer.py)."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from r2d2_ros.evaluation.metrics import bootstrap_interval
from r2d2_ros.training.validation import CheckpointScore, compare_checkpoints, scores_table

# Per checkpoint: MMA@3 of each of four validation pairs, and keypoints per image.
ACCURACIES = {"a.pt": [0.5, 0.6, 0.7, 0.2], "b.pt": [0.6, 0.6, 0.9, 0.3], "c.pt": [0.4, 0.5, 0.7, 0.2]}
KEYPOINTS = {"a.pt": [100, 200, 300, 400], "b.pt": [10, 20, 30, 41], "c.pt": [1, 1, 1, 1]}


class _Trainer:
    """Reads every checkpoint, then scores whatever weights were loaded last."""

    def __init__(self, unreadable: str = "") -> None:
        self.unreadable, self.loaded, self.read = unreadable, [], []
        self.model = SimpleNamespace(load_state_dict=self.loaded.append)

    def read_checkpoint(self, path: Path) -> SimpleNamespace:
        self.read.append(path.name)
        if path.name == self.unreadable:
            raise ValueError(f"{path}: another architecture")
        meta = {} if path.name == "c.pt" else {"step": {"a.pt": 100, "b.pt": 250}[path.name]}
        return SimpleNamespace(state_dict=path.name, meta=meta)

    def validation_accuracies(self) -> tuple[list[float], list[int]]:
        return ACCURACIES[self.loaded[-1]], KEYPOINTS[self.loaded[-1]]


def test_every_checkpoint_on_the_same_pairs_against_the_first() -> None:
    trainer = _Trainer()
    paths = [Path("a.pt"), Path("b.pt"), Path("c.pt")]
    scores = compare_checkpoints(trainer, paths)  # type: ignore[arg-type]
    assert trainer.loaded == ["a.pt", "b.pt", "c.pt"]
    first = np.array(ACCURACIES["a.pt"])
    for score, path in zip(scores, paths):
        accuracies, difference = np.array(ACCURACIES[path.name]), np.array(ACCURACIES[path.name]) - first
        assert score == CheckpointScore(path, {"a.pt": 100, "b.pt": 250, "c.pt": -1}[path.name],
                                        pytest.approx(accuracies.mean()), bootstrap_interval(accuracies, np.mean),
                                        pytest.approx(np.mean(KEYPOINTS[path.name])), pytest.approx(difference.mean()),
                                        bootstrap_interval(difference, np.mean))
    assert scores[0].difference == 0 and scores[0].difference_interval == (0.0, 0.0)
    assert scores[1].difference == pytest.approx(0.1) and scores[1].difference_interval[0] > 0  # better on every pair


def test_checkpoints_are_all_read_before_any_is_scored() -> None:
    trainer = _Trainer(unreadable="c.pt")
    with pytest.raises(ValueError, match="another architecture"):
        compare_checkpoints(trainer, [Path("a.pt"), Path("b.pt"), Path("c.pt")])  # type: ignore[arg-type]
    assert trainer.read == ["a.pt", "b.pt", "c.pt"] and trainer.loaded == []


def test_scores_table_rows() -> None:
    score = CheckpointScore(Path("runs/best.pt"), 1200, 0.61234, (0.5, 0.7), 812.6, -0.0456, (-0.1, 0.012))
    assert scores_table([score]).splitlines() == [
        "| checkpoint | step | MMA@3 (95% interval) | keypoints per image "
        "| minus the first, pair by pair (95% interval) |",
        "|---|---|---|---|---|",
        "| runs/best.pt | 1200 | 0.612 (0.500-0.700) | 813 | -0.046 (-0.100 to +0.012) |"]
