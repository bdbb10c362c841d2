"""Matching metrics of the HPatches protocol (D2-Net / R2D2): mutual nearest neighbours, MMA,
repeatability and homography accuracy. Plain tensor/numpy functions, shared with training."""
from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np

from ..geometry import corner_error, warp_points
from ..matching import mutual_nearest_neighbours

__all__ = ["mutual_nearest_neighbours", "match_errors", "mean_matching_accuracy", "keypoint_repeatability",
           "homography_accuracy", "bootstrap_interval", "DEFAULT_THRESHOLDS"]

DEFAULT_THRESHOLDS = tuple(range(1, 11))


def match_errors(keypoints1: np.ndarray, keypoints2: np.ndarray, matches: np.ndarray, homography: np.ndarray
                 ) -> np.ndarray:
    """Reprojection error (pixels) of each match: |H(x1) - x2|. Keypoints are (N, >=2) x, y."""
    if len(matches) == 0:
        return np.zeros(0)
    projected = warp_points(homography, keypoints1[matches[:, 0], :2])
    errors = np.linalg.norm(projected - keypoints2[matches[:, 1], :2], axis=1)
    return np.nan_to_num(errors, nan=np.inf)


def mean_matching_accuracy(errors: np.ndarray, thresholds: tuple[float, ...] = DEFAULT_THRESHOLDS) -> np.ndarray:
    """Fraction of matches within each threshold (0 where there is no match)."""
    if len(errors) == 0:
        return np.zeros(len(thresholds))
    return np.array([(errors <= t).mean() for t in thresholds])


def keypoint_repeatability(keypoints1: np.ndarray, keypoints2: np.ndarray, homography: np.ndarray,
                           size2: tuple[int, int], size1: tuple[int, int], threshold: float = 3.0) -> float:
    """Share of keypoints, in the region both images see, with a counterpart within ``threshold`` px.

    Counted symmetrically over both images, as in the HPatches/SuperPoint protocol.
    """
    def visible(points: np.ndarray, size: tuple[int, int]) -> np.ndarray:
        return (points[:, 0] >= 0) & (points[:, 0] <= size[0] - 1) & (points[:, 1] >= 0) & (points[:, 1] <= size[1] - 1)

    warped1 = warp_points(homography, keypoints1[:, :2])
    warped2 = warp_points(np.linalg.inv(homography), keypoints2[:, :2])
    shared1, shared2 = warped1[visible(warped1, size2)], keypoints2[visible(warped2, size1), :2]
    if len(shared1) == 0 or len(shared2) == 0:
        return 0.0
    distances = np.linalg.norm(shared1[:, None] - shared2[None], axis=2)
    found = (distances.min(axis=1) <= threshold).sum() + (distances.min(axis=0) <= threshold).sum()
    return float(found / (len(shared1) + len(shared2)))


def homography_accuracy(keypoints1: np.ndarray, keypoints2: np.ndarray, matches: np.ndarray, truth: np.ndarray,
                        size1: tuple[int, int], thresholds: tuple[float, ...] = (1, 3, 5)) -> tuple[float, np.ndarray]:
    """Corner error of a RANSAC homography from the matches, and whether it is within each threshold."""
    if len(matches) < 4:
        return float("inf"), np.zeros(len(thresholds), bool)
    estimated, _ = cv2.findHomography(keypoints1[matches[:, 0], :2], keypoints2[matches[:, 1], :2], cv2.RANSAC, 3.0)
    if estimated is None:
        return float("inf"), np.zeros(len(thresholds), bool)
    error = corner_error(estimated, truth, *size1)
    return error, np.array([error <= t for t in thresholds])


def bootstrap_interval(values: list[float] | np.ndarray, statistic: Callable[..., np.ndarray] = np.median,
                       level: float = 0.95, resamples: int = 2000) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of ``statistic`` (median, mean) of ``values``; reruns agree.

    The VO check's medians come from about 50 frame pairs of one sequence, a validation MMA from a
    few dozen synthetic pairs: the interval says how far apart two figures must be before the data
    can tell them apart. ``statistic`` takes an array and ``axis=1``; the resampling has a fixed seed.
    """
    values = np.asarray(values, float)
    if len(values) == 0:
        return float("nan"), float("nan")
    samples = np.random.default_rng(0).choice(values, (resamples, len(values)))
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(statistic(samples, axis=1), [tail, 100 - tail])
    return float(low), float(high)
