"""The HPatches sequences protocol (D2-Net / R2D2) over methods, from cached features."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .cache import FeatureCache
from .hpatches import HPatchesSequence
from .methods import Method
from .metrics import (DEFAULT_THRESHOLDS, homography_accuracy, keypoint_repeatability, match_errors,
                      mean_matching_accuracy, mutual_nearest_neighbours)

__all__ = ["PairResult", "evaluate_pair", "evaluate_hpatches", "summarise"]

HOMOGRAPHY_THRESHOLDS = (1, 3, 5)


@dataclass
class PairResult:
    """Scores of one image pair (1 -> k) of one sequence."""

    sequence: str
    category: str
    target: int
    features: tuple[int, int]
    matches: int
    mma: list[float]  # at DEFAULT_THRESHOLDS
    repeatability: float
    corner_error: float
    homography_correct: list[bool] = field(default_factory=list)  # at HOMOGRAPHY_THRESHOLDS


def evaluate_pair(features1, features2, homography: np.ndarray, size1: tuple[int, int], size2: tuple[int, int]
                  ) -> tuple[int, list[float], float, float, list[bool]]:
    """Matches, MMA curve, repeatability@3, corner error and homography accuracy for one pair."""
    matches = mutual_nearest_neighbours(features1.descriptors, features2.descriptors).numpy()
    keypoints1, keypoints2 = features1.keypoints.numpy(), features2.keypoints.numpy()
    errors = match_errors(keypoints1, keypoints2, matches, homography)
    mma = mean_matching_accuracy(errors, DEFAULT_THRESHOLDS)
    repeatability = keypoint_repeatability(keypoints1, keypoints2, homography, size2, size1)
    corner, correct = homography_accuracy(keypoints1, keypoints2, matches, homography, size1, HOMOGRAPHY_THRESHOLDS)
    return len(matches), mma.tolist(), repeatability, corner, correct.tolist()


def evaluate_hpatches(sequences: list[HPatchesSequence], method: Method, cache: FeatureCache,
                      progress: Callable[[], None] = lambda: None) -> list[PairResult]:
    """Every pair (1, k) of every sequence for one method."""
    results = []
    for sequence in sequences:
        features = []
        for image in sequence.images:
            features.append(cache.features(method, image))
            progress()
        for k, homography in enumerate(sequence.homographies, start=2):
            first, other = features[0], features[k - 1]
            matches, mma, repeatability, corner, correct = evaluate_pair(first, other, homography, first.image_size,
                                                                         other.image_size)
            results.append(PairResult(sequence.name, sequence.category, k, (len(first), len(other)), matches, mma,
                                      repeatability, corner, correct))
    return results


def summarise(results: list[PairResult]) -> dict[str, dict[str, object]]:
    """Means over pairs, overall and per category."""
    groups: dict[str, list[PairResult]] = {"overall": results}
    for result in results:
        groups.setdefault(result.category, []).append(result)
    summary = {}
    for name, group in groups.items():
        summary[name] = {
            "pairs": len(group),
            "mma": np.mean([r.mma for r in group], axis=0).round(4).tolist(),
            "thresholds": list(DEFAULT_THRESHOLDS),
            "features": round(float(np.mean([r.features for r in group])), 1),
            "matches": round(float(np.mean([r.matches for r in group])), 1),
            "repeatability": round(float(np.mean([r.repeatability for r in group])), 4),
            "homography_accuracy": dict(zip(map(str, HOMOGRAPHY_THRESHOLDS),
                                            np.mean([r.homography_correct for r in group], axis=0).round(4).tolist())),
        }
    return summary
