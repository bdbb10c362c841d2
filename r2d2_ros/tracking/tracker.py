"""R2D2 feature tracking: each frame matched to the previous one, verified, with persistent track ids.

Descriptors are matched on their device (mutual nearest neighbours within a distance limit), so a
GPU pipeline copies nothing extra; only the matched positions go to the host for RANSAC. Matching
by descriptor, not by position, is what keeps tracks through frames dropped under load: only the
appearance change, not the distance moved, limits a match.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features import Features
from ..matching import mutual_nearest_neighbours
from .tracks import TrackBook, Tracks
from .verification import epipolar_inliers

__all__ = ["TrackerConfig", "FeatureTracker"]


@dataclass(frozen=True)
class TrackerConfig:
    """How frames are matched and verified."""

    max_descriptor_distance: float = 1.0  # Euclidean, between unit descriptors (cosine >= 0.5)
    ransac_threshold_px: float = 1.0  # distance to the epipolar line
    trail_length: int = 20  # positions kept per track for drawing

    def __post_init__(self) -> None:
        if not 0 < self.max_descriptor_distance <= 2:
            raise ValueError(f"max_descriptor_distance must be in (0, 2], got {self.max_descriptor_distance}")
        if self.ransac_threshold_px <= 0 or self.trail_length < 2:
            raise ValueError(f"need ransac_threshold_px > 0 and trail_length >= 2: {self}")


class FeatureTracker:
    """Gives each keypoint of a stream of frames a persistent track id (one camera)."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self.book = TrackBook(config.trail_length)
        self._previous: Features | None = None

    def reset(self) -> None:
        """Starts over (e.g. the camera changed); ids are never reused."""
        self.book.reset()
        self._previous = None

    def match(self, previous: Features, current: Features, camera_matrix: np.ndarray | None = None) -> np.ndarray:
        """Verified matches (index in ``previous``, index in ``current``), (K, 2) int64."""
        candidates = mutual_nearest_neighbours(previous.descriptors, current.descriptors,
                                               self.config.max_descriptor_distance).cpu().numpy()
        if len(candidates) == 0:
            return candidates
        points1 = previous.keypoints[:, :2].float().cpu().numpy()[candidates[:, 0]]
        points2 = current.keypoints[:, :2].float().cpu().numpy()[candidates[:, 1]]
        return candidates[epipolar_inliers(points1, points2, camera_matrix, self.config.ransac_threshold_px)]

    def update(self, features: Features, camera_matrix: np.ndarray | None = None) -> Tracks:
        """Tracks of a new frame.

        Args:
            features: the frame's keypoints (coordinates as RANSAC should see them: rectified
                pixels when ``camera_matrix`` is given).
            camera_matrix: (3, 3) intrinsics of those coordinates, for the essential-matrix check.
        """
        matches = np.zeros((0, 2), np.int64) if self._previous is None else \
            self.match(self._previous, features, camera_matrix)
        self._previous = features
        return self.book.update(features.keypoints[:, :2].float().cpu().numpy(), matches)
