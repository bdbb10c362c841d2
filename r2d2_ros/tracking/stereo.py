"""Stereo correspondences between two synchronised cameras, and the second camera's track ids (ROS-free).

A stereo VIO front end expects a point seen by both cameras of a set under one track id. The second
(right) camera's keypoints are paired with the first (left) camera's: on the same row of the
rectified images (within ``row_tolerance_px``), left of the left point by a disparity in
[0, ``max_disparity_px``], and mutual nearest neighbours by descriptor among the pairs that row and
disparity allow, within ``max_descriptor_distance``. Keypoints published in raw pixels are rectified
for the check only, with both cameras' K, D, R, P: for a stereo pair's camera_infos that maps the
rig's epipolar lines to rows, so the row test is the epipolar constraint. Without both camera
models, or when their P do not describe one rectified pair with the second camera to the right
(P2[0, 3] = -fx * baseline < 0), there are no correspondences and :class:`StereoMatches` says why.

Ids over time. Each camera keeps its own tracker, whose book carries ids from frame to frame. A
right track that is stereo-matched for the first time *adopts* its left point's id in the right
book, for good: later frames continue the right track under the left id whether or not the stereo
match holds, so a published id never flips back and forth with the stereo match (replacing ids only
in the message would). Consequences, chosen so that an id names one physical point:

* a right track adopts once; a later stereo match to another left id keeps the adopted one (one of
  the two matches is wrong, and the track's history is the better witness);
* a right track never adopts an id another live right track carries (both would name one point);
* the right track's own id before adoption is retired, never used again (ids come from the node's
  one sequence); a right track that never finds a partner keeps its own id;
* if the left camera's tracker loses the point and gives it a new id, the right track keeps the old
  one: the two cameras then show that point under two ids until the right track ends too.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..matching import mutual_nearest_neighbours
from .rectification import CameraModel, rectify_points

__all__ = ["StereoConfig", "StereoMatches", "StereoView", "rig_problem", "stereo_matches", "ids_to_adopt"]

# Relative difference of the two P's rectified intrinsics still counted as one rectified pair
# (camera_infos print P with a few decimals).
_SAME_INTRINSICS_RTOL = 1e-3


@dataclass(frozen=True)
class StereoConfig:
    """How a right point is paired with a left one."""

    row_tolerance_px: float = 1.0  # largest |y_left - y_right| in rectified pixels
    max_disparity_px: float = math.inf  # largest x_left - x_right; the nearest depth is fx * baseline / this
    max_descriptor_distance: float = 1.0  # Euclidean, between unit descriptors

    def __post_init__(self) -> None:
        if self.row_tolerance_px < 0 or self.max_disparity_px < 0:
            raise ValueError(f"need row_tolerance_px >= 0 and max_disparity_px >= 0: {self}")
        if not 0 < self.max_descriptor_distance <= 2:
            raise ValueError(f"max_descriptor_distance must be in (0, 2], got {self.max_descriptor_distance}")


@dataclass(frozen=True)
class StereoView:
    """One camera's published keypoints of a set.

    ``points`` are in rectified pixels when ``rectified``, else in raw pixels of ``camera``'s image.
    """

    points: np.ndarray  # (N, 2) x, y
    descriptors: torch.Tensor  # (N, D) unit
    camera: CameraModel | None
    rectified: bool


@dataclass(frozen=True)
class StereoMatches:
    """(K, 2) int64 (left index, right index) pairs, and why there are none when the geometry is unknown."""

    pairs: np.ndarray
    skipped: str = ""  # "" when the pair was searched


def rig_problem(left: CameraModel | None, right: CameraModel | None) -> str:
    """Why two camera models do not describe a rectified stereo pair with the second camera right of the first ("" if they do)."""
    if left is None or right is None:
        return "no usable camera_info for " + ("both cameras" if left is right else "the first camera" if left is None
                                         else "the second camera")
    if not np.allclose(left.rectified_matrix, right.rectified_matrix, rtol=_SAME_INTRINSICS_RTOL):
        return "the camera_infos' P have different rectified intrinsics: not one rectified stereo pair"
    if right.P[0, 3] >= 0 or right.P[1, 3] != 0:
        return ("the second camera_info's P gives no baseline to the right (need P[0,3] = -fx*baseline < 0, "
                f"P[1,3] = 0; got {right.P[0, 3]:g}, {right.P[1, 3]:g})")
    return ""


def _rectified_points(view: StereoView) -> np.ndarray:
    """The view's points in rectified pixels (the camera model is known to be there when they are raw)."""
    if view.rectified:
        return view.points
    assert view.camera is not None
    return rectify_points(view.points, view.camera)


def stereo_matches(left: StereoView, right: StereoView, config: StereoConfig = StereoConfig()) -> StereoMatches:
    """Pairs of a left and a right keypoint that are one point: same rectified row, disparity in range, alike.

    Each right point pairs with at most one left point and vice versa (mutual nearest by descriptor
    among the pairs the geometry allows).
    """
    none = np.zeros((0, 2), np.int64)
    problem = rig_problem(left.camera, right.camera)
    if problem:
        return StereoMatches(none, problem)
    if len(left.points) == 0 or len(right.points) == 0:
        return StereoMatches(none)
    left_points = torch.from_numpy(np.asarray(_rectified_points(left), np.float64))
    right_points = torch.from_numpy(np.asarray(_rectified_points(right), np.float64))
    disparity = left_points[:, None, 0] - right_points[None, :, 0]
    row_gap = (left_points[:, None, 1] - right_points[None, :, 1]).abs()
    allowed = (row_gap <= config.row_tolerance_px) & (disparity >= 0) & (disparity <= config.max_disparity_px)
    pairs = mutual_nearest_neighbours(left.descriptors, right.descriptors, config.max_descriptor_distance, allowed)
    return StereoMatches(pairs.cpu().numpy())


def ids_to_adopt(left_ids: np.ndarray, right_ids: np.ndarray, pairs: np.ndarray,
                 adopted: set[int]) -> tuple[np.ndarray, np.ndarray]:
    """Which right points take which left id: (indices into the right points, their new ids).

    Args:
        left_ids, right_ids: the track ids of the set's left and right points.
        pairs: (K, 2) (left index, right index) stereo matches, each point at most once.
        adopted: ids of right tracks that already adopted a left id (they keep it).
    """
    left_index, right_index = pairs[:, 0], pairs[:, 1]
    candidate = left_ids[left_index]
    current = right_ids[right_index]
    takes = (candidate != current) & ~np.isin(current, list(adopted)) & ~np.isin(candidate, right_ids)
    return right_index[takes], candidate[takes]
