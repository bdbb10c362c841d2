"""Visual-odometry check: relative poses of consecutive frames from matched features vs ground truth.

The features come from a method (extracted and cached here) or from a feature bag that
``r2d2-extract --bag`` made from the sequence recorded as a bag.
"""
from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np

from ..bags import BagError, FeatureBag, stamp_ns
from ..features import Features
from ..sequences import Sequence
from ..tracking.verification import Estimator, relative_pose
from .cache import FeatureCache
from .methods import Method
from .metrics import bootstrap_interval, mutual_nearest_neighbours

__all__ = ["relative_pose_errors", "pose_errors_from_correspondences", "evaluate_vo", "score_vo",
           "bag_features_for_sequence"]


def _angle_deg(cosine: float) -> float:
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def relative_pose_errors(rotation: np.ndarray, translation: np.ndarray, pose1: np.ndarray, pose2: np.ndarray
                         ) -> tuple[float, float]:
    """Rotation error and translation-direction error (degrees) of an estimated relative pose.

    Args:
        rotation, translation: maps points from camera 1 to camera 2 (x2 = R x1 + t), as
            ``cv2.recoverPose`` returns them; t is known up to scale.
        pose1, pose2: (3, 4) camera-to-world poses of the two frames (KITTI convention).
    """
    def homogeneous(pose: np.ndarray) -> np.ndarray:
        return np.vstack([pose, [0, 0, 0, 1]])

    truth = np.linalg.inv(homogeneous(pose2)) @ homogeneous(pose1)  # camera 1 -> camera 2
    rotation_error = _angle_deg((np.trace(rotation.T @ truth[:3, :3]) - 1) / 2)
    t_true, t_est = truth[:3, 3], np.ravel(translation)
    denominator = np.linalg.norm(t_true) * np.linalg.norm(t_est)
    translation_error = _angle_deg(float(t_true @ t_est) / denominator) if denominator > 0 else 180.0
    return rotation_error, translation_error


_FAILED = (180.0, 180.0, 0)  # what a pair that yields no pose counts as


def _relative_pose(first, second, camera: np.ndarray, pose1: np.ndarray, pose2: np.ndarray, estimator: Estimator
                   ) -> tuple[float, float, int]:
    """(rotation error, translation-direction error, inliers) of one frame pair."""
    matches = mutual_nearest_neighbours(first.descriptors, second.descriptors).numpy()
    points1 = first.keypoints.numpy()[matches[:, 0], :2]
    points2 = second.keypoints.numpy()[matches[:, 1], :2]
    return pose_errors_from_correspondences(points1, points2, camera, pose1, pose2, estimator)


def pose_errors_from_correspondences(points1: np.ndarray, points2: np.ndarray, camera: np.ndarray,
                                     pose1: np.ndarray, pose2: np.ndarray, estimator: Estimator = "lo-ransac"
                                     ) -> tuple[float, float, int]:
    """(rotation error, translation-direction error, inliers) of the relative pose that matched points give.

    Args:
        points1, points2: (K, 2) pixel positions (undistorted) of the same points in two frames.
        camera: (3, 3) intrinsics; pose1, pose2: (3, 4) camera-to-world ground truth.
        estimator: see :func:`~r2d2_ros.tracking.verification.relative_pose`; the tracker's by default.
    """
    motion = relative_pose(points1, points2, camera, estimator=estimator)
    if motion is None:
        return _FAILED
    rotation, translation, inliers = motion
    return (*relative_pose_errors(rotation, translation, pose1, pose2), inliers)


def _check_ground_truth(sequence: Sequence) -> None:
    if sequence.poses is None or sequence.calibration is None:
        raise ValueError(f"{sequence.name}: the VO check needs ground-truth poses and a calibration")


def score_vo(sequence: Sequence, features: list[Features], estimator: Estimator = "lo-ransac") -> dict[str, float]:
    """Median rotation and translation-direction errors and inlier counts over consecutive frames.

    ``features``: one per frame with a ground-truth pose, in order; ``estimator``: see
    :func:`pose_errors_from_correspondences`.
    """
    _check_ground_truth(sequence)
    results = [_relative_pose(features[i], features[i + 1], sequence.calibration.K, sequence.poses[i],
                              sequence.poses[i + 1], estimator) for i in range(len(features) - 1)]
    rotation_errors, translation_errors, inliers = (list(column) for column in zip(*results))
    return {
        "pairs": len(rotation_errors),
        "rotation_error_median_deg": round(float(np.median(rotation_errors)), 3),
        "translation_error_median_deg": round(float(np.median(translation_errors)), 3),
        "translation_error_median_ci95_deg": [round(v, 3) for v in bootstrap_interval(translation_errors)],
        "inliers_median": float(np.median(inliers)),
        "features_mean": round(float(np.mean([len(f) for f in features])), 1),
    }


def evaluate_vo(sequence: Sequence, method: Method, cache: FeatureCache, progress: Callable[[], None] = lambda: None,
                estimator: Estimator = "lo-ransac") -> dict[str, float]:
    """:func:`score_vo` of a method's features, extracted (or taken from the cache) frame by frame."""
    _check_ground_truth(sequence)
    features = []
    for frame in sequence.frames[: len(sequence.poses)]:
        features.append(cache.features(method, frame))
        progress()
    return score_vo(sequence, features, estimator)


def bag_features_for_sequence(sequence: Sequence, bag: str | os.PathLike[str]) -> list[Features]:
    """The feature bag's features of each frame with a pose, matched by header stamp to the frame times.

    Raises:
        BagError: the bag is unusable or lacks a frame (it must be made from this sequence's bag).
    """
    _check_ground_truth(sequence)
    wanted = sequence.times_ns()[: len(sequence.poses)]
    with FeatureBag(bag) as features_bag:
        by_stamp = {stamp_ns(header): features for header, features in features_bag}
    missing = [index for index, time_ns in enumerate(wanted) if time_ns not in by_stamp]
    if missing:
        raise BagError(f"{bag}: no features stamped as frame {missing[0]} of {sequence.name} ({len(missing)} of "
                       f"{len(wanted)} frames missing); is it made from this sequence?")
    return [by_stamp[time_ns] for time_ns in wanted]
