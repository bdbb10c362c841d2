"""Feature tracks over a sequence: R2D2 (or any method's) descriptors tracked frame to frame, against
the classic front end (Shi-Tomasi corners + pyramidal KLT with a forward-backward check, as VINS
uses), scored by track length, consistency with the ground-truth motion and relative-pose error.

Every method's correspondences go through the same verification (LO-RANSAC, essential matrix on
rectified pixels) and the same :class:`~r2d2_ros.tracking.TrackBook`, so the numbers compare.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import torch

from ..features import Features
from ..image_io import read_rgb
from ..sequences import Sequence
from ..tracking import (CameraModel, FeatureTracker, FlowTracker, TrackBook, TrackerConfig, Tracks, epipolar_inliers,
                        rectify_points, sampson_errors)
from ..tracking.optical_flow import flow_points
from ..tracking.verification import Estimator
from ..viz import draw_tracks
from .cache import FeatureCache
from .methods import Method
from .vo import pose_errors_from_correspondences

__all__ = ["TrackedFrame", "camera_model", "grey_frame", "track_method", "track_flow", "track_klt", "score_tracks",
           "draw_last_frame"]

# Sampson error below which a tracked step agrees with the ground-truth motion (the 1 px).
CONSISTENT_PX = 1.0
# Frames over which the share of a frame's points still on their tracks is scored: about the window
# a sliding-window VO back end optimises over.
SURVIVAL_FRAMES = 5


@dataclass
class TrackedFrame:
    """One frame's tracked points: raw pixels (for drawing), rectified pixels (for geometry), tracks."""

    raw: np.ndarray  # (N, 2)
    rectified: np.ndarray  # (N, 2)
    tracks: Tracks
    trails: list[np.ndarray]
    descriptors: torch.Tensor | None = None  # (N, D) unit, where the front end describes its points


def camera_model(sequence: Sequence) -> CameraModel:
    if sequence.calibration is None:
        raise ValueError(f"{sequence.name}: tracking needs the camera calibration")
    calibration = sequence.calibration
    return CameraModel.from_camera_info(SimpleNamespace(width=calibration.width, height=calibration.height,
                                                        **calibration.camera_info_fields()))


def track_method(sequence: Sequence, method: Method, cache: FeatureCache, progress: Callable[[], None] = lambda: None,
                 config: TrackerConfig = TrackerConfig()) -> list[TrackedFrame]:
    """Tracks a method's features (R2D2, ORB, ...) with :class:`FeatureTracker` on rectified pixels."""
    camera = camera_model(sequence)
    tracker = FeatureTracker(config)
    frames = []
    for path in sequence.frames:
        features = cache.features(method, path)
        raw = features.keypoints[:, :2].numpy()
        rectified = rectify_points(raw, camera)
        keypoints = features.keypoints.clone()
        keypoints[:, :2] = torch.from_numpy(rectified)
        kept, tracks = tracker.update(Features(keypoints, features.descriptors, features.scores, features.image_size),
                                      camera.rectified_matrix)
        frames.append(TrackedFrame(raw[kept], rectified[kept], tracks, tracker.book.trails(),
                                   features.descriptors[torch.from_numpy(kept)]))
        progress()
    return frames


def track_flow(sequence: Sequence, method: Method, cache: FeatureCache, progress: Callable[[], None] = lambda: None,
               config: TrackerConfig = TrackerConfig(mode="flow")) -> list[TrackedFrame]:
    """Tracks a method's features with :class:`FlowTracker`: flow on the raw images, verification on
    rectified pixels."""
    camera = camera_model(sequence)
    tracker = FlowTracker(config)
    frames = []
    for path in sequence.frames:
        points, tracks = tracker.update(cache.features(method, path), grey_frame(path), camera)
        raw = points.keypoints[:, :2].numpy()
        frames.append(TrackedFrame(raw, rectify_points(raw, camera), tracks, tracker.book.trails(),
                                   points.descriptors))
        progress()
    return frames


def grey_frame(path: Path) -> np.ndarray:
    """The frame at ``path`` as a grey (H, W) uint8 image, as flow takes it."""
    return cv2.cvtColor(read_rgb(path), cv2.COLOR_RGB2GRAY)


def track_klt(sequence: Sequence, count: int, progress: Callable[[], None] = lambda: None) -> list[TrackedFrame]:
    """The classic front end: Shi-Tomasi corners, pyramidal Lucas-Kanade flow with a forward-backward
    check, RANSAC, and new corners away from the tracked ones to keep ``count`` points."""
    camera = camera_model(sequence)
    book = TrackBook()
    frames: list[TrackedFrame] = []
    previous_image, previous_points = None, np.zeros((0, 2), np.float32)
    for path in sequence.frames:
        image = grey_frame(path)
        kept, matches = np.zeros((0, 2), np.float32), np.zeros((0, 2), np.int64)
        if previous_image is not None and len(previous_points):
            forward, followed = flow_points(previous_image, image, previous_points)
            candidates = np.flatnonzero(followed)
            verified = epipolar_inliers(rectify_points(previous_points[candidates], camera),
                                        rectify_points(forward[candidates], camera), camera.rectified_matrix)
            previous_index = candidates[verified]
            kept = forward[previous_index]
            matches = np.column_stack([previous_index, np.arange(len(previous_index))])
        points = np.vstack([kept, _new_corners(image, kept, count - len(kept))])
        tracks = book.update(points, matches)
        frames.append(TrackedFrame(points, rectify_points(points, camera), tracks, book.trails()))
        previous_image, previous_points = image, points.astype(np.float32)
        progress()
    return frames


def _new_corners(image: np.ndarray, tracked: np.ndarray, count: int, min_distance: int = 8) -> np.ndarray:
    """Up to ``count`` Shi-Tomasi corners at least ``min_distance`` px from the tracked points."""
    if count <= 0:
        return np.zeros((0, 2), np.float32)
    mask = np.full(image.shape, 255, np.uint8)
    for x, y in np.rint(tracked).astype(int):
        cv2.circle(mask, (int(x), int(y)), min_distance, 0, -1)
    corners = cv2.goodFeaturesToTrack(image, count, 0.01, min_distance, mask=mask)
    return np.zeros((0, 2), np.float32) if corners is None else corners.reshape(-1, 2).astype(np.float32)


def _true_fundamental(camera_matrix: np.ndarray, pose1: np.ndarray, pose2: np.ndarray) -> np.ndarray:
    relative = np.linalg.inv(np.vstack([pose2, [0, 0, 0, 1]])) @ np.vstack([pose1, [0, 0, 0, 1]])
    rotation, translation = relative[:3, :3], relative[:3, 3]
    skew = np.array([[0, -translation[2], translation[1]], [translation[2], 0, -translation[0]],
                     [-translation[1], translation[0], 0]])
    inverse = np.linalg.inv(camera_matrix)
    return inverse.T @ skew @ rotation @ inverse


def _common(first: TrackedFrame, second: TrackedFrame) -> tuple[np.ndarray, np.ndarray]:
    """Indices into two consecutive frames of the points on the same track."""
    _, index1, index2 = np.intersect1d(first.tracks.ids, second.tracks.ids, return_indices=True)
    return index1, index2


def score_tracks(frames: list[TrackedFrame], sequence: Sequence, estimator: Estimator = "lo-ransac"
                 ) -> dict[str, float]:
    """Track lengths; with ground-truth poses, the share of consistent tracks and the relative-pose errors.

    A track is consistent when every one of its frame-to-frame steps has a Sampson error with the
    true motion below 1 px. Lengths count frames, over the tracks seen at least twice. The survival
    share is, averaged over frames, the share of a frame's points still on their tracks
    :data:`SURVIVAL_FRAMES` frames later (absent for shorter sequences): unlike the mean length, it
    counts every point a frame keeps, new points lost at once included. ``estimator`` gives the
    relative poses (see :func:`~r2d2_ros.evaluation.vo.pose_errors_from_correspondences`).
    """
    final_length: dict[int, int] = {}
    for frame in frames:
        final_length.update(zip(frame.tracks.ids.tolist(), frame.tracks.lengths.tolist()))
    lengths = np.array([n for n in final_length.values() if n >= 2])
    result = {
        "frames": len(frames),
        "features_mean": round(float(np.mean([len(f.raw) for f in frames])), 1),
        "tracked_share": round(float(np.mean([(f.tracks.lengths >= 2).mean() for f in frames[1:] if len(f.raw)])), 3),
        "track_length_mean": round(float(lengths.mean()), 2) if len(lengths) else 0.0,
        "track_length_median": float(np.median(lengths)) if len(lengths) else 0.0,
    }
    survival = [np.isin(first.tracks.ids, later.tracks.ids).mean()
                for first, later in zip(frames[:-SURVIVAL_FRAMES], frames[SURVIVAL_FRAMES:]) if len(first.raw)]
    if survival:
        result["survival_share"] = round(float(np.mean(survival)), 3)
    if sequence.poses is None:
        return result
    camera = camera_model(sequence).rectified_matrix
    inconsistent: set[int] = set()
    rotation_errors, translation_errors = [], []
    for index in range(min(len(frames), len(sequence.poses)) - 1):
        first, second = frames[index], frames[index + 1]
        index1, index2 = _common(first, second)
        pose1, pose2 = sequence.poses[index], sequence.poses[index + 1]
        errors = sampson_errors(first.rectified[index1], second.rectified[index2], _true_fundamental(camera, pose1, pose2))
        inconsistent.update(first.tracks.ids[index1][errors > CONSISTENT_PX].tolist())
        rotation, translation, _ = pose_errors_from_correspondences(first.rectified[index1], second.rectified[index2],
                                                                    camera, pose1, pose2, estimator)
        rotation_errors.append(rotation)
        translation_errors.append(translation)
    tracked = [track_id for track_id, n in final_length.items() if n >= 2]
    result["consistent_share"] = round(1 - len(inconsistent & set(tracked)) / max(len(tracked), 1), 3)
    result["rotation_error_median_deg"] = round(float(np.median(rotation_errors)), 3)
    result["translation_error_median_deg"] = round(float(np.median(translation_errors)), 3)
    return result


def draw_last_frame(sequence: Sequence, frames: list[TrackedFrame]) -> np.ndarray:
    """The last frame with the trails of its tracks (RGB)."""
    return draw_tracks(read_rgb(sequence.frames[len(frames) - 1]), frames[-1].trails)
